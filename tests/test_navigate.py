"""navigate: reward terms, command mapping and goal frames by hand; goal sampling; config errors;
the step equal to the joystick env and its frozen policy called by hand at the same rates; the
low-level policy frozen under a PPO iteration; the exported pair run with numpy equal to the step.

One module-scoped env (low_level=untrained: a freshly initialised joystick actor, so no joystick
run is trained here) is compiled once and shared; episodes are short (1 s, 5 high-level steps).
"""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import navigate as experiment
from jaxhum import config as config_lib
from jaxhum import envs
from jaxhum.envs import navigate
from jaxhum.envs.terms import commands
from jaxhum.envs.terms import navigate as terms
from jaxhum.rl import networks, train
from jaxhum.run import checkpoint
from jaxhum.run import config as run_config
from jaxhum.tools import deploy
from jaxhum.tools import export as export_tool

PERIOD = 0.2  # s: K = 10 joystick steps of 0.02 s


@pytest.fixture(scope="module")
def env():
    return envs.make("navigate", low_level=navigate.UNTRAINED, high_level_period=PERIOD, episode_seconds=1.0)


@pytest.fixture(scope="module")
def compiled(env):
    return jax.jit(env.reset), jax.jit(env.step_without_reset)


@pytest.fixture(scope="module")
def low_compiled(env):
    """(joystick step_without_reset, low-level act), jitted: the navigate step's parts by hand."""
    return jax.jit(env.low_level.env.step_without_reset), jax.jit(env.low_level.act)


# ----------------------------------------------------------------------------- pure terms by hand


def test_reward_terms_by_hand():
    d, d0 = jnp.asarray(1.5), jnp.asarray(2.0)
    assert float(terms.progress(distance=d, prev_distance=d0, period=0.25)) == pytest.approx(2.0)
    assert float(terms.progress(distance=d0, prev_distance=d, period=0.5)) == pytest.approx(-1.0)
    assert float(terms.distance_kernel(distance=d, distance_sigma=4.0)) == pytest.approx(np.exp(-2.25 / 4.0))
    near = dict(has_heading=jnp.asarray(1.0), heading_radius=1.0, heading_sigma=0.25)
    e = jnp.asarray(0.5)
    assert float(terms.heading_kernel(heading_error=e, distance=jnp.asarray(0.5), **near)) == pytest.approx(
        np.exp(-1.0))
    assert float(terms.heading_kernel(heading_error=e, distance=jnp.asarray(1.5), **near)) == 0.0  # too far
    assert float(terms.heading_kernel(heading_error=e, distance=jnp.asarray(0.5),
                                      **{**near, "has_heading": jnp.asarray(0.0)})) == 0.0  # no heading asked
    assert float(terms.reaching_bonus(first_reached=jnp.asarray(True))) == 1.0
    assert float(terms.reaching_bonus(first_reached=jnp.asarray(False))) == 0.0
    a, b = jnp.asarray([0.5, -0.5, 1.0]), jnp.asarray([0.0, 0.5, 1.0])
    assert float(terms.command_rate(action=a, last_action=b)) == pytest.approx(0.25 + 1.0)


def test_weighted_reward_adds_up_in_a_step(env, compiled):
    reset, step = compiled
    state = step(reset(jax.random.key(3)), jnp.asarray([0.3, 0.0, -0.2]))
    terms_sum = sum(float(v) for k, v in state.metrics.items() if k.startswith("reward/"))
    assert float(state.reward) == pytest.approx(terms_sum, rel=1e-5, abs=1e-6)
    assert {f"reward/{n}" for n in navigate.DEFAULT_REWARD_WEIGHTS} <= set(state.metrics)
    w = navigate.DEFAULT_REWARD_WEIGHTS["command_rate"]
    assert float(state.metrics["reward/command_rate"]) == pytest.approx(w * (0.09 + 0.04), rel=1e-5)


def test_command_mapping_by_hand():
    low, high = jnp.asarray([-0.5, -0.3, -0.5]), jnp.asarray([1.0, 0.3, 0.5])
    cmd = lambda a: np.asarray(terms.command_from_action(jnp.asarray(a), low=low, high=high))  # noqa: E731
    np.testing.assert_allclose(cmd([0.0, 0.0, 0.0]), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(cmd([1.0, -1.0, 1.0]), [1.0, -0.3, 0.5])
    np.testing.assert_allclose(cmd([-0.5, 0.5, 2.0]), [-0.25, 0.15, 0.5])  # clipped to [-1, 1]
    # A range without zero: a = 0 is its end nearest zero, -1 and +1 its ends.
    shifted = terms.command_from_action(jnp.asarray([0.0, -1.0, 1.0]), low=jnp.asarray([0.2, 0.2, 0.2]),
                                        high=jnp.asarray([1.0, 1.0, 1.0]))
    np.testing.assert_allclose(np.asarray(shifted), [0.2, 0.2, 1.0])


def test_goal_in_robot_frame_and_success_rule_by_hand():
    goal = jnp.asarray([1.0, 2.0, np.pi - 0.1])
    position, heading = terms.goal_in_robot_frame(goal, xy=jnp.asarray([1.0, 0.0]), yaw=jnp.asarray(np.pi / 2))
    np.testing.assert_allclose(np.asarray(position), [2.0, 0.0], atol=1e-6)  # straight ahead
    assert float(heading) == pytest.approx(np.pi / 2 - 0.1, abs=1e-6)
    _, wrapped = terms.goal_in_robot_frame(jnp.asarray([0.0, 0.0, np.pi - 0.1]), xy=jnp.zeros(2),
                                           yaw=jnp.asarray(-np.pi + 0.1))
    assert float(wrapped) == pytest.approx(-0.2, abs=1e-5)  # the short way round
    rot = np.asarray([[np.cos(0.7), -np.sin(0.7), 0], [np.sin(0.7), np.cos(0.7), 0], [0, 0, 1]])
    assert float(terms.yaw_of(jnp.asarray(rot))) == pytest.approx(0.7, abs=1e-6)
    rule = dict(radius=0.3, heading_tolerance=0.3)
    yes = lambda d, e, h: bool(terms.within_goal(distance=jnp.asarray(d), heading_error=jnp.asarray(e),  # noqa: E731
                                                 has_heading=jnp.asarray(h), **rule))
    assert yes(0.29, 2.0, 0.0) and not yes(0.31, 0.0, 0.0)
    assert yes(0.29, 0.29, 1.0) and not yes(0.29, -0.31, 1.0)


def test_telescoped_figures_average_to_the_last():
    figures = jnp.asarray([3.0, 2.5, 2.5, 1.0, 0.7])
    before = jnp.concatenate([figures[:1], figures[:-1]])  # the first step's "before" is the reset's
    steps = jnp.arange(1, 6)
    per_step = jax.vmap(terms.telescoped)(figures, before, steps)
    assert float(jnp.mean(per_step)) == pytest.approx(0.7, rel=1e-6)


# ----------------------------------------------------------------------------- goals


def test_goal_sampling_ranges_and_determinism():
    sample = jax.jit(jax.vmap(lambda k: terms.sample_goal(
        k, start_xy=jnp.asarray([1.0, -1.0]), start_yaw=jnp.asarray(0.5), distance_range=(2.0, 8.0),
        angle_range=(-np.pi, np.pi), heading_share=0.5)))
    keys = jax.random.split(jax.random.key(0), 4000)
    goal, has = map(np.asarray, sample(keys))
    r = np.linalg.norm(goal[:, :2] - [1.0, -1.0], axis=1)
    assert r.min() >= 2.0 - 1e-5 and r.max() <= 8.0 + 1e-5 and r.min() < 2.1 and r.max() > 7.9
    angle = np.arctan2(goal[:, 1] + 1.0, goal[:, 0] - 1.0)
    assert np.histogram(angle, bins=8, range=(-np.pi, np.pi))[0].min() > 350  # every direction
    assert 0.45 < has.mean() < 0.55 and set(np.unique(has)) == {0.0, 1.0}
    assert np.all(goal[has == 0, 2] == 0.0) and np.abs(goal[has == 1, 2]).max() <= np.pi
    again, _ = sample(keys)
    np.testing.assert_array_equal(np.asarray(again), goal)  # the key decides
    assert len(np.unique(goal[:, 0])) == len(goal)
    ahead, none = terms.sample_goal(jax.random.key(1), start_xy=jnp.zeros(2), start_yaw=jnp.asarray(np.pi / 2),
                                    distance_range=(3.0, 3.0), angle_range=(0.0, 0.0), heading_share=0.0)
    np.testing.assert_allclose(np.asarray(ahead), [0.0, 3.0, 0.0], atol=1e-5)  # along the start heading
    assert float(none) == 0.0


def test_reset_draws_the_goal_from_the_key(env, compiled):
    reset, _ = compiled
    a, b, c = (reset(jax.random.key(k)) for k in (5, 5, 6))
    np.testing.assert_array_equal(np.asarray(a.info["goal"]), np.asarray(b.info["goal"]))
    assert not np.array_equal(np.asarray(a.info["goal"]), np.asarray(c.info["goal"]))
    xy = np.asarray(a.data.xpos[env.low_level.env.robot.index(env.sim).root_body_id, :2])
    assert 2.0 - 1e-4 <= np.linalg.norm(np.asarray(a.info["goal"][:2]) - xy) <= 8.0 + 1e-4
    assert a.obs.shape == (env.observation_size,) and a.critic_obs.shape == (env.critic_observation_size,)
    np.testing.assert_allclose(np.asarray(a.obs[2 + 3:2 + 3 + 3]), 0.0)  # standing still commanded at reset


# ----------------------------------------------------------------------------- the hierarchy by hand


def test_step_equals_the_joystick_env_and_policy_by_hand(env, compiled, low_compiled):
    reset, step = compiled
    low = env.low_level
    assert env.low_level_steps == 10 and env.dt == pytest.approx(PERIOD)
    state = reset(jax.random.key(7))
    action = jnp.asarray([0.8, -0.4, 0.5])
    got = step(state, action)
    cmd = terms.command_from_action(action, low=jnp.asarray([-0.5, -0.3, -0.5]), high=jnp.asarray([1.0, 0.3, 0.5]))
    by_hand = commands.with_command(low.env, state.info["low"], cmd)
    low_step, act = low_compiled
    fell = False
    for _ in range(10):  # K joystick control steps, the same command
        by_hand = low_step(by_hand, act(low.params, by_hand.obs))
        fell |= bool(by_hand.done)
    np.testing.assert_allclose(np.asarray(got.data.qpos), np.asarray(by_hand.data.qpos), atol=1e-5)
    np.testing.assert_allclose(np.asarray(got.info["low"].obs), np.asarray(by_hand.obs), atol=1e-4)
    np.testing.assert_allclose(np.asarray(got.info["low"].info["command"]), np.asarray(cmd), atol=1e-7)
    assert int(got.info["low"].step_count) == int(state.info["low"].step_count) + 10
    assert float(got.done) == float(fell)
    # The high-level observation of the reached state, by hand.
    root = low.env.robot.index(env.sim).root_body_id
    xy, rot = np.asarray(by_hand.data.xpos[root, :2]), np.asarray(by_hand.data.xmat[root])
    yaw = np.arctan2(rot[1, 0], rot[0, 0])
    d = np.asarray(state.info["goal"][:2]) - xy
    ahead = [np.cos(yaw) * d[0] + np.sin(yaw) * d[1], -np.sin(yaw) * d[0] + np.cos(yaw) * d[1]]
    np.testing.assert_allclose(np.asarray(got.obs[:2]), ahead, atol=1e-4)
    np.testing.assert_allclose(np.asarray(got.obs[5:8]), np.asarray(cmd), atol=1e-6)  # the followed command
    assert float(got.obs[-1]) == pytest.approx(1.0 - 1 / env.episode_length)
    assert float(got.metrics["tracking/navigate_final_distance"]) == pytest.approx(np.linalg.norm(d), abs=1e-4)


def test_low_level_is_frozen_outside_the_train_state(env):
    low_leaves = jax.tree.leaves(env.low_level.params)
    before = [np.array(x) for x in low_leaves]
    ppo = train.PPOConfig(num_envs=2, unroll_length=2, num_minibatches=1, num_updates_per_batch=1,
                          policy_hidden_sizes=(8,), value_hidden_sizes=(8,), num_eval_envs=2)
    trainer = train.make_train(env, ppo, num_iterations=1)
    state = trainer.init(jax.random.key(0))
    policy_before = [np.array(x) for x in jax.tree.leaves(state.policy_params)]
    state, metrics = trainer.iteration(state)
    jax.block_until_ready(state)
    # The high-level policy learned; the low-level one is not in the train state and did not change.
    after = jax.tree.leaves(state.policy_params)
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(policy_before, after))
    for a, b in zip(before, jax.tree.leaves(env.low_level.params)):
        np.testing.assert_array_equal(a, np.asarray(b))
    state_ids = {id(x) for x in jax.tree.leaves(state)}
    assert not state_ids & {id(x) for x in low_leaves}
    low_shapes = {np.shape(x) for x in jax.tree.leaves(env.low_level.params.policy) if np.ndim(x) == 2}
    policy_shapes = {np.shape(x) for x in jax.tree.leaves((state.policy_params, state.value_params)) if np.ndim(x) == 2}
    assert not low_shapes & policy_shapes  # no copy of a low-level weight matrix is trained either
    assert all(np.isfinite(float(v)) for v in jax.tree.leaves(metrics))


# ----------------------------------------------------------------------------- a joystick run as the low level


def make_joystick_run(path, env, env_name="joystick"):
    """A joystick (or `env_name`) run directory as the runner leaves one (config.json, a
    checkpoint) holding a freshly initialised actor, without training (the rest of the TrainState
    is zeros)."""
    ppo = train.PPOConfig(num_envs=2, unroll_length=2, num_minibatches=1, num_updates_per_batch=1,
                          policy_hidden_sizes=(16, 16), value_hidden_sizes=(8,), num_eval_envs=2)
    config = run_config.validate(run_config.RunConfig(env_name=env_name, env=config_lib.FrozenMapping(env),
                                                      ppo=ppo, num_timesteps=4, out_dir=str(path)))
    template = run_config.state_template(run_config.build_trainer(config), config)
    state = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype) if not jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key) else jax.random.key(0), template)
    low_env = run_config.build_env(config)
    net = networks.make_policy_network(low_env.observation_size, low_env.action_size, ppo.policy_hidden_sizes)
    normalizer = state.normalizer.replace(count=jnp.float32(10.0), mean=jnp.full_like(state.normalizer.mean, 0.1),
                                          std=jnp.full_like(state.normalizer.std, 2.0))
    state = state.replace(policy_params=net.init(jax.random.key(3)), normalizer=normalizer)
    store = checkpoint.CheckpointStore(path)
    store.save(4, state, config_lib.to_json(config), {"iteration": 1})
    store.close()
    (path / "config.json").write_text(json.dumps(config_lib.to_json(config)))
    return path


def test_a_joystick_run_directory_is_loaded_as_the_frozen_low_level(tmp_path):
    path = make_joystick_run(tmp_path / "joystick", {"observation_history": 2, "vx_range": (-0.2, 0.6)})
    env = envs.make("navigate", low_level=str(path), high_level_period=0.4)
    low = env.low_level
    assert low.source == str(path) and low.env.name == "joystick" and low.env.observation_history == 2
    assert env.low_level_steps == 20 and env.dt == pytest.approx(0.4)
    saved = checkpoint.load_run(path).params
    for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(low.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(np.asarray(low.params.normalizer.std), 2.0)
    # The command mapping follows this run's ranges: a = 1 asks for its top speed.
    low_r, high_r = navigate.command_ranges(low.env)
    np.testing.assert_allclose(np.asarray(terms.command_from_action(jnp.ones(3), low=low_r, high=high_r)),
                               [0.6, 0.3, 0.5])
    with pytest.raises(ValueError) as err:
        envs.make_config("navigate", low_level=str(make_walk_run(tmp_path / "walk")))
    assert "'walk' run, not a joystick run" in _one_line(err, "low_level")


# ----------------------------------------------------------------------------- the exported pair


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(run directory, export directory) of a navigate run as `env`'s (untrained low level),
    exported with `python -m jaxhum.export`."""
    root = tmp_path_factory.mktemp("navigate_export")
    run_dir = make_joystick_run(root / "navigate", {"low_level": navigate.UNTRAINED, "high_level_period": PERIOD,
                                                    "episode_seconds": 1.0}, env_name="navigate")
    assert export_tool.main([str(run_dir), "--out", str(root / "export")]) == 0
    return run_dir, root / "export"


def test_exported_pair_in_numpy_equals_the_navigate_step(env, compiled, low_compiled, exported):
    run_dir, out = exported
    meta = json.loads((out / "policy.json").read_text())
    assert {p.name for p in out.iterdir()} == {"policy.onnx", "policy.npz", "low_level.onnx", "low_level.npz",
                                               "policy.json", "deploy.py"}
    low = env.low_level
    assert meta["task"] == "navigate" and meta["low_level"]["task"] == "joystick"
    assert meta["high_level_period_steps"] == 10 and meta["high_level_period_s"] == pytest.approx(PERIOD)
    assert meta["control_dt"] == pytest.approx(low.env.dt) == meta["low_level"]["control_dt"]
    assert [x["name"] for x in meta["low_level"]["observation_layout"]] == [n for n, _ in low.env.observation_layout]
    offset = commands.command_offset(low.env)
    assert (meta["command"]["low_level_frame_start"], meta["command"]["low_level_frame_stop"]) == (offset, offset + 3)
    np.testing.assert_allclose(meta["command"]["low"], [-0.5, -0.3, -0.5])
    np.testing.assert_allclose(meta["command"]["high"], [1.0, 0.3, 0.5])

    run = checkpoint.load_run(run_dir)
    high_act = jax.jit(run.act)
    reset, step = compiled
    low_step, low_act = low_compiled
    pair = deploy.PolicyPair.load(out)
    frame_size = low.env.observation_size // low.env.observation_history
    state = reset(jax.random.key(11))
    followed = []
    for _ in range(3):  # three high-level steps: 30 low-level ones
        action = high_act(run.params, state.obs)
        cmd = terms.command_from_action(action, low=jnp.asarray(meta["command"]["low"]),
                                        high=jnp.asarray(meta["command"]["high"]))
        by_hand = commands.with_command(low.env, state.info["low"], cmd)
        for k in range(10):
            assert pair.due == (k == 0)
            # Between decisions the pair holds the command: a different high_obs changes nothing.
            high_obs = np.asarray(state.obs) + (0.0 if k == 0 else 1.0)
            frame = np.array(by_hand.obs[:frame_size])
            frame[offset:offset + 3] = 9.0  # the pair writes the command it holds
            got = pair(high_obs, frame)
            want = low_act(low.params, by_hand.obs)
            np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)
            np.testing.assert_allclose(pair.command, np.asarray(cmd), atol=1e-6)
            by_hand = low_step(by_hand, want)
        followed.append(pair.command.copy())
        state = step(state, action)
        np.testing.assert_allclose(np.asarray(state.info["low"].data.qpos), np.asarray(by_hand.data.qpos), atol=1e-5)
    assert min(np.abs(a - b).max() for a, b in zip(followed, followed[1:])) > 1e-4  # the command did change
    pair.reset()
    assert pair.due and pair.history.frames is None


def test_exported_pair_refuses_missing_files_on_one_line(exported, tmp_path):
    _, out = exported
    pair_dir = tmp_path / "pair"
    shutil.copytree(out, pair_dir)
    (pair_dir / "low_level.npz").unlink()
    with pytest.raises(ValueError) as err:
        deploy.PolicyPair.load(pair_dir)
    assert "low_level.npz is missing" in _one_line(err, "low_level")
    meta = json.loads((out / "policy.json").read_text())
    (pair_dir / "policy.json").write_text(json.dumps(meta["low_level"]))  # a single policy's export
    with pytest.raises(ValueError) as err:
        deploy.PolicyPair.load(pair_dir)
    assert "not a policy pair" in _one_line(err, "low_level")
    with pytest.raises(ValueError) as err:  # the high level's action is a command, not controls
        deploy.Policy.load(str(out / "policy.npz")).ctrl(np.zeros(3))
    assert "not controls" in _one_line(err, "ctrl")
    pair = deploy.PolicyPair.load(out)
    with pytest.raises(ValueError) as err:
        pair(None, np.zeros(pair.low.obs_size // pair.history.history, np.float32))
    assert "required" in _one_line(err, "high_obs")


def make_walk_run(path):
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config_lib.to_json(run_config.RunConfig(env_name="walk"))))
    return path


# ----------------------------------------------------------------------------- config


def _one_line(err: pytest.ExceptionInfo, field: str) -> str:
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{field}: "), text
    return text


def test_config_errors_are_one_line_naming_the_field(tmp_path):
    with pytest.raises(ValueError) as err:
        envs.make_config("navigate")
    assert "required" in _one_line(err, "low_level")
    with pytest.raises(ValueError) as err:
        envs.make_config("navigate", low_level=str(tmp_path / "missing"))
    assert "no such run directory" in _one_line(err, "low_level")
    with pytest.raises(ValueError) as err:
        envs.make_config("navigate", low_level=str(tmp_path))
    assert "not a run directory" in _one_line(err, "low_level")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError) as err:
        envs.make_config("navigate", low_level=str(tmp_path))
    assert "no readable config.json" in _one_line(err, "low_level")
    for field, value, words in (("goal_distance", (8.0, 2.0), "low <= high"),
                                ("goal_heading_share", 1.5, "[0, 1]"),
                                ("high_level_period", 0.0, "> 0"),
                                ("reward_weights", {"bogus": 1.0}, "unknown reward term")):
        with pytest.raises(ValueError) as err:
            envs.make_config("navigate", low_level=navigate.UNTRAINED, **{field: value})
        assert words in _one_line(err, field)
    with pytest.raises(ValueError) as err:
        envs.make("navigate", low_level=navigate.UNTRAINED, high_level_period=0.25)
    assert "whole multiple" in _one_line(err, "high_level_period")


def test_presets_validate_and_the_low_level_alias():
    cpu = run_config.validate(experiment.get_config("cpu"))
    assert cpu.env["low_level"] == navigate.UNTRAINED and cpu.env_name == "navigate"
    with pytest.raises(Exception, match="^env.low_level: required"):
        run_config.validate(experiment.get_config("gpu"))
    assert experiment._with_low_level_alias(["low_level=runs/j", "--seed", "1"]) == ["env.low_level=runs/j",
                                                                                       "--seed", "1"]
