"""reach on jh1: reward terms by hand, target sampling and resampling, the success rule on hand-made
distance trajectories, the telescoped per-episode figures, config errors, and one compiled env
(both hands) for the smoke, the target schedule, the host observation and the step metrics.

The robot's MJX compile is slow on the CPU: the env's reset and step are compiled once per module.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from helpers import TraceCounter
from mujoco import mjx

import jaxhum
from experiments import reach as reach_experiment
from jaxhum import robots
from jaxhum.envs import reach
from jaxhum.envs.terms import reach as terms
from jaxhum.envs.terms import rewards

NUM_ENVS = 2
DT = 0.02
# 15 control steps; a target every 5 steps, reached within 3 steps and held 2: judged at age 5.
# Targets in 2 cm boxes about the hand points at home, no reset noise: zero actions reach them.
HOME_HAND = (0.059, 0.248, -0.037)  # jh1's left hand point at home, pelvis frame (m); the right mirrored
SHORT = dict(
    hand="both", episode_seconds=0.3, resample_seconds=0.1, reach_seconds=0.06, hold_seconds=0.04,
    reset_noise_scale=0.0, workspace="box",
    left_box_low=tuple(x - 0.01 for x in HOME_HAND), left_box_high=tuple(x + 0.01 for x in HOME_HAND),
    right_box_low=(HOME_HAND[0] - 0.01, -HOME_HAND[1] - 0.01, HOME_HAND[2] - 0.01),
    right_box_high=(HOME_HAND[0] + 0.01, -HOME_HAND[1] + 0.01, HOME_HAND[2] + 0.01),
)


# ----------------------------------------------------------------------------- terms, no env


def test_reward_terms_by_hand():
    d = jnp.array([0.1, 0.03])
    np.testing.assert_allclose(terms.distance_kernel(hand_distance=d, distance_sigma=0.05),
                               (np.exp(-0.01 / 0.05) + np.exp(-0.0009 / 0.05)) / 2, rtol=1e-6)
    np.testing.assert_allclose(terms.fine_distance_kernel(hand_distance=d, fine_distance_sigma=0.002),
                               (np.exp(-5.0) + np.exp(-0.45)) / 2, rtol=1e-6)
    assert float(terms.distance_kernel(hand_distance=jnp.zeros(1), distance_sigma=0.05)) == 1.0
    assert float(terms.hold_bonus(hand_distance=d, reach_tolerance=0.05)) == 0.5
    assert float(terms.hold_bonus(hand_distance=jnp.array([0.05]), reach_tolerance=0.05)) == 0.0  # strict
    np.testing.assert_allclose(terms.base_velocity_xy(local_linvel=jnp.array([0.3, -0.4, 2.0])), 0.25, rtol=1e-6)
    # the reused terms, with reach's quantities
    weights = jnp.asarray(reach.leg_pose_weights(robots.get_robot("jh1")))
    error = jnp.zeros(21).at[0].set(0.2).at[20].set(1.0)  # left hip pitch counts, right elbow does not
    np.testing.assert_allclose(rewards.pose_deviation(joint_pos_error=error, pose_weights=weights), 0.04, rtol=1e-6)
    np.testing.assert_allclose(rewards.flat_orientation(gravity=jnp.array([0.6, 0.0, -0.8])), 0.36, rtol=1e-6)
    np.testing.assert_allclose(rewards.action_rate_l2(action=jnp.array([0.5, 1.0]), last_action=jnp.array([0.0, 1.0])),
                               0.25, rtol=1e-6)
    assert float(rewards.termination(fell=jnp.array(True))) == 1.0


def test_leg_pose_weights_count_legs_only():
    robot = robots.get_robot("jh1")
    w = reach.leg_pose_weights(robot)
    for name, weight in zip(robot.joint_names, w):
        legs = any(p in name for p in ("hip", "knee", "ankle"))
        assert weight == (1.0 if legs else 0.0), name


@pytest.mark.parametrize("kind", ["box", "shell"])
def test_targets_inside_the_ranges_and_pure(kind):
    config = reach.ReachConfig(hand="both", workspace=kind)
    ws = config.workspace_arrays
    sample = jax.jit(jax.vmap(lambda k: terms.sample_targets(k, ws, kind)))
    keys = jax.random.split(jax.random.PRNGKey(3), 512)
    t = np.asarray(sample(keys))
    assert t.shape == (512, 2, 3)
    np.testing.assert_array_equal(t, np.asarray(sample(keys)))  # the same keys, the same targets
    assert np.unique(t[:, 0, 0]).size == 512  # different keys, different targets
    eps = 1e-5
    if kind == "box":
        assert np.all(t >= ws.low - eps) and np.all(t <= ws.high + eps)
        return
    rel = t - ws.center
    r = np.linalg.norm(rel, axis=-1)
    az = np.arctan2(rel[..., 1], rel[..., 0])
    el = np.arcsin(rel[..., 2] / r)
    for value, rng in ((r, ws.radius), (az, ws.azimuth), (el, ws.elevation)):
        assert np.all(value >= rng[:, 0] - eps) and np.all(value <= rng[:, 1] + eps)
    assert np.all(t[:, 0, 1] > 0) and np.all(t[:, 1, 1] < 0)  # left targets left of the pelvis, right ones right


def test_next_target_resamples_every_period():
    ws = reach.ReachConfig(hand="right").workspace_arrays
    key = jax.random.key_data(jax.random.PRNGKey(0))
    info = {"target": terms.sample_targets(jax.random.PRNGKey(1), ws, "shell"), "key": key,
            "resample_in": jnp.asarray(3, jnp.int32)}
    seen, resampled = [np.asarray(info["target"])], []
    for _ in range(9):
        info = terms.next_target(info, ws, "shell", every=3)
        resampled.append(bool(info.pop("resampled")))
        seen.append(np.asarray(info["target"]))
    assert resampled == [False, False, True] * 3
    changed = [not np.array_equal(a, b) for a, b in zip(seen, seen[1:])]
    assert changed == resampled
    again = {"target": jnp.asarray(seen[0]), "key": key, "resample_in": jnp.asarray(3, jnp.int32)}
    for _ in range(3):
        again = terms.next_target(again, ws, "shell", every=3)
    np.testing.assert_array_equal(np.asarray(again["target"]), seen[3])  # deterministic from the key
    held = terms.next_target({**again}, ws, "shell", every=0)
    assert not bool(held["resampled"]) and np.array_equal(np.asarray(held["target"]), seen[3])


# The success rule on hand-made trajectories, at 20 ms: window 2 s = 100 steps, hold 0.5 s = 25 steps.
REACH_STEPS, HOLD_STEPS, TOL = 100, 25, 0.05


def _judge(distances):
    """Final timers after scanning `advance_timers` over distances (T,) of one hand."""
    within = jnp.asarray(distances)[:, None] < TOL

    def body(timers, w):
        return terms.advance_timers(timers, within=w, reach_steps=REACH_STEPS, hold_steps=HOLD_STEPS), None

    timers, _ = jax.lax.scan(body, terms.new_timers(1), within)
    return bool(timers.success[0]), float(terms.time_to_reach(timers, reach_steps=REACH_STEPS, dt=DT)[0])


def _trajectory(enter_step, hold, total=200):
    """Distance 0.3 m, then 0.01 m on steps enter_step .. enter_step + hold - 1 (step s at age s), then 0.3."""
    d = np.full(total, 0.3, np.float32)
    d[enter_step - 1:enter_step - 1 + hold] = 0.01
    return d


def test_success_reached_in_time_and_held():
    success, t = _judge(_trajectory(enter_step=50, hold=HOLD_STEPS))  # at 1.0 s, held 0.5 s
    assert success and t == pytest.approx(1.0)


def test_success_entering_at_the_window_edge():
    success, t = _judge(_trajectory(enter_step=REACH_STEPS, hold=HOLD_STEPS))  # at exactly 2 s
    assert success and t == pytest.approx(2.0)


def test_no_success_when_not_held():
    success, t = _judge(_trajectory(enter_step=50, hold=HOLD_STEPS - 1))  # left after 0.48 s
    assert not success and t == pytest.approx(1.0)


def test_no_success_when_too_late():
    success, t = _judge(_trajectory(enter_step=REACH_STEPS + 1, hold=60))  # at 2.02 s, held long
    assert not success and t == pytest.approx(2.0)  # time to reach capped at the window


def test_no_success_when_reentering_after_the_window():
    d = _trajectory(enter_step=90, hold=5)  # a touch at 1.8 s ...
    d[104:160] = 0.01  # ... and back from 2.1 s on, too late
    success, _ = _judge(d)
    assert not success


def test_never_reached_counts_the_window():
    success, t = _judge(np.full(150, 0.2, np.float32))
    assert not success and t == pytest.approx(2.0)


def test_tally_figures_and_telescoped_mean():
    tally = terms.new_tally()
    ok = terms.ReachTimers(age=jnp.asarray(130), run=jnp.asarray([30]), first_in=jnp.asarray([40]),
                           success=jnp.asarray([True]))
    miss = terms.ReachTimers(age=jnp.asarray(130), run=jnp.asarray([0]), first_in=jnp.asarray([terms.NEVER]),
                             success=jnp.asarray([False]))
    # 10 steps: a success judged after step 3 (distance 0.02), a miss after step 7 (0.2); nothing else
    events = {3: (ok, 0.02), 7: (miss, 0.2)}
    total, before = 0.0, terms.figures(tally)
    for step in range(1, 11):
        timers, dist = events.get(step, (ok, 0.0))
        tally = terms.add_to_tally(tally, timers, distance=jnp.asarray([dist]), judge=jnp.asarray(step in events),
                                   reach_steps=REACH_STEPS, dt=DT)
        now = terms.figures(tally)
        total += float(terms.telescoped(now["reach_missed"], before["reach_missed"], jnp.asarray(step)))
        before = now
    fig = {k: float(v) for k, v in terms.figures(tally).items()}
    assert fig == pytest.approx({"reach_missed": 0.5, "reach_final_distance": 0.11, "reach_time": (0.8 + 2.0) / 2})
    assert total / 10 == pytest.approx(0.5)  # the per-episode mean of the step metric is the episode's figure


@pytest.mark.parametrize("overrides, field", [
    ({"hand": "up"}, "hand"),
    ({"workspace": "cube"}, "workspace"),
    ({"left_box_high": (0.1, 0.3, 0.3)}, "left_box_high"),
    ({"shell_radius": (0.3, 0.2)}, "shell_radius"),
    ({"shell_radius": (-0.1, 0.2)}, "shell_radius"),
    ({"shell_elevation": (-2.0, 0.0)}, "shell_elevation"),
    ({"right_shell_azimuth": (1.0, 0.0)}, "right_shell_azimuth"),
    ({"reach_tolerance": 0.0}, "reach_tolerance"),
    ({"hold_seconds": -0.5}, "hold_seconds"),
    ({"resample_seconds": 1.0}, "resample_seconds"),
    ({"episode_seconds": 2.0}, "episode_seconds"),
    ({"hand_bodies": ("left_forearm",)}, "hand_bodies"),
    ({"reward_weights": {"reach_far": 1.0}}, "reward_weights"),
    ({"robot": "jh9"}, "robot"),
])
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ValueError) as err:
        jaxhum.envs.make_config("reach", **overrides)
    message = str(err.value)
    assert message.startswith(f"{field}") and "\n" not in message, message


def test_missing_hand_body_names_the_field():
    config = reach.ReachConfig(hand_bodies=("left_forearm", "right_claw"))
    with pytest.raises(ValueError, match=r"^hand_bodies: .*right_claw"):
        reach.make(config)


def test_presets():
    cpu, gpu = reach_experiment.get_config("cpu"), reach_experiment.get_config("gpu")
    assert cpu.env_name == gpu.env_name == "reach"
    assert gpu.ppo.num_envs == 8192 and gpu.num_timesteps <= 400_000 * 600
    with pytest.raises(ValueError, match="^preset: "):
        reach_experiment.get_config("tpu")


# ----------------------------------------------------------------------------- one compiled env


@pytest.fixture(scope="module")
def env():
    return jaxhum.envs.make("reach", **SHORT)


@pytest.fixture(scope="module")
def compiled(env):
    """(first batch of reset states, the jitted batched step, its trace counter)."""
    step = TraceCounter(jax.vmap(env.step))
    first = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))
    return first, jax.jit(step), step


def _roll(env, compiled, actions):
    first, jit_step, _ = compiled
    states, state = [], first
    for action in actions:
        state = jit_step(state, action)
        states.append(state)
    return states


@pytest.fixture(scope="module")
def rollout(env, compiled):
    """Reset and the 14 steps before truncation, random actions: (reset state, [states], step tracer)."""
    actions = [jax.random.uniform(jax.random.PRNGKey(10 + i), (NUM_ENVS, env.action_size), minval=-1.0, maxval=1.0)
               for i in range(env.episode_length - 1)]
    return compiled[0], _roll(env, compiled, actions), compiled[2]


@pytest.fixture(scope="module")
def still(env, compiled):
    """The 14 steps before truncation with zero actions: the hands stay at home, on their targets."""
    return _roll(env, compiled, [jnp.zeros((NUM_ENVS, env.action_size))] * (env.episode_length - 1))


def _offset(env, term):
    offset = 0
    for name, size in env.observation_layout:
        if name == term:
            return offset, size
        offset += size
    raise KeyError(term)


def test_smoke_shapes_finite_one_trace(env, rollout):
    first, states, step = rollout
    assert env.episode_length == 15 and env.dt == pytest.approx(DT)
    assert dict(env.observation_layout)["reach_target"] == 6 and dict(env.observation_layout)["hand_to_target"] == 6
    for state in [first, *states]:
        chex.assert_shape(state.obs, (NUM_ENVS, env.observation_size))
        chex.assert_shape(state.critic_obs, (NUM_ENVS, env.critic_observation_size))
        chex.assert_shape(state.info["target"], (NUM_ENVS, 2, 3))
        chex.assert_tree_all_finite((state.obs, state.critic_obs, state.reward, state.metrics))
    assert env.critic_observation_size == env.observation_size + reach.CRITIC_BASE_SIZE + 2
    assert step.count == 1  # traced once
    for name in ("tracking/reach_missed", "tracking/reach_final_distance", "tracking/reach_time",
                 "tracking/reach_distance", "reward/reach", "reward/hold", "reward/leg_pose", "fall"):
        assert name in states[0].metrics


def test_targets_resampled_every_period_and_observed(env, rollout):
    first, states, _ = rollout
    start, size = _offset(env, "reach_target")
    targets = [np.asarray(s.info["target"]) for s in [first, *states]]
    changed = [not np.array_equal(a, b) for a, b in zip(targets, targets[1:])]
    assert changed == [(t + 1) % 5 == 0 for t in range(len(changed))]  # after steps 5 and 10
    for s, t in zip([first, *states], targets):
        np.testing.assert_array_equal(np.asarray(s.obs[:, start:start + size]), t.reshape(NUM_ENVS, -1))
    ages = [int(s.info["timers"].age[0]) for s in states]
    assert ages == [(t + 1) % 5 for t in range(len(states))]  # the timers restart with the new targets


def test_command_schedule_is_the_target_sequence(env, rollout):
    first, states, _ = rollout
    schedule = np.asarray(jax.jit(jax.vmap(env.command_schedule))(first.info))
    assert schedule.shape == (NUM_ENVS, env.episode_length + 1, 6)
    for t, s in enumerate([first, *states]):
        np.testing.assert_array_equal(schedule[:, t], np.asarray(s.info["target"]).reshape(NUM_ENVS, 6))


def test_host_observation_equals_mjx(env, rollout):
    _, states, _ = rollout
    state = jax.tree.map(lambda x: x[0], states[6])
    data = mjx.get_data(env.sim.mj_model, jax.device_get(state.data))
    target = np.asarray(state.info["target"]).reshape(-1)
    host = env.deploy.host_observation(model=env.sim.mj_model, data=data, last_action=np.asarray(state.last_action),
                                       command=target)
    assert host.shape == (env.observation_size,) and host.dtype == np.float32
    np.testing.assert_allclose(host, np.asarray(state.obs), rtol=1e-5, atol=1e-5)
    tracking = env.deploy.host_tracking(model=env.sim.mj_model, data=data, command=target)
    np.testing.assert_allclose(tracking["tracking/reach_distance"], float(state.metrics["tracking/reach_distance"]),
                               rtol=1e-4)


def test_hand_point_is_the_hand_sphere(env):
    """The forearm frame plus `hand_offset` is the centre of jh1's hand geoms (no MJCF site needed)."""
    model = env.sim.mj_model
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, 0)
    data.qpos[7:] += 0.3  # bend every joint
    mujoco.mj_kinematics(model, data)
    config = env.config
    ids = np.asarray([model.body(b).id for b in config.hand_bodies])
    root = model.body("pelvis").id
    points = terms.hand_points(data=data, hand_body_ids=ids, hand_offsets=np.tile(config.hand_offset, (2, 1)),
                               root_body_id=root)
    rot = data.xmat[root].reshape(3, 3)
    for side, point in zip(("left", "right"), points):
        geom = rot.T @ (data.geom_xpos[model.geom(f"{side}_hand").id] - data.xpos[root])
        np.testing.assert_allclose(point, geom, atol=1e-9)


def test_step_metrics_mean_is_the_running_figure(env, rollout):
    """Over the first k steps, the sum of each telescoped metric is k times the episode's figure so
    far: every evaluator's per-episode mean of a step metric reports the figure."""
    _, states, _ = rollout
    totals = {n: 0.0 for n in ("reach_missed", "reach_final_distance", "reach_time")}
    for k, s in enumerate(states, start=1):
        fig = terms.figures(jax.tree.map(lambda x: x[0], s.info["tally"]))
        for n in totals:
            totals[n] += float(s.metrics[f"tracking/{n}"][0])
            np.testing.assert_allclose(totals[n] / k, float(fig[n]), atol=1e-5)
    tally = jax.tree.map(lambda x: x[0], states[-1].info["tally"])
    assert float(tally.judged) == 4.0  # two targets judged at step 5, two at step 10 (step 15 truncates)
    assert 0.0 <= float(terms.figures(tally)["reach_missed"]) <= 1.0


def test_targets_reached_and_held_succeed(env, still, compiled):
    """Zero actions keep the hands on targets drawn at their home points: every judged target
    succeeds, reached on the first step; the metrics' running means say so."""
    last = jax.tree.map(lambda x: x[0], still[-1])
    assert float(last.metrics["fall"]) == 0.0
    assert float(jnp.max(jnp.stack([s.metrics["tracking/reach_distance"] for s in still]))) < env.config.reach_tolerance
    fig = {k: float(v) for k, v in terms.figures(last.info["tally"]).items()}
    assert float(last.info["tally"].judged) == 4.0
    assert fig["reach_missed"] == 0.0 and fig["reach_time"] == pytest.approx(DT)
    assert fig["reach_final_distance"] < env.config.reach_tolerance
    mean_missed = np.mean([float(s.metrics["tracking/reach_missed"][0]) for s in still])
    assert mean_missed == pytest.approx(0.0, abs=1e-6)
    assert compiled[2].count == 1  # the same compiled step as the random rollout


def test_randomization_off_by_default_and_traces_when_on(env):
    """The skeleton's randomization (here the full GPU preset and pushes, with the privileged critic)
    traces for reach; shapes only (jax.eval_shape), nothing is compiled."""
    assert env.fresh_starts  # every episode draws new targets
    assert not env.config.randomization.pushes_on
    full = {f.name: getattr(reach.GPU_RANDOMIZATION, f.name) for f in dataclasses.fields(reach.GPU_RANDOMIZATION)}
    assert full["obs_noise"] and set(full["obs_noise"]) <= {t.__name__ for t in reach.OBSERVATION_TERMS}
    randomized = jaxhum.envs.make("reach", randomization=full, critic_randomization=True)
    state = jax.eval_shape(randomized.reset, jax.random.PRNGKey(0))
    nxt = jax.eval_shape(randomized.step, state, jnp.zeros(randomized.action_size))
    assert nxt.obs.shape == (randomized.observation_size,)
    assert nxt.critic_obs.shape == (randomized.critic_observation_size,)
    assert randomized.critic_observation_size > randomized.observation_size + reach.CRITIC_BASE_SIZE + 1  # + drawn
    assert "push_magnitude" in nxt.metrics and "tracking/reach_missed" in nxt.metrics
