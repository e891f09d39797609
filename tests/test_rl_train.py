"""make_train / evaluation on a tiny pure-JAX point-mass env that follows the jaxhum env interface."""

import dataclasses
import time
from collections.abc import Callable
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import struct

from jaxhum.rl import PPOConfig, make_train
from jaxhum.rl.evaluation import make_evaluator


@struct.dataclass
class PointState:
    pos: jax.Array  # (2,)
    target: jax.Array  # (2,)
    rng: jax.Array  # key for the next autoreset
    obs: jax.Array  # (4,)
    reward: jax.Array  # ()
    done: jax.Array  # ()
    truncated: jax.Array  # ()
    final_obs: jax.Array  # (4,)
    step_count: jax.Array  # () int32
    metrics: dict  # 'reward/<term>' -> ()


class PointEnv(NamedTuple):
    """2-D point mass that should move to a random target; same interface as jaxhum.envs."""

    reset: Callable
    step: Callable
    reset_to: Callable
    observation_size: int
    action_size: int
    dt: float
    episode_length: int
    trace_count: list  # Python side effect: +1 each time step is traced


def make_point_env(episode_length: int = 20, terminate_after: int | None = None) -> PointEnv:
    """Reward = -|target - pos| - 0.1 |a|^2. Leaving the box |pos| < 2 terminates the episode;
    with ``terminate_after`` every episode terminates after that many steps instead (test aid)."""
    trace_count = [0]

    def step_count_f(state):
        return (state.step_count + 1).astype(jnp.float32)

    def observe(pos, target):
        return jnp.concatenate([target - pos, pos])

    def reset(key):
        key_pos, key_target, key_next = jax.random.split(key, 3)
        pos = jax.random.uniform(key_pos, (2,), minval=-1.0, maxval=1.0)
        target = jax.random.uniform(key_target, (2,), minval=-1.0, maxval=1.0)
        obs = observe(pos, target)
        zero = jnp.zeros(())
        return PointState(pos=pos, target=target, rng=key_next, obs=obs, reward=zero, done=zero,
                          truncated=zero, final_obs=obs, step_count=jnp.zeros((), jnp.int32),
                          metrics={"reward/distance": zero, "reward/effort": zero, "step_index": zero})

    def step(state, action):
        trace_count[0] += 1
        a = jnp.clip(action, -1.0, 1.0)
        pos = state.pos + 0.2 * a
        obs = observe(pos, state.target)
        metrics = {
            "reward/distance": -jnp.linalg.norm(state.target - pos),
            "reward/effort": -0.1 * jnp.sum(jnp.square(a)),
            "step_index": step_count_f(state),
        }
        reward = metrics["reward/distance"] + metrics["reward/effort"]
        step_count = state.step_count + 1
        if terminate_after is None:
            terminated = jnp.any(jnp.abs(pos) > 2.0)
        else:
            terminated = step_count >= terminate_after
        out_of_time = step_count >= episode_length
        done = jnp.logical_or(terminated, out_of_time).astype(jnp.float32)
        truncated = jnp.logical_and(out_of_time, ~terminated).astype(jnp.float32)
        fresh = reset(state.rng)
        pick = lambda new, old: jnp.where(done > 0, new, old)  # noqa: E731
        return PointState(
            pos=pick(fresh.pos, pos), target=pick(fresh.target, state.target),
            rng=pick(fresh.rng, state.rng),
            obs=pick(fresh.obs, obs), reward=reward, done=done, truncated=truncated,
            final_obs=obs, step_count=pick(fresh.step_count, step_count), metrics=metrics,
        )

    def reset_to(key, qpos, qvel):
        del qvel
        state = reset(key)
        return state.replace(pos=qpos, obs=observe(qpos, state.target),
                             final_obs=observe(qpos, state.target))

    return PointEnv(reset=reset, step=step, reset_to=reset_to, observation_size=4, action_size=2,
                    dt=0.1, episode_length=episode_length, trace_count=trace_count)


SMALL = PPOConfig(
    num_envs=8, unroll_length=5, num_minibatches=2, num_updates_per_batch=2,
    policy_hidden_sizes=(8,), value_hidden_sizes=(8,), num_eval_envs=4,
    lr_schedule="linear",
)


@pytest.fixture(scope="module")
def small():
    env = make_point_env(episode_length=7)
    trainer = make_train(env, SMALL, num_iterations=10)
    return env, trainer


def _key_data(tree):
    is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)  # noqa: E731
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


def _shapes(tree):
    return jax.tree.map(lambda x: (x.shape, x.dtype), tree)


def test_validate():
    with pytest.raises(ValueError, match="num_minibatches"):
        dataclasses.replace(SMALL, num_minibatches=3).validate()
    with pytest.raises(ValueError, match="num_envs"):
        dataclasses.replace(SMALL, num_envs=0).validate()
    with pytest.raises(ValueError, match="activation"):
        dataclasses.replace(SMALL, activation="relu").validate()
    with pytest.raises(ValueError, match="lr_schedule"):
        dataclasses.replace(SMALL, lr_schedule="cosine").validate()


def test_iteration_shapes_finite_compiles_once_and_is_deterministic(small):
    env, trainer = small
    state = trainer.init(jax.random.key(0))
    shapes = _shapes(state)
    twin = jax.tree.map(jnp.copy, state)  # iteration donates its argument
    traces_before = env.trace_count[0]
    metrics_seen = []
    for _ in range(3):
        state, metrics = trainer.iteration(state)
        metrics_seen.append(metrics)
    assert env.trace_count[0] - traces_before == 1  # one trace of the scan body, one compile
    assert _shapes(state) == shapes
    chex.assert_tree_all_finite(_key_data(state))
    assert int(state.iteration) == 3
    for metrics in metrics_seen:
        chex.assert_tree_all_finite(metrics)
        for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                     "total_loss", "learning_rate", "episode_reward", "episodes_finished",
                     "mean_reward_per_step"):
            assert f"train/{name}" in metrics and metrics[f"train/{name}"].shape == ()
    # 8 envs x 5 steps with 7-step episodes: some episodes end in iteration 2.
    assert float(metrics_seen[1]["train/episodes_finished"]) > 0
    assert float(metrics_seen[0]["train/episodes_finished"]) == 0
    assert float(metrics_seen[0]["train/episode_reward"]) == 0.0
    # Linear schedule: 4 gradient steps per iteration out of 40.
    np.testing.assert_allclose(metrics_seen[1]["train/learning_rate"], 3e-4 * (1 - 4 / 40), rtol=1e-5)

    twin, twin_metrics = trainer.iteration(twin)
    chex.assert_trees_all_equal(twin_metrics, metrics_seen[0])


def test_evaluate_leaves_key_and_reports_terms(small):
    env, trainer = small
    state = trainer.init(jax.random.key(1))
    key_before = jax.random.key_data(state.key)
    metrics = trainer.evaluate(state, jax.random.key(2))
    np.testing.assert_array_equal(jax.random.key_data(state.key), key_before)
    assert set(metrics) >= {"eval/episode_reward", "eval/episode_reward_std", "eval/episode_length",
                            "eval/reward/distance", "eval/reward/effort"}
    np.testing.assert_allclose(
        metrics["eval/episode_reward"],
        metrics["eval/reward/distance"] + metrics["eval/reward/effort"], rtol=1e-5)
    assert float(metrics["eval/episode_length"]) <= env.episode_length
    again = trainer.evaluate(state, jax.random.key(2))
    chex.assert_trees_all_equal(metrics, again)


def test_evaluation_counts_only_first_episode():
    env = make_point_env(episode_length=10, terminate_after=3)
    zero_policy = lambda params, obs, key: jnp.zeros(obs.shape[:-1] + (2,))  # noqa: E731
    evaluate = jax.jit(make_evaluator(env, zero_policy, num_eval_envs=3))
    metrics = evaluate(None, jax.random.key(0))
    np.testing.assert_allclose(metrics["eval/episode_length"], 3.0)
    np.testing.assert_allclose(metrics["eval/reward/effort"], 0.0)
    # Reward of a still point: -distance to its target, three times, first episode only.
    states = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 3))
    expected = -3.0 * jnp.linalg.norm(states.target - states.pos, axis=-1)
    np.testing.assert_allclose(metrics["eval/episode_reward"], jnp.mean(expected), rtol=1e-5)
    np.testing.assert_allclose(metrics["eval/episode_reward_std"], jnp.std(expected), rtol=1e-4)
    # Every episode terminated (none reached the time limit); a task metric is averaged per step.
    np.testing.assert_allclose(metrics["eval/fall_rate"], 1.0)
    np.testing.assert_allclose(metrics["eval/step_index"], (1 + 2 + 3) / 3)


def test_evaluation_fall_rate_zero_when_time_runs_out():
    env = make_point_env(episode_length=4)
    zero_policy = lambda params, obs, key: jnp.zeros(obs.shape[:-1] + (2,))  # noqa: E731
    metrics = jax.jit(make_evaluator(env, zero_policy, num_eval_envs=2))(None, jax.random.key(0))
    np.testing.assert_allclose(metrics["eval/fall_rate"], 0.0)
    np.testing.assert_allclose(metrics["eval/episode_length"], 4.0)


def test_learning_point_mass():
    env = make_point_env(episode_length=20)
    config = PPOConfig(
        num_envs=64, unroll_length=20, num_minibatches=4, num_updates_per_batch=4,
        learning_rate=3e-3, entropy_cost=1e-3, discounting=0.9, reward_scaling=1.0,
        policy_hidden_sizes=(32, 32), value_hidden_sizes=(32, 32), num_eval_envs=64,
    )
    num_iterations = 30
    trainer = make_train(env, config, num_iterations=num_iterations)
    state = trainer.init(jax.random.key(0))
    eval_key = jax.random.key(123)
    before = float(trainer.evaluate(state, eval_key)["eval/episode_reward"])
    start = time.time()
    first_train = None
    for _ in range(num_iterations):
        state, metrics = trainer.iteration(state)
        if first_train is None:
            first_train = float(metrics["train/mean_reward_per_step"])
    last_train = float(metrics["train/mean_reward_per_step"])
    after = float(trainer.evaluate(state, eval_key)["eval/episode_reward"])
    print(f"eval {before:.2f} -> {after:.2f}; train/step {first_train:.3f} -> {last_train:.3f}; "
          f"{time.time() - start:.1f}s")
    assert after > before + 0.5 * abs(before)
    assert last_train > first_train


def test_adaptive_learning_rate_follows_the_kl_rule():
    """rsl_rl's rule, by hand: /1.5 above 2 * desired_kl, *1.5 below desired_kl / 2, within bounds."""
    from jaxhum.rl import train as train_lib

    config = dataclasses.replace(SMALL, lr_schedule="adaptive", learning_rate=1e-3, desired_kl=0.01)
    optimizer, _ = train_lib._make_optimizer(config, 10)
    opt_state = optimizer.init({"w": jnp.zeros(3)})

    def stepped(lr, kl):
        state = optax.tree_utils.tree_set(opt_state, learning_rate=jnp.float32(lr))
        return float(optax.tree_utils.tree_get(train_lib._adapt_learning_rate(config, state, jnp.float32(kl)),
                                               "learning_rate"))

    assert float(optax.tree_utils.tree_get(opt_state, "learning_rate")) == pytest.approx(1e-3)
    assert stepped(1e-3, 0.03) == pytest.approx(1e-3 / 1.5)  # KL 0.03 > 0.02
    assert stepped(1e-3, 0.001) == pytest.approx(1e-3 * 1.5)  # KL 0.001 < 0.005
    assert stepped(1e-3, 0.01) == pytest.approx(1e-3)  # in [0.005, 0.02]: unchanged
    assert stepped(1.2e-5, 1.0) == pytest.approx(1e-5)  # floor
    assert stepped(9e-3, 0.0) == pytest.approx(1e-2)  # ceiling
    with pytest.raises(ValueError, match="desired_kl"):
        dataclasses.replace(config, desired_kl=0.0).validate()


def test_adaptive_learning_rate_moves_with_training_and_is_reported():
    """The rate lives in the optimiser state: it changes across iterations and train/learning_rate
    reports the rate each iteration began with."""
    env = make_point_env(episode_length=7)
    config = dataclasses.replace(SMALL, lr_schedule="adaptive", learning_rate=5e-3, desired_kl=1e-4)
    trainer = make_train(env, config, num_iterations=10)
    state = trainer.init(jax.random.key(0))
    rates = []
    for _ in range(3):
        state, metrics = trainer.iteration(state)
        rates.append(float(metrics["train/learning_rate"]))
    assert rates[0] == pytest.approx(5e-3)
    assert rates[2] < rates[0]  # lr 5e-3 on 8x5 samples moves the policy far beyond KL 2e-4
    from jaxhum.rl import train as train_lib

    # Every rate is the initial one times 1.5^k, |k| <= the 12 gradient steps taken.
    final = float(train_lib.learning_rate(config, None, state))
    for rate in rates + [final]:
        k = np.log(rate / 5e-3) / np.log(1.5)
        assert abs(k - round(k)) < 1e-3 and abs(k) <= 12


def test_bfloat16_compute_keeps_float32_params_and_outputs():
    from jaxhum.rl import networks

    nets = {dtype: (networks.make_policy_network(4, 2, (16, 16), "swish", dtype),
                    networks.make_value_network(4, (16,), "swish", dtype)) for dtype in ("float32", "bfloat16")}
    key = jax.random.key(0)
    obs = jax.random.normal(key, (32, 4))
    for i in range(2):  # policy, value
        params = nets["float32"][i].init(key)
        chex.assert_trees_all_equal_structs(params, nets["bfloat16"][i].init(key))
        chex.assert_trees_all_equal(params, nets["bfloat16"][i].init(key))  # float32 either way
        full, half = nets["float32"][i].apply(params, obs), nets["bfloat16"][i].apply(params, obs)
        assert full.dtype == half.dtype == jnp.float32
        assert not np.array_equal(full, half)  # the hidden layers did compute in bfloat16
        np.testing.assert_allclose(half, full, atol=0.05, rtol=0.05)
    with pytest.raises(ValueError, match="compute_dtype"):
        dataclasses.replace(SMALL, compute_dtype="float16").validate()


def test_bfloat16_training_runs_and_stays_finite():
    env = make_point_env(episode_length=7)
    trainer = make_train(env, dataclasses.replace(SMALL, compute_dtype="bfloat16"), num_iterations=10)
    state = trainer.init(jax.random.key(0))
    for _ in range(2):
        state, metrics = trainer.iteration(state)
    chex.assert_tree_all_finite(metrics)
    assert jax.tree.leaves(state.policy_params)[0].dtype == jnp.float32
