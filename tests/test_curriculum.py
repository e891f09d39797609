"""Curriculum levels: the pure update rule, the levels reaching the env, logging, exact resume,
and no effect at all on tasks that declare no curriculum (jaxhum.rl.curriculum)."""

import dataclasses

import chex
import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhum.rl import PPOConfig, curriculum, make_train
from jaxhum.run import checkpoint

RULE = curriculum.CurriculumConfig(metric="train/episode_length", promote_above=8.0, demote_below=4.0,
                                   step=0.25, initial_level=0.5)
# Episodes of the slider last 10 steps, so every iteration that finishes one promotes.
PPO = PPOConfig(num_envs=4, unroll_length=5, num_minibatches=2, num_updates_per_batch=1,
                policy_hidden_sizes=(8,), value_hidden_sizes=(8,), num_eval_envs=2,
                curriculum=dataclasses.replace(RULE, initial_level=0.25))


def _metrics(length, finished=1.0):
    return {"train/episode_length": jnp.float32(length), "train/episodes_finished": jnp.float32(finished)}


@pytest.mark.parametrize("level, length, finished, expected", [
    (0.5, 9.0, 1.0, 0.75),   # passes promote_above: up one step
    (0.5, 8.0, 1.0, 0.75),   # the threshold itself counts
    (0.5, 6.0, 1.0, 0.5),    # between the thresholds: holds
    (0.5, 3.9, 1.0, 0.25),   # below demote_below: down one step
    (0.9, 9.0, 1.0, 1.0),    # clipped at 1
    (0.1, 0.0, 1.0, 0.0),    # clipped at 0
    (0.5, 0.0, 0.0, 0.5),    # no episode finished: nothing measured, holds
])
def test_update_rule(level, length, finished, expected):
    state = curriculum.CurriculumState(levels={"a": jnp.float32(level), "b": jnp.float32(level)})
    new = jax.jit(curriculum.update, static_argnums=0)(RULE, state, _metrics(length, finished))
    for name in ("a", "b"):
        np.testing.assert_allclose(new.levels[name], expected, rtol=1e-6)
        assert new.levels[name].dtype == jnp.float32


def test_empty_curriculum_has_no_leaves_and_no_log():
    state = curriculum.init(RULE, ())
    assert jax.tree.leaves(state) == [] and curriculum.log(state) == {}
    assert curriculum.update(RULE, state, _metrics(9.0)) is state


def test_config_is_checked():
    for field, value, message in [("metric", "eval/x", "must be one of"), ("step", 0.0, "must be in (0, 1]"),
                                  ("initial_level", 1.5, "must be in [0, 1]"),
                                  ("demote_below", 9.0, "must be <= promote_above")]:
        with pytest.raises(ValueError) as err:
            dataclasses.replace(RULE, **{field: value}).validate()
        assert str(err.value).startswith(f"curriculum.{field}: {message}"), err.value


def test_a_task_must_provide_the_levels_it_declares():
    env = helpers.make_slider_env()
    liar = dataclasses.replace(env, curriculum=("range",))  # declares it, but its reset does not put it
    with pytest.raises(ValueError, match=r"^curriculum: task slider declares 'range' but its reset"):
        make_train(liar, PPO, num_iterations=1)


def test_levels_reach_the_env():
    env = helpers.make_slider_env(curriculum=("range",), reset_level=1.0)
    state = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 3))
    unit = np.asarray(state.info["unit"])
    np.testing.assert_allclose(state.obs[:, 2], 2.0 * unit, rtol=1e-6)  # outside training: the task's own level
    levelled = curriculum.apply(state, curriculum.CurriculumState(levels={"range": jnp.float32(0.25)}))
    np.testing.assert_array_equal(levelled.info["curriculum"]["range"], np.full(3, 0.25, np.float32))
    np.testing.assert_array_equal(levelled.first_info["curriculum"]["range"], np.full(3, 0.25, np.float32))
    out = jax.vmap(env.step)(levelled, jnp.zeros((3, 1)))
    np.testing.assert_allclose(out.metrics["target"], 0.5 * unit, rtol=1e-6)


@pytest.fixture(scope="module")
def trainer():
    env = helpers.make_slider_env(curriculum=("range",), reset_level=1.0)
    return make_train(env, PPO, num_iterations=4)


def _run(trainer, state, n):
    rows = []
    for _ in range(n):
        state, metrics = trainer.iteration(state)
        rows.append({k: float(v) for k, v in metrics.items()})
    return state, rows


def test_trainer_moves_logs_and_writes_the_levels(trainer):
    state = trainer.init(jax.random.key(0))
    np.testing.assert_allclose(state.curriculum.levels["range"], 0.25)
    state, rows = _run(trainer, state, 4)
    # Iteration 1 (steps 1-5) finishes no 10-step episode: holds. Iteration 2 finishes them all
    # (length 10 >= 8): +0.25. Then 3 finishes none, 4 finishes the next ones.
    assert [r["train/episodes_finished"] for r in rows] == [0.0, 4.0, 0.0, 4.0]
    assert [r["curriculum/range"] for r in rows] == [0.25, 0.25, 0.5, 0.5]  # the level each rollout used
    np.testing.assert_allclose(state.curriculum.levels["range"], 0.75)
    # The env ran the last rollout at that rollout's level, its targets scaled by it.
    np.testing.assert_array_equal(state.env_state.info["curriculum"]["range"], np.full(4, 0.5, np.float32))
    np.testing.assert_allclose(state.env_state.metrics["target"], 2.0 * 0.5 * state.env_state.info["unit"],
                               rtol=1e-6)


def test_resume_is_exact(trainer, tmp_path):
    """Two iterations, a checkpoint, a restore into a fresh template, two more == four straight."""
    straight, _ = _run(trainer, trainer.init(jax.random.key(1)), 4)
    straight = jax.device_get(helpers.leaves_with_key_data(straight))

    half, _ = _run(trainer, trainer.init(jax.random.key(1)), 2)
    store = checkpoint.CheckpointStore(tmp_path)
    try:
        store.save(2, half, {}, {})
        template = jax.eval_shape(trainer.init, jax.random.key(1))
        restored = store.restore(template=template).state
    finally:
        store.close()
    np.testing.assert_allclose(restored.curriculum.levels["range"], 0.5)
    resumed, _ = _run(trainer, restored, 2)
    chex.assert_trees_all_equal(jax.device_get(helpers.leaves_with_key_data(resumed)), straight)
    np.testing.assert_allclose(resumed.curriculum.levels["range"], 0.75)


def test_tasks_without_curriculum_ignore_the_curriculum_config():
    env = helpers.make_slider_env()
    other = dataclasses.replace(PPO, curriculum=curriculum.CurriculumConfig(step=0.5, initial_level=1.0))
    results = []
    for config in (PPO, other):
        trainer = make_train(env, config, num_iterations=2)
        state, rows = _run(trainer, trainer.init(jax.random.key(2)), 2)
        assert jax.tree.leaves(state.curriculum) == []
        assert not any(k.startswith("curriculum/") for k in rows[-1])
        results.append((jax.device_get(helpers.leaves_with_key_data(state)), rows))
    chex.assert_trees_all_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]
