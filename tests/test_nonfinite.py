"""Non-finite physics: an env whose step goes NaN/inf is reset at once, flagged, and never
carries NaN into the learner (jaxhum.envs.base.with_autoreset, train/nonfinite_resets)."""

import chex
import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhum
from jaxhum.rl import PPOConfig, make_train

NUM_ENVS = 4
EPISODE_LENGTH = 6  # as in test_envs.py, so the two modules share compiled steps


@pytest.fixture(scope="module")
def humanoid():
    env = jaxhum.envs.make("humanoid_run", episode_length=EPISODE_LENGTH)
    reset = jax.jit(jax.vmap(env.reset))
    step = jax.jit(jax.vmap(env.step))
    return env, reset(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS)), step


def _row(tree, i):
    return jax.tree.map(lambda x: np.asarray(x[i]), tree)


def test_planted_nan_and_inf_reset_that_env_only(humanoid):
    env, state, step = humanoid
    action = jax.random.uniform(jax.random.PRNGKey(1), (NUM_ENVS, env.action_size), minval=-1, maxval=1)
    clean = step(state, action)
    planted = state.replace(data=state.data.replace(
        qvel=state.data.qvel.at[1].set(jnp.nan), qpos=state.data.qpos.at[2, 3].set(jnp.inf)))
    out = step(planted, action)

    np.testing.assert_array_equal(out.metrics["nonfinite"], [0.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(clean.metrics["nonfinite"], np.zeros(NUM_ENVS))
    for i in (0, 3):  # the other envs are untouched, bit for bit
        chex.assert_trees_all_equal(_row(out, i), _row(clean, i))
    for i in (1, 2):  # reset from its stored start, terminated, nothing non-finite left
        assert float(out.done[i]) == 1.0 and float(out.truncated[i]) == 0.0
        assert float(out.reward[i]) == 0.0 and int(out.step_count[i]) == 0
        np.testing.assert_array_equal(out.data.qpos[i], state.first_data.qpos[i])
        np.testing.assert_array_equal(out.data.qvel[i], state.first_data.qvel[i])
        np.testing.assert_array_equal(out.obs[i], state.first_obs[i])
        np.testing.assert_array_equal(out.final_obs[i], state.first_obs[i])
        assert all(float(v[i]) == 0.0 for k, v in out.metrics.items() if k != "nonfinite")
    chex.assert_tree_all_finite((out.data.qpos, out.data.qvel, out.obs, out.final_obs, out.critic_obs,
                                 out.final_critic_obs, out.reward, out.metrics))
    # The next step goes on normally from the restored start.
    again = step(out, action)
    np.testing.assert_array_equal(again.metrics["nonfinite"], np.zeros(NUM_ENVS))


def test_reset_state_has_the_key(humanoid):
    _, state, _ = humanoid
    np.testing.assert_array_equal(state.metrics["nonfinite"], np.zeros(NUM_ENVS))


def test_ppo_iteration_with_a_planted_nan_stays_finite():
    env = helpers.make_slider_env(episode_length=50)
    config = PPOConfig(num_envs=4, unroll_length=5, num_minibatches=2, num_updates_per_batch=2,
                       policy_hidden_sizes=(8,), value_hidden_sizes=(8,), num_eval_envs=2)
    trainer = make_train(env, config, num_iterations=2)
    state = trainer.init(jax.random.key(0))
    env_state = state.env_state
    state = state.replace(env_state=env_state.replace(
        data=env_state.data.replace(qvel=env_state.data.qvel.at[1].set(jnp.nan))))
    policy_before = jax.tree.map(np.asarray, state.policy_params)

    state, metrics = trainer.iteration(state)
    assert float(metrics["train/nonfinite_resets"]) == 1.0
    chex.assert_tree_all_finite(metrics)
    # Any NaN in the batch (obs, actions, rewards, bootstrap values, advantages) would reach the
    # gradients and from there every parameter, the Adam moments and the normalizer.
    chex.assert_tree_all_finite((state.policy_params, state.value_params, state.opt_state, state.normalizer,
                                 state.episode_return, state.env_state.obs, state.env_state.data.qvel))
    assert not all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(policy_before), jax.tree.leaves(state.policy_params)))  # it did learn

    state, metrics = trainer.iteration(state)
    assert float(metrics["train/nonfinite_resets"]) == 0.0
