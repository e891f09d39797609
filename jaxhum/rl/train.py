"""On-device PPO: config, train state and ``make_train``, a bundle of jitted pure functions.

One iteration (one call of ``Trainer.iteration``, jitted, no host round trip):

  rollout      lax.scan over unroll_length steps of all num_envs envs (jax.vmap(env.step)); the
               scan body only normalises obs, runs the policy net, samples and steps the env
  values       V(obs_t) and V(final_obs_t) in one batched pass after the scan
  GAE          per env (vmap over the env axis), with truncation bootstrap from final_obs
  SGD          lax.scan over num_updates_per_batch epochs; each shuffles the flat batch with its
               own key and runs a lax.scan over num_minibatches minibatch updates
  normaliser   fold the rollout observations into the running statistics, for the next rollout

Asymmetric actor-critic: when the env has a privileged critic observation
(``env.critic_observation_size > 0``, ``state.critic_obs``), the value network reads it instead
of ``obs``: the rollout also records critic_obs_t and final_critic_obs_t, V(critic_obs_t) and
V(final_critic_obs_t) drive GAE and the value loss, and the critic observation has running
statistics of its own (``TrainState.critic_normalizer``). The policy, its normaliser and
everything exported from a run (``PolicyParams``) never see it. With no critic observation,
``critic_normalizer`` is None and the iteration is the symmetric one, unchanged.

Within an iteration every network input is normalised with the statistics the rollout acted
with (as when a VecNormalize-style wrapper stores normalised observations). So the PPO ratio
starts at exactly 1 and measures only the parameter change; updating the statistics before the
SGD instead (brax's order) makes the ratio of the first iterations, when the statistics move
most, far from 1, and most samples then fall outside the clip range and give no gradient.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxhum.envs import base as envs_base
from jaxhum.rl import curriculum as curriculum_lib
from jaxhum.rl import evaluation as evaluation_lib
from jaxhum.rl import losses, networks, normalization, parallel

Params = Any
Metrics = dict[str, jax.Array]

LR_SCHEDULES = ("constant", "linear", "adaptive")
# Bounds of the 'adaptive' learning rate, and its step factor.
ADAPTIVE_LR_MIN, ADAPTIVE_LR_MAX, ADAPTIVE_LR_FACTOR = 1e-5, 1e-2, 1.5


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters. Frozen; derived values are properties, never stored.

    Attributes:
      num_envs: parallel training environments.
      unroll_length: env steps per env per iteration; a batch holds num_envs * unroll_length samples.
      num_minibatches: minibatches the batch is split into per epoch.
      num_updates_per_batch: epochs (full passes over the batch) per iteration.
      discounting: discount gamma.
      gae_lambda: GAE lambda.
      clip_epsilon: PPO ratio clip range epsilon.
      entropy_cost: weight of the entropy bonus.
      value_loss_coef: weight of the value loss 0.5 * mean (V - target)^2.
      learning_rate: Adam learning rate (initial value for the 'linear' and 'adaptive' schedules).
      lr_schedule: 'constant'; 'linear' decay to 0 over all gradient steps of the run; or
        'adaptive' (rsl_rl's rule): before each gradient step the rate is divided by 1.5 when the
        minibatch's approximate KL between the rollout policy and the current one exceeds
        2 * desired_kl, multiplied by 1.5 when it is below desired_kl / 2, and kept within
        [1e-5, 1e-2]. The rate lives in the optimiser state, per seed.
      desired_kl: the KL the 'adaptive' schedule steers to; unused by the others.
      max_grad_norm: gradients are clipped to this global norm (both networks together);
        0 turns clipping off (brax's humanoid PPO does not clip).
      reward_scaling: rewards are multiplied by this before GAE (value targets are in scaled units).
      normalize_observations: use running observation statistics.
      normalize_advantage: standardise advantages per minibatch.
      policy_hidden_sizes: hidden layer widths of the policy MLP.
      value_hidden_sizes: hidden layer widths of the value MLP.
      activation: hidden activation, 'swish' or 'tanh'.
      compute_dtype: dtype of both networks' hidden layers, 'float32' or 'bfloat16' (mixed
        precision: parameters, outputs, losses and the optimiser stay float32).
      num_eval_envs: environments used by Trainer.evaluate (one episode each).
      curriculum: how the levels of a task's curriculum move (`jaxhum.rl.curriculum`); unused
        by tasks that declare no curriculum names.
    """

    num_envs: int = 2048
    unroll_length: int = 20
    num_minibatches: int = 4
    num_updates_per_batch: int = 4
    discounting: float = 0.97
    gae_lambda: float = 0.95
    clip_epsilon: float = 0.3
    entropy_cost: float = 1e-3
    value_loss_coef: float = 0.5
    learning_rate: float = 3e-4
    lr_schedule: str = "constant"
    desired_kl: float = 0.01
    max_grad_norm: float = 1.0
    reward_scaling: float = 0.1
    normalize_observations: bool = True
    normalize_advantage: bool = True
    policy_hidden_sizes: tuple[int, ...] = (32, 32, 32, 32)
    value_hidden_sizes: tuple[int, ...] = (256, 256, 256, 256, 256)
    activation: str = "swish"
    compute_dtype: str = "float32"
    num_eval_envs: int = 128
    curriculum: curriculum_lib.CurriculumConfig = dataclasses.field(default_factory=curriculum_lib.CurriculumConfig)

    @property
    def batch_size(self) -> int:
        """Samples per iteration: num_envs * unroll_length."""
        return self.num_envs * self.unroll_length

    @property
    def minibatch_size(self) -> int:
        """Samples per gradient step: batch_size // num_minibatches."""
        return self.batch_size // self.num_minibatches

    @property
    def env_steps_per_iteration(self) -> int:
        """Environment steps collected per iteration (= batch_size)."""
        return self.num_envs * self.unroll_length

    @property
    def gradient_steps_per_iteration(self) -> int:
        """Gradient steps per iteration: num_updates_per_batch * num_minibatches."""
        return self.num_updates_per_batch * self.num_minibatches

    def validate(self) -> None:
        """Raises ValueError('field: constraint, got value') for the first invalid field."""
        for name in ("num_envs", "unroll_length", "num_minibatches", "num_updates_per_batch",
                     "num_eval_envs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.batch_size % self.num_minibatches != 0:
            raise ValueError(
                f"num_minibatches: must divide num_envs * unroll_length = {self.batch_size}, "
                f"got {self.num_minibatches}"
            )
        for name in ("discounting", "gae_lambda"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: must be in [0, 1], got {value!r}")
        for name in ("clip_epsilon", "learning_rate", "reward_scaling", "desired_kl"):
            value = getattr(self, name)
            if not value > 0.0:
                raise ValueError(f"{name}: must be > 0, got {value!r}")
        for name in ("entropy_cost", "value_loss_coef", "max_grad_norm"):
            value = getattr(self, name)
            if not value >= 0.0:
                raise ValueError(f"{name}: must be >= 0, got {value!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule: must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.activation not in networks.ACTIVATIONS:
            raise ValueError(
                f"activation: must be one of {sorted(networks.ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.compute_dtype not in networks.COMPUTE_DTYPES:
            raise ValueError(
                f"compute_dtype: must be one of {sorted(networks.COMPUTE_DTYPES)}, got {self.compute_dtype!r}"
            )
        for name in ("policy_hidden_sizes", "value_hidden_sizes"):
            sizes = getattr(self, name)
            if not all(isinstance(s, int) and s > 0 for s in sizes):
                raise ValueError(f"{name}: must be a tuple of positive integers, got {sizes!r}")
        self.curriculum.validate()

    def check_devices(self, num_devices: int) -> None:
        """Raises ValueError('field: constraint') unless the env batch (num_envs) and every
        minibatch split evenly over `num_devices` devices (data parallelism, `jaxhum.rl.parallel`)."""
        if self.num_envs % num_devices:
            raise ValueError(f"num_envs: must be divisible by the {num_devices} devices, got {self.num_envs}")
        if self.minibatch_size % num_devices:
            raise ValueError(
                f"num_minibatches: the minibatch size num_envs * unroll_length / num_minibatches = "
                f"{self.minibatch_size} must be divisible by the {num_devices} devices, got {self.num_minibatches}"
            )


@struct.dataclass
class PolicyParams:
    """Everything the policy needs to act: the normaliser statistics travel with the weights.

    Actor side only: the critic observation's statistics and the value net are not part of it.
    """

    normalizer: normalization.RunningStats
    policy: Params


@struct.dataclass
class TrainState:
    """Complete learner state; with the config and env it determines the run bit-exactly."""

    policy_params: Params
    value_params: Params
    opt_state: optax.OptState  # one optimiser over {'policy': ..., 'value': ...}
    normalizer: normalization.RunningStats
    env_state: Any  # batched EnvState, leading dim num_envs
    key: jax.Array  # PRNG key for the next iteration
    iteration: jax.Array  # () int32, iterations completed
    episode_return: jax.Array  # (num_envs,) float32, return of each env's current episode so far
    episode_length: jax.Array  # (num_envs,) int32, steps of each env's current episode so far
    curriculum: curriculum_lib.CurriculumState  # levels of the task's curriculum names ({} if none)
    # Running statistics of the critic observation, (critic_size,); None when the env has none
    # (no leaf, so symmetric runs keep their checkpoint layout).
    critic_normalizer: normalization.RunningStats | None = None


def critic_observation_size(env: Any) -> int:
    """Size of the env's privileged critic observation; 0 when it has none (the critic reads obs)."""
    return int(getattr(env, "critic_observation_size", 0))


def policy_bundle(state: TrainState) -> PolicyParams:
    """The policy parameters (with normaliser) of a train state, as ``policy_fn`` takes them."""
    return PolicyParams(normalizer=state.normalizer, policy=state.policy_params)


class Transition(NamedTuple):
    """One rollout step of all envs (stacked to a leading time axis T by the scan)."""

    obs: jax.Array  # (N, obs_size) raw observation the action was taken in
    raw_action: jax.Array  # (N, A) pre-tanh action
    log_prob: jax.Array  # (N,) behaviour log-prob of the action
    reward: jax.Array  # (N,)
    done: jax.Array  # (N,) 1.0 if the episode ended at this step
    truncated: jax.Array  # (N,) 1.0 if it ended by the time limit and not terminated
    final_obs: jax.Array  # (N, obs_size) observation reached before autoreset
    critic_obs: jax.Array | None = None  # (N, critic_size) raw critic observation; None if none
    final_critic_obs: jax.Array | None = None  # (N, critic_size) before autoreset; None if none


class Batch(NamedTuple):
    """Flat training samples, B = num_envs * unroll_length (or a minibatch of them)."""

    obs: jax.Array  # (B, obs_size) normalised
    raw_action: jax.Array  # (B, A)
    old_log_prob: jax.Array  # (B,)
    advantage: jax.Array  # (B,)
    value_target: jax.Array  # (B,)
    critic_obs: jax.Array | None = None  # (B, critic_size) normalised; None: the critic reads obs


class Trainer(NamedTuple):
    """Pure functions made by ``make_train``.

    init(key) -> TrainState                      (jitted)
    iteration(state) -> (state, metrics)         (jitted; the state argument is donated)
    evaluate(state, key) -> metrics              (jitted; key only resets eval envs)
    policy_fn(params: PolicyParams, obs (..., obs_size), key | None) -> action (..., A)

    Made with num_seeds K > 1, init takes keys (K,) and states, metrics and evaluations carry a
    leading axis K (policy_fn stays the one-seed function).
    """

    init: Callable[[jax.Array], TrainState]
    iteration: Callable[[TrainState], tuple[TrainState, Metrics]]
    evaluate: Callable[[TrainState, jax.Array], Metrics]
    policy_fn: Callable[[PolicyParams, jax.Array, jax.Array | None], jax.Array]


@struct.dataclass
class _RolloutCarry:
    env_state: Any  # batched EnvState
    episode_return: jax.Array  # (N,) float32
    episode_length: jax.Array  # (N,) int32
    finished_return: jax.Array  # () float32, summed return of episodes finished this rollout
    finished_length: jax.Array  # () float32, summed length of those episodes
    finished_count: jax.Array  # () float32, number of those episodes
    nonfinite: jax.Array  # () float32, env steps reset this rollout because their physics went NaN/inf


@struct.dataclass
class _SGDCarry:
    params: dict[str, Params]  # {'policy': ..., 'value': ...}
    opt_state: optax.OptState


class _Static(NamedTuple):
    """Everything a scan body needs that does not change during training."""

    env: Any
    config: PPOConfig
    policy_net: networks.Network
    value_net: networks.Network
    optimizer: optax.GradientTransformation
    minibatch_sharding: Any = None  # split of the stacked minibatches over devices, or None


def _normalize(static: _Static, stats: normalization.RunningStats, obs: jax.Array) -> jax.Array:
    if static.config.normalize_observations:
        return normalization.normalize(stats, obs)
    return obs


def _rollout_step(
    static: _Static, policy: PolicyParams, carry: _RolloutCarry, key: jax.Array
) -> tuple[_RolloutCarry, Transition]:
    """Acts in all envs once with a sampled action; records the transition and episode stats.

    The policy sees ``obs`` alone; the critic observation is only recorded (for the value net).
    """
    obs = carry.env_state.obs
    asymmetric = critic_observation_size(static.env) > 0
    dist = static.policy_net.apply(policy.policy, _normalize(static, policy.normalizer, obs))
    action, raw_action = networks.sample(dist, key)
    log_prob = networks.log_prob(dist, raw_action)
    env_state = jax.vmap(static.env.step)(carry.env_state, action)

    done = env_state.done
    episode_return = carry.episode_return + env_state.reward
    episode_length = carry.episode_length + 1
    new = _RolloutCarry(
        env_state=env_state,
        episode_return=episode_return * (1.0 - done),
        episode_length=jnp.where(done > 0, 0, episode_length),
        finished_return=carry.finished_return + jnp.sum(done * episode_return),
        finished_length=carry.finished_length + jnp.sum(done * episode_length),
        finished_count=carry.finished_count + jnp.sum(done),
        nonfinite=carry.nonfinite + _nonfinite_count(env_state),
    )
    transition = Transition(
        obs=obs,
        raw_action=raw_action,
        log_prob=log_prob,
        reward=env_state.reward,
        done=done,
        truncated=env_state.truncated,
        final_obs=env_state.final_obs,
        critic_obs=carry.env_state.critic_obs if asymmetric else None,
        final_critic_obs=env_state.final_critic_obs if asymmetric else None,
    )
    return new, transition


def _nonfinite_count(env_state: Any) -> jax.Array:
    """() float32: envs whose step was non-finite and reset (0 for envs without the metric)."""
    flags = getattr(env_state, "metrics", {}).get(envs_base.NONFINITE)
    return jnp.zeros((), jnp.float32) if flags is None else jnp.sum(flags)


def _loss(
    static: _Static, params: dict[str, Params], batch: Batch, key: jax.Array
) -> tuple[jax.Array, Metrics]:
    """PPO loss of one minibatch; ``key`` draws the entropy estimate's sample."""
    config = static.config
    dist = static.policy_net.apply(params["policy"], batch.obs)
    values = static.value_net.apply(
        params["value"], batch.obs if batch.critic_obs is None else batch.critic_obs)
    return losses.ppo_objective(
        log_prob=networks.log_prob(dist, batch.raw_action),
        old_log_prob=batch.old_log_prob,
        advantages=batch.advantage,
        values=values,
        value_targets=batch.value_target,
        entropy=networks.entropy(dist, key),
        clip_epsilon=config.clip_epsilon,
        entropy_cost=config.entropy_cost,
        value_loss_coef=config.value_loss_coef,
        normalize_advantage=config.normalize_advantage,
    )


def _minibatch_step(
    static: _Static, carry: _SGDCarry, xs: tuple[Batch, jax.Array]
) -> tuple[_SGDCarry, Metrics]:
    """One gradient step of both networks on one minibatch."""
    minibatch, key = xs
    grads, metrics = jax.grad(functools.partial(_loss, static), has_aux=True)(
        carry.params, minibatch, key
    )
    opt_state = carry.opt_state
    if static.config.lr_schedule == "adaptive":
        opt_state = _adapt_learning_rate(static.config, opt_state, metrics["approx_kl"])
    updates, opt_state = static.optimizer.update(grads, opt_state, carry.params)
    params = optax.apply_updates(carry.params, updates)
    return _SGDCarry(params=params, opt_state=opt_state), metrics


def _epoch_step(
    static: _Static, batch: Batch, carry: _SGDCarry, key: jax.Array
) -> tuple[_SGDCarry, Metrics]:
    """One pass over the batch: shuffle, split into minibatches, one gradient step each."""
    config = static.config
    key_perm, key_entropy = jax.random.split(key)
    perm = jax.random.permutation(key_perm, config.batch_size)
    minibatches = jax.tree.map(
        lambda x: jnp.reshape(x[perm], (config.num_minibatches, config.minibatch_size) + x.shape[1:]),
        batch,
    )
    if static.minibatch_sharding is not None:  # data parallel: each device takes its share
        minibatches = jax.lax.with_sharding_constraint(minibatches, static.minibatch_sharding)
    keys = jax.random.split(key_entropy, config.num_minibatches)
    return jax.lax.scan(functools.partial(_minibatch_step, static), carry, (minibatches, keys))


def _adapt_learning_rate(config: PPOConfig, opt_state: optax.OptState, approx_kl: jax.Array) -> optax.OptState:
    """The optimiser state with its learning rate stepped towards ``config.desired_kl`` (see PPOConfig)."""
    lr = optax.tree_utils.tree_get(opt_state, "learning_rate")
    lr = jnp.where(approx_kl > 2.0 * config.desired_kl, lr / ADAPTIVE_LR_FACTOR,
                   jnp.where(approx_kl < 0.5 * config.desired_kl, lr * ADAPTIVE_LR_FACTOR, lr))
    return optax.tree_utils.tree_set(opt_state, learning_rate=jnp.clip(lr, ADAPTIVE_LR_MIN, ADAPTIVE_LR_MAX))


def learning_rate(config: PPOConfig, schedule: optax.Schedule, state: TrainState) -> jax.Array:
    """() float32: the learning rate of the state's next gradient step."""
    if config.lr_schedule == "adaptive":
        return jnp.asarray(optax.tree_utils.tree_get(state.opt_state, "learning_rate"), jnp.float32)
    return jnp.asarray(schedule(state.iteration * config.gradient_steps_per_iteration), jnp.float32)


def _make_optimizer(
    config: PPOConfig, num_iterations: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    clip = optax.clip_by_global_norm(config.max_grad_norm) if config.max_grad_norm > 0 else optax.identity()
    if config.lr_schedule == "adaptive":  # the rate is a hyperparameter in the state, stepped by the KL
        adam = optax.inject_hyperparams(optax.adam)(learning_rate=jnp.float32(config.learning_rate))
        return optax.chain(clip, adam), optax.constant_schedule(config.learning_rate)
    if config.lr_schedule == "linear":
        schedule = optax.linear_schedule(
            init_value=config.learning_rate,
            end_value=0.0,
            transition_steps=max(1, num_iterations * config.gradient_steps_per_iteration),
        )
    else:
        schedule = optax.constant_schedule(config.learning_rate)
    optimizer = optax.chain(clip, optax.adam(learning_rate=schedule))
    return optimizer, schedule


def _value_inputs(static: _Static, state: TrainState, traj: Transition, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The value net's normalised inputs at t and before autoreset, each (T, N, size), with the
    rollout's statistics: `obs` (traj.obs already normalised) and final_obs when the env has no
    critic observation, else the critic observation and its final one. Policy and critic inputs
    are never stacked together (their sizes differ)."""
    if critic_observation_size(static.env) == 0:
        return obs, _normalize(static, state.normalizer, traj.final_obs)
    config = static.config
    chex.assert_shape(traj.critic_obs, (config.unroll_length, config.num_envs, critic_observation_size(static.env)))
    return (_normalize(static, state.critic_normalizer, traj.critic_obs),
            _normalize(static, state.critic_normalizer, traj.final_critic_obs))


def _iteration(
    static: _Static, schedule: optax.Schedule, state: TrainState
) -> tuple[TrainState, Metrics]:
    """One PPO iteration: rollout, GAE, SGD epochs, normaliser update. See module docstring."""
    config = static.config
    key_next, key_rollout, key_sgd = jax.random.split(state.key, 3)
    env_state = state.env_state
    if getattr(static.env, "fresh_starts", False):  # next episodes start afresh (a key apart from the rollout's)
        env_state = envs_base.refresh_starts(static.env, env_state, jax.random.fold_in(key_rollout, 1))
    env_state = curriculum_lib.apply(env_state, state.curriculum)  # after the refresh: new starts get them too

    # Rollout with the current policy and statistics; policy inference only.
    behaviour = PolicyParams(normalizer=state.normalizer, policy=state.policy_params)
    carry = _RolloutCarry(
        env_state=env_state,
        episode_return=state.episode_return,
        episode_length=state.episode_length,
        finished_return=jnp.zeros((), jnp.float32),
        finished_length=jnp.zeros((), jnp.float32),
        finished_count=jnp.zeros((), jnp.float32),
        nonfinite=jnp.zeros((), jnp.float32),
    )
    carry, traj = jax.lax.scan(
        functools.partial(_rollout_step, static, behaviour),
        carry,
        jax.random.split(key_rollout, config.unroll_length),
    )
    chex.assert_shape(traj.reward, (config.unroll_length, config.num_envs))

    # Values of the critic's input at t and before autoreset, in one batched pass.
    obs = _normalize(static, state.normalizer, traj.obs)
    value_in, final_value_in = _value_inputs(static, state, traj, obs)
    values = static.value_net.apply(state.value_params, jnp.stack([value_in, final_value_in]))
    critic_obs = None if critic_observation_size(static.env) == 0 else value_in
    v_t, v_next_t = values[0], values[1]

    terminated = traj.done * (1.0 - traj.truncated)
    gae = functools.partial(losses.gae, gamma=config.discounting, lam=config.gae_lambda)
    advantage, target = jax.vmap(gae, in_axes=1, out_axes=1)(
        traj.reward * config.reward_scaling, v_t, v_next_t, terminated, traj.done
    )

    flat = lambda x: jnp.reshape(x, (config.batch_size,) + x.shape[2:])  # noqa: E731
    batch = Batch(
        obs=flat(obs),
        raw_action=flat(traj.raw_action),
        old_log_prob=flat(traj.log_prob),
        advantage=flat(advantage),
        value_target=flat(target),
        critic_obs=None if critic_obs is None else flat(critic_obs),
    )
    sgd = _SGDCarry(
        params={"policy": state.policy_params, "value": state.value_params},
        opt_state=state.opt_state,
    )
    sgd, sgd_metrics = jax.lax.scan(
        functools.partial(_epoch_step, static, batch),
        sgd,
        jax.random.split(key_sgd, config.num_updates_per_batch),
    )

    normalizer, critic_normalizer = state.normalizer, state.critic_normalizer
    if config.normalize_observations:
        normalizer = normalization.update(normalizer, traj.obs)
        if critic_normalizer is not None:
            critic_normalizer = normalization.update(critic_normalizer, traj.critic_obs)

    finished = carry.finished_count
    metrics = {f"train/{k}": jnp.mean(v) for k, v in sgd_metrics.items()}
    metrics["train/learning_rate"] = learning_rate(config, schedule, state)  # the rate this iteration began with
    metrics["train/episode_reward"] = carry.finished_return / jnp.maximum(finished, 1.0)
    metrics["train/episode_length"] = carry.finished_length / jnp.maximum(finished, 1.0)
    metrics["train/episodes_finished"] = finished
    metrics["train/mean_reward_per_step"] = jnp.mean(traj.reward)
    metrics["train/nonfinite_resets"] = carry.nonfinite
    metrics.update(curriculum_lib.log(state.curriculum))  # the levels this rollout ran with

    new_state = TrainState(
        policy_params=sgd.params["policy"],
        value_params=sgd.params["value"],
        opt_state=sgd.opt_state,
        normalizer=normalizer,
        env_state=carry.env_state,
        key=key_next,
        iteration=state.iteration + 1,
        episode_return=carry.episode_return,
        episode_length=carry.episode_length,
        curriculum=curriculum_lib.update(config.curriculum, state.curriculum, metrics),
        critic_normalizer=critic_normalizer,
    )
    return new_state, metrics


def _init(static: _Static, key: jax.Array) -> TrainState:
    config = static.config
    key_policy, key_value, key_env, key_train = jax.random.split(key, 4)
    policy_params = static.policy_net.init(key_policy)
    value_params = static.value_net.init(key_value)
    env_state = jax.vmap(static.env.reset)(jax.random.split(key_env, config.num_envs))
    if critic_observation_size(static.env) > 0:
        chex.assert_shape(env_state.critic_obs, (config.num_envs, critic_observation_size(static.env)))
    return TrainState(
        policy_params=policy_params,
        value_params=value_params,
        opt_state=static.optimizer.init({"policy": policy_params, "value": value_params}),
        normalizer=normalization.init(static.env.observation_size),
        env_state=env_state,
        key=key_train,
        iteration=jnp.zeros((), jnp.int32),
        episode_return=jnp.zeros((config.num_envs,), jnp.float32),
        episode_length=jnp.zeros((config.num_envs,), jnp.int32),
        curriculum=curriculum_lib.init(config.curriculum, tuple(getattr(static.env, "curriculum", ()))),
        critic_normalizer=_init_critic_normalizer(static.env),
    )


def _init_critic_normalizer(env: Any) -> normalization.RunningStats | None:
    size = critic_observation_size(env)
    return normalization.init(size) if size > 0 else None


def _value_input_size(env: Any) -> int:
    """The value net reads the critic observation when the env has one, else obs."""
    return critic_observation_size(env) or env.observation_size


def _policy_fn(
    static: _Static, params: PolicyParams, obs: jax.Array, key: jax.Array | None = None
) -> jax.Array:
    """Action in [-1, 1] for obs (..., obs_size): sampled with ``key``, deterministic if None."""
    dist = static.policy_net.apply(params.policy, _normalize(static, params.normalizer, obs))
    if key is None:
        return networks.deterministic(dist)
    action, _ = networks.sample(dist, key)
    return action


def _evaluate(
    evaluator: Callable[[PolicyParams, jax.Array], Metrics], state: TrainState, key: jax.Array
) -> Metrics:
    return evaluator(policy_bundle(state), key)


def make_train(
    env: Any,
    config: PPOConfig,
    num_iterations: int,
    num_seeds: int = 1,
    mesh: Any = None,
    vmap_seeds: bool = True,
    eval_env: Any = None,
) -> Trainer:
    """Builds the jitted PPO functions for ``env`` (see ``Trainer``).

    Args:
      env: an env with reset/step/observation_size/action_size/episode_length (jaxhum.envs);
        with `critic_observation_size > 0` its states' `critic_obs` feed the value net alone.
      config: PPO hyperparameters; validated here.
      num_iterations: planned number of iterations (sets the length of the 'linear' lr decay).
      num_seeds: K independent train states in one program (``jaxhum.rl.parallel``): with K > 1,
        init takes K keys and every TrainState leaf, metric and eval result has a leading axis K.
      vmap_seeds: the K seeds batched (vmap, fast) or as K copies of the one-seed program
        (bit-identical on the CPU to separate runs); see ``parallel.compile_trainer``.
      mesh: a 'data' mesh (``parallel.make_mesh``) to split the envs and minibatches over, or
        None for one device; num_envs and the minibatch size must divide by its size.
      eval_env: the env ``evaluate`` runs the policy in (same observation and action sizes as
        ``env``: a harder or easier world, e.g. other pushes); None evaluates in ``env``.

    The host loop is ``state = trainer.init(key)`` then ``state, metrics = trainer.iteration(state)``
    repeatedly; ``iteration`` donates its argument, so only the returned state may be used after.
    """
    config.validate()
    if not isinstance(num_iterations, int) or num_iterations <= 0:
        raise ValueError(f"num_iterations: must be a positive integer, got {num_iterations!r}")
    curriculum_lib.check_env(env)
    config.check_devices(1 if mesh is None else mesh.devices.size)
    optimizer, schedule = _make_optimizer(config, num_iterations)
    static = _Static(
        env=env,
        config=config,
        policy_net=networks.make_policy_network(
            env.observation_size, env.action_size, config.policy_hidden_sizes, config.activation,
            config.compute_dtype,
        ),
        value_net=networks.make_value_network(
            _value_input_size(env), config.value_hidden_sizes, config.activation, config.compute_dtype
        ),
        optimizer=optimizer,
        minibatch_sharding=parallel.minibatch_sharding(mesh),
    )
    policy_fn = functools.partial(_policy_fn, static)
    if eval_env is not None and (eval_env.observation_size, eval_env.action_size) != (
            env.observation_size, env.action_size):
        raise ValueError(f"eval_env: must have env's observation and action sizes "
                         f"({env.observation_size}, {env.action_size}), got "
                         f"({eval_env.observation_size}, {eval_env.action_size})")
    evaluator = evaluation_lib.make_evaluator(env if eval_env is None else eval_env, policy_fn, config.num_eval_envs)
    init, iteration, evaluate = parallel.compile_trainer(
        functools.partial(_init, static),
        functools.partial(_iteration, static, schedule),
        functools.partial(_evaluate, evaluator),
        num_seeds=num_seeds,
        mesh=mesh,
        vmap_seeds=vmap_seeds,
    )
    return Trainer(init=init, iteration=iteration, evaluate=evaluate, policy_fn=policy_fn)
