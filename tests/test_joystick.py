"""joystick on jh1: command sampling and resampling, reward terms by hand, smoke under jit(vmap),
critic observation, with_command, host observation = MJX observation, sim2sim's native episode on
the MJX command schedule with MJX's tracking errors, evaluation metrics, presets.

The robot's MJX compile is slow on the CPU: the env's reset and step are compiled once per module.
"""

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TraceCounter
from mujoco import mjx

import jaxhum
from jaxhum.envs import joystick
from jaxhum.envs.terms import rewards
from jaxhum.rl import evaluation as rl_evaluation

NUM_ENVS = 3
EPISODE_SECONDS = 0.1  # 5 control steps of 20 ms
RESAMPLE_SECONDS = 0.04  # a new command every 2 steps
# Mean tracking errors, native MuJoCo (float64) against MJX (float32), 5 steps of random full-scale
# actions: the engines' contacts drift apart (joint velocities by up to ~2.5 rad/s by step 4; the
# means measured 0.007 apart); a tenth of the tracking bounds.
SIM2SIM_ATOL = 0.02


@pytest.fixture(scope="module")
def env():
    return jaxhum.envs.make("joystick", episode_seconds=EPISODE_SECONDS, resample_seconds=RESAMPLE_SECONDS)


@pytest.fixture(scope="module")
def batched(env):
    reset = TraceCounter(jax.vmap(env.reset))
    step = TraceCounter(jax.vmap(env.step))
    return reset, jax.jit(reset), step, jax.jit(step)


@pytest.fixture(scope="module")
def first_batch(batched):
    _, reset, _, _ = batched
    return reset(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))


@pytest.fixture(scope="module")
def rollout(env, batched, first_batch):
    """Six steps with random actions: states after each step."""
    _, _, _, step = batched
    states, state = [], first_batch
    for i in range(6):
        action = jax.random.uniform(jax.random.PRNGKey(10 + i), (NUM_ENVS, env.action_size), minval=-1.0, maxval=1.0)
        state = step(state, action)
        states.append(state)
    return states


# ----------------------------------------------------------------------------- layout and config


def test_sizes_layout_and_registry(env):
    a = env.action_size
    assert "joystick" in jaxhum.envs.REGISTRY
    assert [name for name, _ in env.observation_layout] == [
        "imu_angular_velocity", "gravity_in_imu", "velocity_command", "joint_pos_from_home", "joint_vel",
        "previous_action", "gait_phase"]
    assert env.observation_size == 3 + 3 + 3 + 3 * a + 4
    assert env.critic_observation_size == env.observation_size + joystick.CRITIC_EXTRA_SIZE
    assert env.fresh_starts and env.episode_length == 5
    assert dict(env.tracking_bounds) == {"vx": 0.15, "yaw": 0.2}
    defaults = jaxhum.envs.make_config("joystick")
    assert defaults.episode_seconds == 20.0 and tuple(defaults.vx_range) == (-0.5, 1.0)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"vx_range": (1.0, -0.5)}, "vx_range"),
        ({"yaw_rate_range": (0.0, 1.0, 2.0)}, "yaw_rate_range"),
        ({"zero_command_share": 1.5}, "zero_command_share"),
        ({"resample_seconds": -1.0}, "resample_seconds"),
        ({"gait_frequency": 0.0}, "gait_frequency"),
        ({"reward_weights": {"speed": 1.0}}, "reward_weights"),
    ],
)
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        jaxhum.envs.make_config("joystick", **overrides)


# ----------------------------------------------------------------------------- commands


def test_sample_command_ranges_zero_share_and_determinism():
    config = jaxhum.envs.make_config("joystick", vx_range=(-0.5, 1.0), vy_range=(-0.2, 0.1),
                                     yaw_rate_range=(-1.0, 0.5), zero_command_share=0.25)
    keys = jax.random.split(jax.random.PRNGKey(1), 4000)
    cmd = np.asarray(jax.jit(jax.vmap(lambda k: joystick.sample_command(k, config)))(keys))
    zero = np.all(cmd == 0.0, axis=1)
    # Binomial(4000, 0.25): std 27; 5 std either side.
    assert abs(zero.sum() - 1000) < 140
    moving = cmd[~zero]
    for i, (lo, hi) in enumerate([(-0.5, 1.0), (-0.2, 0.1), (-1.0, 0.5)]):
        assert moving[:, i].min() >= lo and moving[:, i].max() <= hi
        assert moving[:, i].min() < lo + 0.05 and moving[:, i].max() > hi - 0.05  # the range is covered
    assert not np.any(moving == 0.0)  # only the zero share is exactly zero
    again = np.asarray(joystick.sample_command(keys[7], config))
    np.testing.assert_array_equal(again, cmd[7])
    never = jaxhum.envs.make_config("joystick", zero_command_share=0.0)
    always = jaxhum.envs.make_config("joystick", zero_command_share=1.0)
    drawn = np.asarray(jax.vmap(lambda k: joystick.sample_command(k, never))(keys[:200]))
    assert not np.any(np.all(drawn == 0, axis=1))
    np.testing.assert_array_equal(jax.vmap(lambda k: joystick.sample_command(k, always))(keys[:50]), 0.0)


def test_next_command_resamples_every_n_steps_from_the_key():
    config = jaxhum.envs.make_config("joystick", zero_command_share=0.0)
    info = {"command": jnp.array([0.3, 0.0, 0.1]), "key": jax.random.PRNGKey(5),
            "resample_in": jnp.asarray(3, jnp.int32), "feet_air_time": jnp.zeros(2), "last_contact": jnp.ones(2)}
    commands, lefts = [], []
    for _ in range(7):
        info = joystick.next_command(info, config, 3)
        commands.append(np.asarray(info["command"]))
        lefts.append(int(info["resample_in"]))
    assert lefts == [2, 1, 3, 2, 1, 3, 2]
    np.testing.assert_array_equal(commands[0], np.float32([0.3, 0.0, 0.1]))
    np.testing.assert_array_equal(commands[1], np.float32([0.3, 0.0, 0.1]))
    assert not np.allclose(commands[2], commands[1]) and np.array_equal(commands[2], commands[4])
    assert not np.allclose(commands[5], commands[4])
    # The draw is the key's: split the carried key, sample from the second half.
    _, sub = jax.random.split(jax.random.PRNGKey(5))
    np.testing.assert_array_equal(commands[2], np.asarray(joystick.sample_command(sub, config)))
    # every == 0 holds the command forever.
    held = joystick.next_command({**info, "resample_in": jnp.asarray(1, jnp.int32)}, config, 0)
    np.testing.assert_array_equal(held["command"], info["command"])


def test_env_resamples_mid_episode_and_autoreset_restores_the_start(first_batch, rollout):
    cmd = [np.asarray(first_batch.info["command"])] + [np.asarray(s.info["command"]) for s in rollout]
    # every 2 steps: steps 1 and 2 keep the first command, step 2's countdown draws a new one.
    np.testing.assert_array_equal(cmd[1], cmd[0])
    assert not np.allclose(cmd[2], cmd[1])
    np.testing.assert_array_equal(cmd[3], cmd[2])
    # the 5th step ends the episode: the next starts from the stored start (first_info).
    assert np.all(np.asarray(rollout[4].done) == 1.0)
    np.testing.assert_array_equal(cmd[5], np.asarray(first_batch.info["command"]))
    # the command is in the observation the policy sees.
    for s in [first_batch, *rollout]:
        np.testing.assert_array_equal(np.asarray(s.obs[:, 6:9]), np.asarray(s.info["command"]))
    # per env, from its own key
    assert not np.allclose(cmd[0][0], cmd[0][1])


# ----------------------------------------------------------------------------- smoke


def test_smoke_jit_vmap_finite_no_retrace(env, batched, first_batch, rollout):
    reset_count, _, step_count, _ = batched
    assert reset_count.count == 1 and step_count.count == 1  # six steps, one trace
    for state in [first_batch, *rollout]:
        chex.assert_tree_all_finite((state.obs, state.critic_obs, state.reward, state.metrics))
        chex.assert_shape(state.obs, (NUM_ENVS, env.observation_size))
        chex.assert_shape(state.critic_obs, (NUM_ENVS, env.critic_observation_size))
    active = {k for k, w in joystick.DEFAULT_REWARD_WEIGHTS.items() if w != 0.0}
    assert {k[len("reward/"):] for k in rollout[0].metrics if k.startswith("reward/")} == active
    assert {"tracking/vx", "tracking/yaw", "fall"} <= set(rollout[0].metrics)
    total = sum(v for k, v in rollout[0].metrics.items() if k.startswith("reward/"))
    np.testing.assert_allclose(total, rollout[0].reward, rtol=1e-5, atol=1e-5)


def test_tracking_metrics_and_critic_observation(env, rollout):
    state = rollout[1]  # not an autoreset step
    idx = env.robot.index(env.sim)
    cmd = np.asarray(rollout[0].info["command"])  # the command this step was taken under
    linvel = np.asarray(state.data.sensordata[:, idx.linvel])
    gyro = np.asarray(state.data.sensordata[:, idx.gyro])
    np.testing.assert_allclose(state.metrics["tracking/vx"], np.abs(cmd[:, 0] - linvel[:, 0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.metrics["tracking/yaw"], np.abs(cmd[:, 2] - gyro[:, 2]), rtol=1e-5, atol=1e-6)
    n = env.observation_size
    critic = np.asarray(state.critic_obs)
    np.testing.assert_array_equal(critic[:, :n], np.asarray(state.obs))  # the actor observation first
    np.testing.assert_allclose(critic[:, n:n + 3], linvel, atol=1e-6)  # true base velocity, base frame
    np.testing.assert_allclose(critic[:, n + 3:n + 6], np.asarray(state.data.qvel[:, :3]), atol=1e-6)  # world
    np.testing.assert_allclose(critic[:, n + 6], np.asarray(state.data.xpos[:, idx.root_body_id, 2]), atol=1e-6)


def test_with_command_sets_observation_and_holds(env, batched, first_batch):
    _, _, _, step = batched
    driven = joystick.with_command(env, first_batch, [0.7, 0.0, -0.2])
    np.testing.assert_allclose(np.asarray(driven.obs[:, 6:9]), np.tile([0.7, 0.0, -0.2], (NUM_ENVS, 1)), atol=1e-7)
    np.testing.assert_array_equal(np.asarray(driven.critic_obs[:, :env.observation_size]), np.asarray(driven.obs))
    state = driven
    for _ in range(3):  # past the 2-step resample period: the command is held
        state = step(state, jnp.zeros((NUM_ENVS, env.action_size)))
        np.testing.assert_allclose(np.asarray(state.info["command"]), np.tile([0.7, 0.0, -0.2], (NUM_ENVS, 1)),
                                   atol=1e-7)


def test_host_observation_equals_mjx(env, rollout):
    state = jax.tree.map(lambda x: x[0], rollout[2])  # one env, mid-episode: non-zero time, action, command
    data = mjx.get_data(env.sim.mj_model, jax.device_get(state.data))
    host = env.deploy.host_observation(model=env.sim.mj_model, data=data, last_action=np.asarray(state.last_action),
                                       command=np.asarray(state.info["command"]))
    assert host.shape == (env.observation_size,) and host.dtype == np.float32
    np.testing.assert_allclose(host, np.asarray(state.obs), rtol=1e-5, atol=1e-5)
    # the gait clock: phase 2 pi f t for the left foot, + pi for the right
    t, f = float(data.time), env.config.gait_frequency
    phi = 2 * np.pi * f * t
    np.testing.assert_allclose(host[-4:], [np.cos(phi), np.cos(phi + np.pi), np.sin(phi), np.sin(phi + np.pi)],
                               atol=1e-5)
    assert t > 0
    assert not env.deploy.host_terminated(model=env.sim.mj_model, data=data)


def _rollout_actions(env):
    """(6, NUM_ENVS, A) the actions `rollout` steps with."""
    return np.stack([np.asarray(jax.random.uniform(jax.random.PRNGKey(10 + i), (NUM_ENVS, env.action_size),
                                                   minval=-1.0, maxval=1.0)) for i in range(6)])


def test_command_schedule_is_the_mjx_command_sequence(env, first_batch, rollout):
    """The schedule from the reset info alone (no physics) is the command MJX's observation shows
    after each step of the episode, under random actions, across resample boundaries."""
    schedule = np.asarray(jax.jit(jax.vmap(env.command_schedule))(first_batch.info))
    assert schedule.shape == (NUM_ENVS, env.episode_length + 1, 3)
    for t, state in enumerate([first_batch, *rollout[:4]]):  # rollout[4] ends the episode (autoreset)
        np.testing.assert_array_equal(schedule[:, t], np.asarray(state.info["command"]))
        np.testing.assert_array_equal(schedule[:, t], np.asarray(state.obs[:, 6:9]))
    # every 2 steps: new commands after steps 2 and 4, the last entry one more tick of the key
    assert not np.allclose(schedule[:, 2], schedule[:, 1]) and not np.allclose(schedule[:, 4], schedule[:, 3])
    np.testing.assert_array_equal(schedule[:, 5], schedule[:, 4])
    # a resample period longer than the episode holds the reset's command
    held = joystick.command_schedule(jax.tree.map(lambda x: x[0], first_batch.info), env.config, 0, 4)
    np.testing.assert_array_equal(np.asarray(held), np.tile(np.asarray(first_batch.info["command"][0]), (5, 1)))


class _Replay:
    """A numpy policy (`deploy.Policy`'s interface) that plays back actions (T, A), recording the
    observations it is shown."""

    def __init__(self, actions, spec):
        self.actions, self.spec, self.seen = actions, spec, []

    def __call__(self, obs):
        self.seen.append(np.asarray(obs))
        return self.actions[len(self.seen) - 1].astype(np.float32)

    def ctrl(self, action):
        s = self.spec
        return np.clip(s.ctrl_offset + s.ctrl_scale * np.clip(action, -1.0, 1.0), s.ctrl_min, s.ctrl_max)


def test_native_episode_follows_the_schedule_and_tracks_as_mjx(env, first_batch, rollout):
    """sim2sim's native episode on MJX's actions: the observation after each step shows the same
    command (changing at the same steps), previous action and gait clock as MJX's, and the
    episode's mean tracking errors match the MJX rollout's."""
    from jaxhum.tools import sim2sim

    schedule = np.asarray(jax.jit(jax.vmap(env.command_schedule))(first_batch.info))
    actions = _rollout_actions(env)
    mjx_obs = np.stack([np.asarray(s.obs) for s in [first_batch, *rollout[:4]]])  # (5, N, obs)
    offsets = np.cumsum([0] + [size for _, size in env.observation_layout])
    part = {name: slice(offsets[k], offsets[k + 1]) for k, (name, _) in enumerate(env.observation_layout)}
    for i in range(NUM_ENVS):
        policy = _Replay(actions[:, i], env.deploy)
        qpos, qvel = (np.asarray(x[i], np.float64) for x in (first_batch.data.qpos, first_batch.data.qvel))
        native = sim2sim.native_episode(env, policy, qpos, qvel, schedule[i])
        assert native["length"] == env.episode_length and native["terminated"] == 0.0
        seen = np.stack(policy.seen)  # (5, obs): before steps 1..5
        np.testing.assert_array_equal(seen[:, part["velocity_command"]], schedule[i, :5])
        np.testing.assert_array_equal(seen[:, part["velocity_command"]], mjx_obs[:, i, part["velocity_command"]])
        np.testing.assert_allclose(seen[:, part["previous_action"]], mjx_obs[:, i, part["previous_action"]], atol=1e-6)
        np.testing.assert_allclose(seen[:, part["gait_phase"]], mjx_obs[:, i, part["gait_phase"]], atol=1e-5)
        for name in ("tracking/vx", "tracking/yaw"):
            mjx_mean = np.mean([float(s.metrics[name][i]) for s in rollout[:5]])
            assert native[name] == pytest.approx(mjx_mean, abs=SIM2SIM_ATOL), name
    # hand-derived: the errors of a step are |command - sensor| of the command it was taken under
    errors = joystick.tracking_errors(np.float32([0.5, 0.1, -0.2]), np.float32([0.3, 9.0, 9.0]),
                                      np.float32([9, 9, 0.1]))
    assert errors["tracking/vx"] == pytest.approx(0.2) and errors["tracking/yaw"] == pytest.approx(0.3)


# ----------------------------------------------------------------------------- reward terms by hand


def test_reward_terms_hand_derived():
    cmd = jnp.array([0.5, -0.2, 0.3])
    v = jnp.array([0.3, 0.0, 0.1])
    w = jnp.array([0.2, -0.1, 0.6])
    # lin: |(0.2, -0.2)|^2 = 0.08; exp(-0.08 / 0.25)
    assert float(rewards.tracking_lin_vel(command=cmd, local_linvel=v, tracking_sigma=0.25)) == pytest.approx(
        np.exp(-0.32), rel=1e-6)
    # ang: (0.3 - 0.6)^2 = 0.09; exp(-0.09 / 0.25)
    assert float(rewards.tracking_ang_vel(command=cmd, angvel=w, tracking_sigma=0.25)) == pytest.approx(
        np.exp(-0.36), rel=1e-6)
    assert float(rewards.lin_vel_z(local_linvel=v)) == pytest.approx(0.01)
    assert float(rewards.ang_vel_xy(angvel=w)) == pytest.approx(0.05)
    # 30 deg of tilt: g = (sin 30, 0, -cos 30): sin^2 = 0.25
    g = jnp.array([0.5, 0.0, -np.sqrt(3) / 2])
    assert float(rewards.flat_orientation(gravity=g)) == pytest.approx(0.25, rel=1e-6)
    assert float(rewards.flat_orientation(gravity=jnp.array([0.0, 0.0, -1.0]))) == 0.0
    tau, qd = jnp.array([10.0, -2.0, 0.0]), jnp.array([0.5, 3.0, 7.0])
    assert float(rewards.torques_l2(torque=tau)) == pytest.approx(104.0)
    assert float(rewards.energy(torque=tau, joint_vel=qd)) == pytest.approx(11.0)  # 5 + 6 + 0
    assert float(rewards.action_rate_l2(action=jnp.array([0.5, 0.0]), last_action=jnp.array([0.0, 1.0]))) == 1.25
    # air time: left foot touches down after 0.4 s, right still in the air; threshold 0.2, max 0.5
    kw = dict(air_time_threshold=0.2, air_time_max=0.5, moving_threshold=0.1)
    touchdown = jnp.array([1.0, 0.0])
    assert float(rewards.feet_air_time(air_time=jnp.array([0.4, 0.3]), first_contact=touchdown, command=cmd,
                                       **kw)) == pytest.approx(0.2)
    assert float(rewards.feet_air_time(air_time=jnp.array([0.9, 0.3]), first_contact=touchdown, command=cmd,
                                       **kw)) == pytest.approx(0.3)  # clipped at 0.5
    assert float(rewards.feet_air_time(air_time=jnp.array([0.1, 0.3]), first_contact=touchdown, command=cmd,
                                       **kw)) == pytest.approx(-0.1)  # a short step costs
    assert float(rewards.feet_air_time(air_time=jnp.array([0.4, 0.3]), first_contact=touchdown,
                                       command=jnp.zeros(3), **kw)) == 0.0  # standing: nothing
    # slip: only the foot in contact counts
    vel = jnp.array([[0.3, 0.4], [1.0, 1.0]])
    assert float(rewards.feet_slip(foot_contact=jnp.array([1.0, 0.0]), foot_vel_xy=vel)) == pytest.approx(0.25)
    # phase: a miss of (0.03, -0.04) m -> |e|^2 = 0.0025; exp(-0.25)
    phase = rewards.feet_phase(foot_height=jnp.array([0.05, 0.0]), target_foot_height=jnp.array([0.02, 0.04]))
    assert float(phase) == pytest.approx(np.exp(-0.25), rel=1e-5)
    dq, pw = jnp.array([0.1, -0.2, 0.5]), jnp.array([1.0, 0.5, 0.0])
    assert float(rewards.pose_deviation(joint_pos_error=dq, pose_weights=pw)) == pytest.approx(0.03)
    still = rewards.stand_still(joint_pos_error=dq, command=jnp.zeros(3), moving_threshold=0.1)
    assert float(still) == pytest.approx(0.8)
    assert float(rewards.stand_still(joint_pos_error=dq, command=cmd, moving_threshold=0.1)) == 0.0
    assert float(rewards.termination(fell=jnp.array(True))) == 1.0
    assert float(rewards.termination(fell=jnp.array(False))) == 0.0


def test_target_foot_height_and_pose_weights(env):
    config = env.config
    # t = 1/6 s at 1.5 Hz: left phase pi/2 (mid-swing), right 3 pi/2 (stance)
    target = np.asarray(joystick.target_foot_height(jnp.float32(1.0 / 6.0), config, jnp.float32(1.0)))
    np.testing.assert_allclose(target, [config.swing_height, 0.0], atol=1e-6)
    np.testing.assert_array_equal(joystick.target_foot_height(jnp.float32(1.0 / 6.0), config, jnp.float32(0.0)), 0.0)
    w = dict(zip(env.robot.joint_names, joystick.pose_weights(env.robot)))
    assert w["left_knee"] == 0.01 and w["right_hip_roll"] == 1.0 and w["left_elbow"] == 0.2


# ----------------------------------------------------------------------------- evaluation and presets


def test_evaluator_reports_tracking_errors_and_fall_rate():
    """The jitted evaluator turns per-step `tracking/<x>` metrics into eval/tracking_error_<x>
    (per-episode mean, then mean over envs) beside eval/fall_rate; a physics-free env with known
    errors makes the figures hand-derivable."""

    @flax.struct.dataclass
    class Data:  # what the non-finite check reads of the physics state
        qpos: jax.Array
        qvel: jax.Array

    class Counter:
        observation_size, action_size, episode_length = 1, 1, 4

        def reset(self, key):
            del key
            return jaxhum.envs.EnvState.start(
                data=Data(qpos=jnp.zeros((1,)), qvel=jnp.zeros((1,))), obs=jnp.zeros((1,)), action_size=1,
                metrics={"tracking/vx": jnp.zeros(()), "tracking/yaw": jnp.zeros(()), "reward/x": jnp.zeros(())})

        def step(self, state, action):
            t = state.step_count + 1
            metrics = {"tracking/vx": 0.1 * t, "tracking/yaw": jnp.float32(0.3), "reward/x": jnp.float32(1.0)}
            nxt = state.advance(state.data, state.obs, jnp.float32(1.0), jnp.float32(0.0), action,
                                jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), metrics))
            truncated = (nxt.step_count >= 4).astype(jnp.float32)
            return nxt.replace(done=truncated, truncated=truncated)

    evaluate = rl_evaluation.make_evaluator(Counter(), lambda p, obs, k: jnp.zeros((obs.shape[0], 1)), 2)
    metrics = jax.jit(evaluate)(None, jax.random.PRNGKey(0))
    assert float(metrics["eval/tracking_error_vx"]) == pytest.approx(0.25)  # mean of 0.1, 0.2, 0.3, 0.4
    assert float(metrics["eval/tracking_error_yaw"]) == pytest.approx(0.3)
    assert float(metrics["eval/fall_rate"]) == 0.0
    assert "eval/tracking/vx" not in metrics


def test_presets_validate_and_match_the_target():
    from experiments import joystick as experiment
    from jaxhum.run import config as run_config

    gpu = run_config.validate(experiment.get_config("gpu"), build=False)
    cpu = run_config.validate(experiment.get_config("cpu"), build=False)
    assert gpu.env_name == cpu.env_name == "joystick"
    assert gpu.ppo.num_envs >= 4096 and gpu.ppo.unroll_length == 20 and gpu.num_timesteps <= 80_000_000
    assert cpu.num_timesteps <= 300_000
    with pytest.raises(ValueError, match="^preset"):
        experiment.get_config("tpu")
