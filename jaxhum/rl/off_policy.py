"""On-device SAC and TD3 (with the FastTD3 / FastSAC options) behind PPO's ``Trainer`` interface.

One iteration (one call of ``Trainer.iteration``, jitted, no host round trip):

  act        every env acts once: TD3 tanh(actor(obs)) plus Gaussian noise of the env's own
             std (drawn in [exploration_noise_min, exploration_noise_max] when its episode
             starts, FastTD3's mixed noise); SAC a sample of the tanh-Gaussian; uniform random
             actions while the buffer holds fewer than learning_starts transitions
  step       jax.vmap(env.step) over the num_envs envs (autoreset inside the env)
  insert     the step is pushed into each env's n-step window; the window's oldest step, once
             complete, goes into the replay buffer as an n-step transition (``jaxhum.rl.replay``)
  normaliser the new observations are folded into the running statistics
  updates    lax.scan over updates_per_iteration gradient steps (``_update_step``), each on a
             fresh uniform batch from the buffer; skipped (lax.cond) until the buffer holds
             learning_starts transitions

A gradient step: critic (both twins) on the clipped double-Q target; every policy_delay-th step
also the actor, SAC's temperature, and the target networks (Polyak, tau). Observations are
stored raw and normalised at sample time with the current statistics.

Losses are written for ONE transition (``critic_target``, ``critic_loss``, ``actor_loss``) and
vmapped over the batch; their pure arithmetic (``clipped_double_q_target``,
``categorical_projection``, ...) is tested against hand-derived numbers.

  TD3 target    y = r + d * min_i Q'_i(s', clip(mu'(s') + clip(sigma * eps, -c, c), -1, 1))
  SAC target    y = r + d * (min_i Q'_i(s', a') - alpha * log pi(a'|s')),  a' ~ pi(.|s')
  critic loss   sum_i 0.5 (Q_i(s, a) - y)^2                           (scalar critic)
                sum_i -sum_j p_j log softmax(logits_i)_j              (distributional)
  TD3 actor     -Q_1(s, tanh(mu(s)))
  SAC actor     alpha * log pi(a|s) - min_i Q_i(s, a),  a ~ pi(.|s) reparameterised
  temperature   log_alpha minimises alpha * stop_grad(-log pi(a|s) - target_entropy)

with d = gamma^(m+1) (1 - terminated) the buffer's n-step discount. The distributional critic
(C51) predicts logits over num_atoms atoms evenly spaced on [v_min, v_max]; its target is the
next distribution of the twin with the smaller mean, shifted to r + d z (SAC: r - d alpha
log pi + d z) and projected back onto the atoms (``categorical_projection``).

The train state keeps the actor in ``policy_params`` and the statistics in ``normalizer``, as
PPO's does, so ``jaxhum.rl.train.policy_bundle`` gives the actor (``PolicyParams``) for
evaluation and export. SAC's actor is PPO's policy network (2A outputs: loc, pre-softplus
scale; deterministic action tanh(loc)); TD3's actor is the same MLP with A outputs (action
tanh(output)); both name their layers hidden_<i> and output.

Not supported (refused or ignored, as stated): a privileged critic observation (the critics
read the actor's observation), curriculum updates (envs keep the levels their reset sets), data
parallelism over several devices (``check_devices`` refuses it). K seeds in one program work
(``parallel.compile_trainer``).
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
from jaxhum.rl import evaluation as evaluation_lib
from jaxhum.rl import networks, normalization, parallel, replay
from jaxhum.rl.train import PolicyParams, Trainer, policy_bundle

Params = Any
Metrics = dict[str, jax.Array]

ALGORITHMS = ("sac", "td3")


@dataclasses.dataclass(frozen=True)
class OffPolicyConfig:
    """SAC / TD3 hyperparameters. Frozen; derived values are properties, never stored.

    Defaults follow FastTD3's published recipe where it has one (large batch, n-step 3,
    tau 0.1, two updates per env step, mixed exploration noise, actor 512-256-128 and critic
    1024-512-256), TD3's paper for the target smoothing noise; they are not tuned here.

    Attributes:
      algorithm: 'sac' or 'td3'.
      num_envs: parallel training environments; each iteration collects one step of each.
      batch_size: transitions per gradient step (sampled uniformly with replacement).
      buffer_size: replay capacity in transitions (all envs together); >= num_envs.
      learning_starts: gradient steps start once the buffer holds this many transitions;
        until then the envs act uniformly at random.
      updates_per_iteration: gradient steps per iteration (per num_envs env steps).
      actor_learning_rate, critic_learning_rate, alpha_learning_rate: Adam learning rates.
      max_grad_norm: each network's gradient is clipped to this global norm; 0 turns it off.
      gamma: discount.
      tau: Polyak rate of the target networks: target <- tau * online + (1 - tau) * target.
      n_step: steps per return in the buffer (1 = one-step TD); see ``jaxhum.rl.replay``.
      reward_scaling: rewards are multiplied by this before they enter the buffer.
      policy_delay: the actor, the temperature and the targets are updated every
        policy_delay-th gradient step (TD3's delayed updates; 1 updates them every step).
      policy_noise: std of TD3's target policy smoothing noise (unused by SAC).
      noise_clip: the smoothing noise is clipped to [-noise_clip, noise_clip] (TD3 only).
      exploration_noise_min, exploration_noise_max: TD3's exploration: each env's Gaussian
        noise std is drawn uniformly in [min, max] whenever its episode starts (set them equal
        for one fixed std). ``policy_fn`` with a key samples with std exploration_noise_max.
      init_alpha: SAC's initial entropy temperature alpha.
      target_entropy_per_action: SAC's target entropy is this times action_size.
      distributional: the critics are C51 categorical distributions over num_atoms atoms on
        [v_min, v_max] (FastTD3's critic) instead of scalars. v_min and v_max must cover the
        range of (reward-scaled) returns.
      num_atoms, v_min, v_max: the categorical support (used only when distributional).
      normalize_observations: use running observation statistics (``jaxhum.rl.normalization``).
      actor_hidden_sizes, critic_hidden_sizes: hidden layer widths.
      activation: hidden activation, 'swish' or 'tanh'.
      compute_dtype: dtype of the hidden layers, 'float32' or 'bfloat16' (mixed precision;
        parameters, outputs, losses and optimiser stay float32).
      refresh_starts_every: for envs that hold their next episode's start
        (``env.fresh_starts``), the starts are redrawn every this many iterations (one reset
        of all envs; each iteration is a single env step, so every iteration would be costly).
      num_eval_envs: environments used by Trainer.evaluate (one episode each).
    """

    algorithm: str = "td3"
    num_envs: int = 1024
    batch_size: int = 32768
    buffer_size: int = 1_048_576
    learning_starts: int = 10_240
    updates_per_iteration: int = 2
    actor_learning_rate: float = 3e-4
    critic_learning_rate: float = 3e-4
    alpha_learning_rate: float = 3e-4
    max_grad_norm: float = 0.0
    gamma: float = 0.99
    tau: float = 0.1
    n_step: int = 3
    reward_scaling: float = 1.0
    policy_delay: int = 2
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    exploration_noise_min: float = 0.001
    exploration_noise_max: float = 0.4
    init_alpha: float = 0.1
    target_entropy_per_action: float = -1.0
    distributional: bool = False
    num_atoms: int = 101
    v_min: float = -250.0
    v_max: float = 250.0
    normalize_observations: bool = True
    actor_hidden_sizes: tuple[int, ...] = (512, 256, 128)
    critic_hidden_sizes: tuple[int, ...] = (1024, 512, 256)
    activation: str = "swish"
    compute_dtype: str = "float32"
    refresh_starts_every: int = 20
    num_eval_envs: int = 128

    @property
    def env_steps_per_iteration(self) -> int:
        """Environment steps collected per iteration (= num_envs)."""
        return self.num_envs

    @property
    def gradient_steps_per_iteration(self) -> int:
        """Gradient steps per iteration (= updates_per_iteration)."""
        return self.updates_per_iteration

    def validate(self) -> None:
        """Raises ValueError('field: constraint, got value') for the first invalid field."""
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm: must be one of {ALGORITHMS}, got {self.algorithm!r}")
        for name in ("num_envs", "batch_size", "buffer_size", "updates_per_iteration", "n_step",
                     "policy_delay", "refresh_starts_every", "num_eval_envs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if not isinstance(self.learning_starts, int) or self.learning_starts < 0:
            raise ValueError(f"learning_starts: must be an integer >= 0, got {self.learning_starts!r}")
        if self.buffer_size < self.num_envs:
            raise ValueError(f"buffer_size: must be >= num_envs = {self.num_envs}, got {self.buffer_size}")
        if not (isinstance(self.num_atoms, int) and self.num_atoms >= 2):
            raise ValueError(f"num_atoms: must be an integer >= 2, got {self.num_atoms!r}")
        if not self.v_min < self.v_max:
            raise ValueError(f"v_max: must be > v_min = {self.v_min}, got {self.v_max!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma: must be in [0, 1], got {self.gamma!r}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau: must be in (0, 1], got {self.tau!r}")
        for name in ("actor_learning_rate", "critic_learning_rate", "alpha_learning_rate", "reward_scaling",
                     "init_alpha"):
            value = getattr(self, name)
            if not value > 0.0:
                raise ValueError(f"{name}: must be > 0, got {value!r}")
        for name in ("max_grad_norm", "policy_noise", "noise_clip", "exploration_noise_min"):
            value = getattr(self, name)
            if not value >= 0.0:
                raise ValueError(f"{name}: must be >= 0, got {value!r}")
        if not self.exploration_noise_max >= self.exploration_noise_min:
            raise ValueError(f"exploration_noise_max: must be >= exploration_noise_min = "
                             f"{self.exploration_noise_min}, got {self.exploration_noise_max!r}")
        if self.activation not in networks.ACTIVATIONS:
            raise ValueError(f"activation: must be one of {sorted(networks.ACTIVATIONS)}, got {self.activation!r}")
        if self.compute_dtype not in networks.COMPUTE_DTYPES:
            raise ValueError(
                f"compute_dtype: must be one of {sorted(networks.COMPUTE_DTYPES)}, got {self.compute_dtype!r}")
        for name in ("actor_hidden_sizes", "critic_hidden_sizes"):
            sizes = getattr(self, name)
            if not all(isinstance(s, int) and s > 0 for s in sizes):
                raise ValueError(f"{name}: must be a tuple of positive integers, got {sizes!r}")

    def check_devices(self, num_devices: int) -> None:
        """Raises ValueError('devices: ...') unless one device: the off-policy trainer is not data parallel."""
        if num_devices != 1:
            raise ValueError(f"devices: off-policy training (SAC, TD3) runs on one device, got {num_devices}")


# ----------------------------------------------------------------------------- state


@struct.dataclass
class OffPolicyState:
    """Complete learner state; with the config and env it determines the run bit-exactly.

    Field names shared with PPO's TrainState (policy_params, normalizer, env_state, key,
    iteration, episode_*) mean the same, so ``policy_bundle``, export and fine-tuning read it alike.
    """

    policy_params: Params  # the actor
    critic_params: Params  # twin critics, every leaf (2, ...)
    target_critic_params: Params  # Polyak average of critic_params
    target_policy_params: Params | None  # TD3's target actor; None for SAC (no leaf)
    policy_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    log_alpha: jax.Array | None  # () float32, SAC's log temperature; None for TD3
    alpha_opt_state: optax.OptState | None  # None for TD3
    normalizer: normalization.RunningStats  # (obs_size,)
    replay: replay.ReplayBuffer  # capacity buffer_size
    window: replay.NStepWindow  # the last n_step steps of every env
    env_state: Any  # batched EnvState, leading dim num_envs
    exploration_std: jax.Array  # (num_envs,) float32, TD3 noise std of each env's episode
    key: jax.Array  # PRNG key for the next iteration
    iteration: jax.Array  # () int32, iterations completed
    gradient_steps: jax.Array  # () int32, gradient steps taken (drives policy_delay)
    episode_return: jax.Array  # (num_envs,) float32
    episode_length: jax.Array  # (num_envs,) int32


@struct.dataclass
class _Learner:
    """What a gradient step changes (the scan carry of ``_update_step``)."""

    policy_params: Params
    critic_params: Params
    target_critic_params: Params
    target_policy_params: Params | None
    policy_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    log_alpha: jax.Array | None
    alpha_opt_state: optax.OptState | None
    gradient_steps: jax.Array  # () int32


_LEARNER_FIELDS = tuple(f.name for f in dataclasses.fields(_Learner))


class Critic(NamedTuple):
    """Q network as two pure functions.

    init(key) -> params.
    apply(params, obs (..., obs_size), action (..., A)) -> (..., out): out = 1 (scalar Q) or
      num_atoms (categorical logits).
    """

    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array, jax.Array], jax.Array]


class _Static(NamedTuple):
    env: Any
    config: OffPolicyConfig
    actor: networks.Network
    critic: Critic
    atoms: jax.Array  # (num_atoms,) categorical support (unused by a scalar critic)
    policy_optimizer: optax.GradientTransformation
    critic_optimizer: optax.GradientTransformation
    alpha_optimizer: optax.GradientTransformation
    target_entropy: float


# ----------------------------------------------------------------------------- networks


def make_actor(config: OffPolicyConfig, obs_size: int, action_size: int) -> networks.Network:
    """SAC: PPO's tanh-Gaussian policy net (2A outputs). TD3: the same MLP with A outputs, action tanh(output)."""
    if config.algorithm == "sac":
        return networks.make_policy_network(obs_size, action_size, config.actor_hidden_sizes, config.activation,
                                            config.compute_dtype)
    module = networks.MLP(tuple(config.actor_hidden_sizes), action_size, networks.get_activation(config.activation),
                          networks.get_compute_dtype(config.compute_dtype))

    def init(key: jax.Array) -> Params:
        return module.init(key, jnp.zeros((1, obs_size), jnp.float32))

    def apply(params: Params, obs: jax.Array) -> jax.Array:
        chex.assert_axis_dimension(obs, -1, obs_size)
        return module.apply(params, obs)

    return networks.Network(init=init, apply=apply)


def make_critic(config: OffPolicyConfig, obs_size: int, action_size: int) -> Critic:
    """Q(obs, action) MLP on concat(obs, action): (..., 1) or (..., num_atoms) logits."""
    out = config.num_atoms if config.distributional else 1
    module = networks.MLP(tuple(config.critic_hidden_sizes), out, networks.get_activation(config.activation),
                          networks.get_compute_dtype(config.compute_dtype))

    def init(key: jax.Array) -> Params:
        return module.init(key, jnp.zeros((1, obs_size + action_size), jnp.float32))

    def apply(params: Params, obs: jax.Array, action: jax.Array) -> jax.Array:
        chex.assert_axis_dimension(obs, -1, obs_size)
        chex.assert_axis_dimension(action, -1, action_size)
        return module.apply(params, jnp.concatenate([obs, action], axis=-1))

    return Critic(init=init, apply=apply)


def _twin(static: _Static, params: Params, obs: jax.Array, action: jax.Array) -> jax.Array:
    """Both critics: (2, out) for one obs (obs_size,) and action (A,)."""
    return jax.vmap(static.critic.apply, in_axes=(0, None, None))(params, obs, action)


def _q_values(static: _Static, out: jax.Array) -> jax.Array:
    """Expected Q of critic outputs (..., out) -> (...,): the scalar, or sum_j softmax_j z_j."""
    if static.config.distributional:
        return jnp.sum(jax.nn.softmax(out, axis=-1) * static.atoms, axis=-1)
    return out[..., 0]


def _actor_action(static: _Static, params: Params, obs: jax.Array, key: jax.Array | None
                  ) -> tuple[jax.Array, jax.Array]:
    """(action (..., A), log pi (...,)): SAC samples (deterministic tanh(loc) when key is None,
    log-prob then 0); TD3 is deterministic, tanh(output), log-prob 0."""
    out = static.actor.apply(params, obs)
    zeros = jnp.zeros(out.shape[:-1], jnp.float32)
    if static.config.algorithm == "td3":
        return jnp.tanh(out), zeros
    if key is None:
        return networks.deterministic(out), zeros
    raw = networks.sample_raw(out, key)
    return networks.squash(raw), networks.log_prob(out, raw)


# ----------------------------------------------------------------------------- per-transition arithmetic


def clipped_double_q_target(reward: jax.Array, discount: jax.Array, next_q: jax.Array,
                            next_log_prob: jax.Array, alpha: jax.Array) -> jax.Array:
    """y = r + d * (min_i next_q_i - alpha * log pi(a'|s')). reward, discount () and next_q (2,) -> ()."""
    chex.assert_shape(next_q, (2,))
    return reward + discount * (jnp.min(next_q) - alpha * next_log_prob)


def categorical_projection(probs: jax.Array, reward: jax.Array, discount: jax.Array,
                           atoms: jax.Array) -> jax.Array:
    """C51 projection of the distribution of r + d Z onto the support ``atoms``.

    Each atom z_i's target r + d z_i is clipped to [v_min, v_max] and its mass p_i split between
    the two neighbouring atoms in proportion to closeness: atom j receives
    p_i * max(0, 1 - |b_i - j|), b_i = (clip(r + d z_i) - v_min) / dz. (A target on an atom gives
    it all the mass, the case where C51's floor/ceil split loses it.)
    probs (K,), reward (), discount (), atoms (K,) evenly spaced -> (K,), sums to sum(probs).
    """
    chex.assert_rank([probs, reward, discount, atoms], [1, 0, 0, 1])
    chex.assert_equal_shape([probs, atoms])
    num = atoms.shape[0]
    v_min, v_max = atoms[0], atoms[-1]
    delta = (v_max - v_min) / (num - 1)
    b = (jnp.clip(reward + discount * atoms, v_min, v_max) - v_min) / delta  # (K,) in [0, K-1]
    weights = jnp.clip(1.0 - jnp.abs(b[:, None] - jnp.arange(num, dtype=b.dtype)[None, :]), 0.0, 1.0)
    return probs @ weights


def scalar_critic_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """sum_i 0.5 (q_i - y)^2: q (2,), target () -> ()."""
    chex.assert_shape(q, (2,))
    return jnp.sum(0.5 * jnp.square(q - target))


def categorical_critic_loss(logits: jax.Array, target_probs: jax.Array) -> jax.Array:
    """sum_i cross-entropy(target, softmax(logits_i)): logits (2, K), target_probs (K,) -> ()."""
    chex.assert_rank([logits, target_probs], [2, 1])
    return -jnp.sum(target_probs[None, :] * jax.nn.log_softmax(logits, axis=-1))


def sac_actor_objective(q: jax.Array, log_prob: jax.Array, alpha: jax.Array) -> jax.Array:
    """alpha * log pi(a|s) - min_i Q_i(s, a): q (2,), log_prob () -> ()."""
    chex.assert_shape(q, (2,))
    return alpha * log_prob - jnp.min(q)


def alpha_objective(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float) -> jax.Array:
    """exp(log_alpha) * stop_grad(-log pi - target_entropy): alpha falls when the entropy exceeds its target."""
    return jnp.exp(log_alpha) * jax.lax.stop_gradient(-log_prob - target_entropy)


def polyak(target: Params, online: Params, tau: float) -> Params:
    """target <- tau * online + (1 - tau) * target, leaf by leaf."""
    return jax.tree.map(lambda t, o: tau * o + (1.0 - tau) * t, target, online)


# ----------------------------------------------------------------------------- losses of one transition


def critic_target(static: _Static, learner: _Learner, transition: replay.Transition, key: jax.Array) -> jax.Array:
    """The critic target of ONE transition (normalised obs): () scalar y or (num_atoms,) probabilities.

    ``key`` draws TD3's smoothing noise or SAC's next action.
    """
    config = static.config
    if config.algorithm == "td3":
        mean, _ = _actor_action(static, learner.target_policy_params, transition.next_obs, None)
        noise = jnp.clip(config.policy_noise * jax.random.normal(key, mean.shape), -config.noise_clip,
                         config.noise_clip)
        next_action, next_log_prob, alpha = jnp.clip(mean + noise, -1.0, 1.0), jnp.zeros(()), jnp.zeros(())
    else:
        next_action, next_log_prob = _actor_action(static, learner.policy_params, transition.next_obs, key)
        alpha = jnp.exp(learner.log_alpha)
    out = _twin(static, learner.target_critic_params, transition.next_obs, next_action)  # (2, out)
    if not config.distributional:
        return clipped_double_q_target(transition.reward, transition.discount, out[:, 0], next_log_prob, alpha)
    probs = jax.nn.softmax(out, axis=-1)
    chosen = probs[jnp.argmin(_q_values(static, out))]  # clipped double Q: the twin with the smaller mean
    shifted = transition.reward - transition.discount * alpha * next_log_prob
    return categorical_projection(chosen, shifted, transition.discount, static.atoms)


def critic_loss(static: _Static, critic_params: Params, transition: replay.Transition,
                target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(loss (), mean Q of the twins ()) of ONE transition against its target (from ``critic_target``)."""
    out = _twin(static, critic_params, transition.obs, transition.action)
    q = _q_values(static, out)
    if static.config.distributional:
        return categorical_critic_loss(out, target), jnp.mean(q)
    return scalar_critic_loss(q, target), jnp.mean(q)


def actor_loss(static: _Static, policy_params: Params, critic_params: Params, log_alpha: jax.Array | None,
               obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(loss (), log pi(a|s) ()) of ONE normalised observation; see the module docstring."""
    action, log_prob = _actor_action(static, policy_params, obs, key)
    q = _q_values(static, _twin(static, critic_params, obs, action))  # (2,)
    if static.config.algorithm == "td3":
        return -q[0], log_prob
    return sac_actor_objective(q, log_prob, jax.lax.stop_gradient(jnp.exp(log_alpha))), log_prob


# ----------------------------------------------------------------------------- one gradient step


def _apply(optimizer: optax.GradientTransformation, grads: Params, opt_state: optax.OptState,
           params: Params) -> tuple[Params, optax.OptState]:
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def _critic_batch_loss(static: _Static, critic_params: Params, batch: replay.Transition,
                       targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    loss, q = jax.vmap(functools.partial(critic_loss, static, critic_params))(batch, targets)
    return jnp.mean(loss), jnp.mean(q)


def _actor_batch_loss(static: _Static, policy_params: Params, critic_params: Params, log_alpha: jax.Array | None,
                      obs: jax.Array, keys: jax.Array) -> tuple[jax.Array, jax.Array]:
    loss, log_prob = jax.vmap(functools.partial(actor_loss, static, policy_params, critic_params, log_alpha))(
        obs, keys)
    return jnp.mean(loss), log_prob


def _actor_step(static: _Static, obs: jax.Array, key: jax.Array, learner: _Learner) -> tuple[_Learner, Metrics]:
    """The delayed part of a gradient step: actor, SAC's temperature, Polyak targets."""
    config = static.config
    keys = jax.random.split(key, obs.shape[0])
    (loss, log_prob), grads = jax.value_and_grad(functools.partial(_actor_batch_loss, static), has_aux=True)(
        learner.policy_params, learner.critic_params, learner.log_alpha, obs, keys)
    policy_params, policy_opt_state = _apply(static.policy_optimizer, grads, learner.policy_opt_state,
                                             learner.policy_params)
    log_alpha, alpha_opt_state = learner.log_alpha, learner.alpha_opt_state
    if config.algorithm == "sac":
        alpha_grad = jax.grad(lambda la: jnp.mean(alpha_objective(la, log_prob, static.target_entropy)))(log_alpha)
        log_alpha, alpha_opt_state = _apply(static.alpha_optimizer, alpha_grad, alpha_opt_state, log_alpha)
    target_policy = learner.target_policy_params
    if target_policy is not None:
        target_policy = polyak(target_policy, policy_params, config.tau)
    new = learner.replace(
        policy_params=policy_params, policy_opt_state=policy_opt_state, log_alpha=log_alpha,
        alpha_opt_state=alpha_opt_state, target_policy_params=target_policy,
        target_critic_params=polyak(learner.target_critic_params, learner.critic_params, config.tau))
    return new, {"actor_loss": loss, "entropy": -jnp.mean(log_prob)}


def _skip_actor_step(learner: _Learner) -> tuple[_Learner, Metrics]:
    return learner, {"actor_loss": jnp.zeros(()), "entropy": jnp.zeros(())}


def _update_step(static: _Static, buffer: replay.ReplayBuffer, normalizer: normalization.RunningStats,
                 learner: _Learner, key: jax.Array) -> tuple[_Learner, Metrics]:
    """One gradient step on a fresh batch: critics every step, the delayed part every policy_delay-th."""
    config = static.config
    key_sample, key_target, key_actor = jax.random.split(key, 3)
    batch = replay.sample(buffer, key_sample, config.batch_size)
    batch = batch._replace(obs=_normalize(static, normalizer, batch.obs),
                           next_obs=_normalize(static, normalizer, batch.next_obs))
    targets = jax.vmap(functools.partial(critic_target, static, learner))(
        batch, jax.random.split(key_target, config.batch_size))
    targets = jax.lax.stop_gradient(targets)
    (loss, q), grads = jax.value_and_grad(functools.partial(_critic_batch_loss, static), has_aux=True)(
        learner.critic_params, batch, targets)
    critic_params, critic_opt_state = _apply(static.critic_optimizer, grads, learner.critic_opt_state,
                                             learner.critic_params)
    learner = learner.replace(critic_params=critic_params, critic_opt_state=critic_opt_state)
    delayed = learner.gradient_steps % config.policy_delay == 0
    learner, actor_metrics = jax.lax.cond(
        delayed, functools.partial(_actor_step, static, batch.obs, key_actor), _skip_actor_step, learner)
    learner = learner.replace(gradient_steps=learner.gradient_steps + 1)
    metrics = {"critic_loss": loss, "q": q, "actor_updated": delayed.astype(jnp.float32), **actor_metrics}
    if config.algorithm == "sac":
        metrics["alpha"] = jnp.exp(learner.log_alpha)
    return learner, metrics


def _updates(static: _Static, buffer: replay.ReplayBuffer, normalizer: normalization.RunningStats,
             learner: _Learner, key: jax.Array) -> tuple[_Learner, Metrics]:
    """updates_per_iteration gradient steps (lax.scan); metrics averaged (actor's over its own steps)."""
    learner, metrics = jax.lax.scan(functools.partial(_update_step, static, buffer, normalizer), learner,
                                    jax.random.split(key, static.config.updates_per_iteration))
    updated = metrics.pop("actor_updated")
    count = jnp.maximum(jnp.sum(updated), 1.0)
    out = {k: jnp.sum(metrics[k] * updated) / count for k in ("actor_loss", "entropy")}
    out.update({k: jnp.mean(v) for k, v in metrics.items() if k not in out})
    out["gradient_steps"] = jnp.asarray(static.config.updates_per_iteration, jnp.float32)
    return learner, out


def _no_updates(static: _Static, learner: _Learner, key: jax.Array) -> tuple[_Learner, Metrics]:
    """Before learning_starts: nothing learns; metrics of the same structure, zero."""
    del key
    metrics = {k: jnp.zeros((), jnp.float32) for k in ("critic_loss", "q", "actor_loss", "entropy", "gradient_steps")}
    if static.config.algorithm == "sac":
        metrics["alpha"] = jnp.exp(learner.log_alpha)
    return learner, metrics


# ----------------------------------------------------------------------------- acting and the iteration


def _normalize(static: _Static, stats: normalization.RunningStats, obs: jax.Array) -> jax.Array:
    if static.config.normalize_observations:
        return normalization.normalize(stats, obs)
    return obs


def _explore(static: _Static, state: OffPolicyState, key: jax.Array) -> jax.Array:
    """(num_envs, A) behaviour actions: uniform before learning_starts, else the exploring actor."""
    config = static.config
    key_policy, key_uniform = jax.random.split(key)
    obs = _normalize(static, state.normalizer, state.env_state.obs)
    shape = (config.num_envs, static.env.action_size)
    if config.algorithm == "sac":
        action, _ = _actor_action(static, state.policy_params, obs, key_policy)
    else:
        mean, _ = _actor_action(static, state.policy_params, obs, None)
        noise = state.exploration_std[:, None] * jax.random.normal(key_policy, shape)
        action = jnp.clip(mean + noise, -1.0, 1.0)
    uniform = jax.random.uniform(key_uniform, shape, minval=-1.0, maxval=1.0)
    return jnp.where(state.replay.size < config.learning_starts, uniform, action)


def _draw_exploration_std(config: OffPolicyConfig, key: jax.Array) -> jax.Array:
    return jax.random.uniform(key, (config.num_envs,), minval=config.exploration_noise_min,
                              maxval=config.exploration_noise_max)


def _nonfinite_count(env_state: Any) -> jax.Array:
    flags = getattr(env_state, "metrics", {}).get(envs_base.NONFINITE)
    return jnp.zeros((), jnp.float32) if flags is None else jnp.sum(flags)


def _insert(static: _Static, buffer: replay.ReplayBuffer, window: replay.NStepWindow) -> replay.ReplayBuffer:
    """The window's oldest n-step transitions into the buffer, once the window is full."""
    return replay.insert(buffer, replay.oldest_transition(window, static.config.gamma), replay.is_full(window))


def _refresh(static: _Static, state: OffPolicyState, key: jax.Array) -> Any:
    """The env states with their next episodes' starts redrawn every refresh_starts_every iterations."""
    if not getattr(static.env, "fresh_starts", False):
        return state.env_state
    due = state.iteration % static.config.refresh_starts_every == 0
    return jax.lax.cond(due, lambda s: envs_base.refresh_starts(static.env, s, key), lambda s: s, state.env_state)


def _iteration(static: _Static, state: OffPolicyState) -> tuple[OffPolicyState, Metrics]:
    """One iteration: act, step, insert, normaliser, gradient steps. See module docstring."""
    config = static.config
    key_next, key_act, key_std, key_updates, key_refresh = jax.random.split(state.key, 5)
    env_state = _refresh(static, state, key_refresh)
    obs = env_state.obs
    action = _explore(static, state.replace(env_state=env_state), key_act)
    env_state = jax.vmap(static.env.step)(env_state, action)
    done = env_state.done
    chex.assert_shape(done, (config.num_envs,))
    step = replay.Step(obs=obs, action=action, reward=env_state.reward * config.reward_scaling, done=done,
                       terminated=done * (1.0 - env_state.truncated), final_obs=env_state.final_obs)
    window = replay.push(state.window, step)
    buffer = _insert(static, state.replay, window)
    normalizer = normalization.update(state.normalizer, obs) if config.normalize_observations else state.normalizer

    learner = _Learner(**{name: getattr(state, name) for name in _LEARNER_FIELDS})
    learner, metrics = jax.lax.cond(
        buffer.size >= max(config.learning_starts, 1),
        functools.partial(_updates, static, buffer, normalizer),
        functools.partial(_no_updates, static),
        learner, key_updates)
    metrics = {f"train/{k}": v for k, v in metrics.items()}

    episode_return = state.episode_return + env_state.reward
    episode_length = state.episode_length + 1
    finished = jnp.sum(done)
    metrics["train/episode_reward"] = jnp.sum(done * episode_return) / jnp.maximum(finished, 1.0)
    metrics["train/episode_length"] = jnp.sum(done * episode_length) / jnp.maximum(finished, 1.0)
    metrics["train/episodes_finished"] = finished
    metrics["train/mean_reward_per_step"] = jnp.mean(env_state.reward)
    metrics["train/nonfinite_resets"] = _nonfinite_count(env_state)
    metrics["train/buffer_size"] = buffer.size.astype(jnp.float32)
    metrics["train/learning_rate"] = jnp.asarray(config.critic_learning_rate, jnp.float32)

    new_state = state.replace(
        **{name: getattr(learner, name) for name in _LEARNER_FIELDS},
        normalizer=normalizer,
        replay=buffer,
        window=window,
        env_state=env_state,
        exploration_std=jnp.where(done > 0, _draw_exploration_std(config, key_std), state.exploration_std),
        key=key_next,
        iteration=state.iteration + 1,
        episode_return=episode_return * (1.0 - done),
        episode_length=jnp.where(done > 0, 0, episode_length),
    )
    return new_state, metrics


def _init(static: _Static, key: jax.Array) -> OffPolicyState:
    config, env = static.config, static.env
    key_actor, key_critic, key_env, key_std, key_train = jax.random.split(key, 5)
    policy_params = static.actor.init(key_actor)
    critic_params = jax.vmap(static.critic.init)(jax.random.split(key_critic, 2))
    env_state = jax.vmap(env.reset)(jax.random.split(key_env, config.num_envs))
    obs_size, action_size = env.observation_size, env.action_size
    chex.assert_shape(env_state.obs, (config.num_envs, obs_size))
    example = replay.Transition(obs=jnp.zeros((obs_size,)), action=jnp.zeros((action_size,)), reward=jnp.zeros(()),
                                discount=jnp.zeros(()), next_obs=jnp.zeros((obs_size,)))
    zeros = jnp.zeros((config.num_envs,), jnp.float32)
    step = replay.Step(obs=env_state.obs, action=jnp.zeros((config.num_envs, action_size)), reward=zeros,
                       done=zeros, terminated=zeros, final_obs=env_state.obs)
    sac = config.algorithm == "sac"
    log_alpha = jnp.log(jnp.asarray(config.init_alpha, jnp.float32)) if sac else None
    return OffPolicyState(
        policy_params=policy_params,
        critic_params=critic_params,
        target_critic_params=jax.tree.map(jnp.copy, critic_params),
        target_policy_params=None if sac else jax.tree.map(jnp.copy, policy_params),
        policy_opt_state=static.policy_optimizer.init(policy_params),
        critic_opt_state=static.critic_optimizer.init(critic_params),
        log_alpha=log_alpha,
        alpha_opt_state=static.alpha_optimizer.init(log_alpha) if sac else None,
        normalizer=normalization.init(obs_size),
        replay=replay.init(example, config.buffer_size),
        window=replay.init_window(step, config.n_step),
        env_state=env_state,
        exploration_std=_draw_exploration_std(config, key_std),
        key=key_train,
        iteration=jnp.zeros((), jnp.int32),
        gradient_steps=jnp.zeros((), jnp.int32),
        episode_return=zeros,
        episode_length=jnp.zeros((config.num_envs,), jnp.int32),
    )


def _policy_fn(static: _Static, params: PolicyParams, obs: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Action in [-1, 1] for obs (..., obs_size): deterministic when key is None; else SAC samples
    and TD3 adds N(0, exploration_noise_max^2) noise (clipped to [-1, 1])."""
    obs = _normalize(static, params.normalizer, obs)
    if key is None or static.config.algorithm == "sac":
        action, _ = _actor_action(static, params.policy, obs, key)
        return action
    mean, _ = _actor_action(static, params.policy, obs, None)
    return jnp.clip(mean + static.config.exploration_noise_max * jax.random.normal(key, mean.shape), -1.0, 1.0)


def _evaluate(evaluator: Callable[[PolicyParams, jax.Array], Metrics], state: OffPolicyState,
              key: jax.Array) -> Metrics:
    return evaluator(policy_bundle(state), key)


def _optimizer(learning_rate: float, max_grad_norm: float) -> optax.GradientTransformation:
    clip = optax.clip_by_global_norm(max_grad_norm) if max_grad_norm > 0 else optax.identity()
    return optax.chain(clip, optax.adam(learning_rate))


def make_off_policy_train(
    env: Any,
    config: OffPolicyConfig,
    num_iterations: int,
    num_seeds: int = 1,
    mesh: Any = None,
    vmap_seeds: bool = True,
    eval_env: Any = None,
) -> Trainer:
    """Builds the jitted SAC or TD3 functions for ``env``: the same ``Trainer`` as ``make_train``'s.

    Args:
      env: an env with reset/step/observation_size/action_size/episode_length (jaxhum.envs).
      config: off-policy hyperparameters; validated here.
      num_iterations: planned number of iterations (checked only: no schedule depends on it).
      num_seeds: K independent train states in one program (``jaxhum.rl.parallel``).
      mesh: must be None (one device); see ``OffPolicyConfig.check_devices``.
      vmap_seeds: as for ``make_train``.
      eval_env: the env ``evaluate`` runs the policy in (same sizes as ``env``); None: ``env``.

    ``iteration`` donates its argument, so only the returned state may be used after.
    """
    config.validate()
    if not isinstance(num_iterations, int) or num_iterations <= 0:
        raise ValueError(f"num_iterations: must be a positive integer, got {num_iterations!r}")
    config.check_devices(1 if mesh is None else mesh.devices.size)
    if eval_env is not None and (eval_env.observation_size, eval_env.action_size) != (
            env.observation_size, env.action_size):
        raise ValueError(f"eval_env: must have env's observation and action sizes "
                         f"({env.observation_size}, {env.action_size}), got "
                         f"({eval_env.observation_size}, {eval_env.action_size})")
    static = _Static(
        env=env,
        config=config,
        actor=make_actor(config, env.observation_size, env.action_size),
        critic=make_critic(config, env.observation_size, env.action_size),
        atoms=jnp.linspace(config.v_min, config.v_max, config.num_atoms, dtype=jnp.float32),
        policy_optimizer=_optimizer(config.actor_learning_rate, config.max_grad_norm),
        critic_optimizer=_optimizer(config.critic_learning_rate, config.max_grad_norm),
        alpha_optimizer=optax.adam(config.alpha_learning_rate),
        target_entropy=config.target_entropy_per_action * env.action_size,
    )
    policy_fn = functools.partial(_policy_fn, static)
    evaluator = evaluation_lib.make_evaluator(env if eval_env is None else eval_env, policy_fn, config.num_eval_envs)
    init, iteration, evaluate = parallel.compile_trainer(
        functools.partial(_init, static),
        functools.partial(_iteration, static),
        functools.partial(_evaluate, evaluator),
        num_seeds=num_seeds,
        mesh=None,
        vmap_seeds=vmap_seeds,
    )
    return Trainer(init=init, iteration=iteration, evaluate=evaluate, policy_fn=policy_fn)
