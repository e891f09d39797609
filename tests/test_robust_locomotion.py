"""What a locomotion policy gets to survive a randomized, pushed world (issue 27): an observation
history, a critic that knows what the episode's randomization drew, and a fall rule on tilt.

One MJX compile of a randomized joystick env (history 3, tilt rule, privileged critic): a jitted
rollout from a few resets with autoreset, read by every test of the module.
"""

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from experiments import balance as balance_experiment
from experiments import joystick as joystick_experiment
from jaxhum import envs
from jaxhum.envs import joystick, robot_task
from jaxhum.envs.terms import commands
from jaxhum.envs.terms import randomization as R
from jaxhum.run import config as run_config
from jaxhum.tools import deploy

H = 3  # observation frames
N, STEPS = 2, 6
EPISODE_SECONDS = 0.08  # 4 control steps: the rollout crosses an autoreset
RANDOMIZATION = {
    "friction": (0.4, 1.25), "mass_scale": (0.9, 1.1), "torso_mass": (-1.0, 3.0), "com_offset": (-0.03, 0.03),
    "joint_damping": (0.5, 1.5), "armature": (1.0, 1.05), "frictionloss": (0.01, 0.3), "kp_scale": (0.9, 1.1),
    "kd_scale": (0.9, 1.1), "motor_strength": (0.9, 1.1), "obs_noise": {"joint_vel": 1.5}, "obs_lag": 1,
    "action_latency": 1, "push_interval": (0.02, 0.04), "push_velocity": (0.5, 1.0),
}


@pytest.fixture(scope="module")
def env():
    return envs.make("joystick", randomization=RANDOMIZATION, observation_history=H, fall_tilt=0.8,
                     critic_randomization=True, episode_seconds=EPISODE_SECONDS)


@pytest.fixture(scope="module")
def rollout(env):
    """(start states, the states after each of STEPS random actions), N envs, on the host."""

    @jax.jit
    def run(key):
        key_reset, key_act = jax.random.split(key)
        start = jax.vmap(env.reset)(jax.random.split(key_reset, N))

        def body(state, k):
            action = jax.random.uniform(k, (N, env.action_size), minval=-0.3, maxval=0.3)
            state = jax.vmap(env.step)(state, action)
            return state, state

        _, states = jax.lax.scan(body, start, jax.random.split(key_act, STEPS))
        return start, states

    return jax.device_get(run(jax.random.key(3)))


def _frames(obs: np.ndarray, frame: int) -> np.ndarray:
    return obs.reshape(obs.shape[:-1] + (H, frame))


# ----------------------------------------------------------------------------- observation history


def test_the_observation_is_the_last_frames_newest_first(env, rollout):
    start, states = rollout
    frame = sum(size for _, size in env.observation_layout)
    assert env.observation_size == H * frame and env.observation_history == H
    first = _frames(start.obs, frame)
    np.testing.assert_array_equal(first, np.broadcast_to(first[:, :1], first.shape))  # the first frame fills all
    obs = _frames(states.obs, frame)
    ended = states.done > 0
    for t in range(1, STEPS):
        for i in range(N):
            if ended[t, i] or ended[t - 1, i]:
                continue
            np.testing.assert_array_equal(obs[t, i, 1:], obs[t - 1, i, :-1])  # each frame moves one slot back
    np.testing.assert_array_equal(states.info[robot_task.HISTORY_INFO_KEY].reshape(STEPS, N, -1), states.obs)


def test_with_command_writes_the_newest_frame_or_every_frame_of_a_new_episode(env, rollout):
    """A command set mid-episode reaches the newest frame only (older frames keep what the policy
    saw then, as `deploy.FrameHistory` keeps them); on a reset state, every frame (the first frame
    fills the history). The stored history, the observation and the critic's copy stay one."""
    start, states = rollout
    frame = sum(size for _, size in env.observation_layout)
    offset, cmd = commands.command_offset(env), np.asarray([0.4, -0.1, 0.3], np.float32)
    for state, every in ((start, True), (jax.tree.map(lambda x: x[1], states), False)):
        state = jax.tree.map(jnp.asarray, state)
        driven = jax.device_get(joystick.with_command(env, state, cmd, episode_start=every))
        before, after = _frames(np.asarray(state.obs), frame), _frames(driven.obs, frame)
        written = H if every else 1
        np.testing.assert_array_equal(after[:, :written, offset:offset + 3], np.broadcast_to(cmd, (N, written, 3)))
        if not every:
            np.testing.assert_array_equal(after[:, 1:], before[:, 1:])
        untouched = np.ones(frame, bool)
        untouched[offset:offset + 3] = False
        np.testing.assert_array_equal(after[..., untouched], before[..., untouched])
        np.testing.assert_array_equal(driven.info[robot_task.HISTORY_INFO_KEY].reshape(N, -1), driven.obs)
        np.testing.assert_array_equal(driven.critic_obs[:, :env.observation_size], driven.obs)


def test_an_episode_after_an_autoreset_starts_from_its_own_first_frame(env, rollout):
    _, states = rollout
    frame = sum(size for _, size in env.observation_layout)
    t, i = np.argwhere(states.done > 0)[0]  # episodes end at 4 steps (or at a fall), inside the rollout
    obs = _frames(states.obs[t, i], frame)
    np.testing.assert_array_equal(obs, np.broadcast_to(obs[:1], obs.shape))


def test_frame_history_outside_jax_stacks_as_the_env_does(env, rollout):
    start, states = rollout
    frame = sum(size for _, size in env.observation_layout)
    history = deploy.FrameHistory(H)
    got = [history.push(start.obs[0, :frame])]
    for t in range(3):  # inside the first episode (4 steps)
        got.append(history.push(states.obs[t, 0, :frame]))
    np.testing.assert_array_equal(got[0], start.obs[0])
    for t in range(3):
        np.testing.assert_array_equal(got[t + 1], states.obs[t, 0])
    history.reset()
    np.testing.assert_array_equal(history.push(np.ones(2)), np.ones(2 * H, np.float32))
    with pytest.raises(ValueError, match="history: must be >= 1"):
        deploy.FrameHistory(0)


def test_history_one_is_the_frame_alone():
    env = envs.make("joystick")
    assert env.observation_history == 1
    assert env.observation_size == sum(size for _, size in env.observation_layout)


# ----------------------------------------------------------------------------- privileged critic


def test_the_critic_reads_what_the_randomization_drew(env, rollout):
    start, _ = rollout
    a = env.action_size
    frame = sum(size for _, size in env.observation_layout)
    # friction 1 + masses 2 + com 3 + (damping, armature, frictionloss, kp, kd, torque limit) A each
    # + lag 1 + latency 1 + seconds to the next kick 1
    drawn_size = 1 + 2 + 3 + 6 * a + 3
    extras = 17  # joystick's own (CRITIC_EXTRA_SIZE)
    assert env.critic_observation_size == frame + extras + drawn_size
    idx = env.robot.index(env.sim)
    m = env.sim.mj_model
    for i in range(N):
        params = {k: v[i] for k, v in start.info["params"].items()}
        r = {k: v[i] for k, v in start.info["randomization"].items()}
        drawn = start.critic_obs[i, frame + extras:]
        assert drawn[0] == params["geom_friction"][idx.floor_geom_id, 0]
        assert drawn[1] == pytest.approx(float(np.sum(params["body_mass"])), rel=1e-6)
        torso = int(idx.torso_body_id)
        assert drawn[2] == params["body_mass"][torso] != m.body_mass[torso]
        np.testing.assert_array_equal(drawn[3:6], params["body_ipos"][torso])
        dofs, acts = np.asarray(idx.dof_adr), np.asarray(idx.actuator_ids)
        blocks = [params["dof_damping"][dofs], params["dof_armature"][dofs], params["dof_frictionloss"][dofs],
                  params["actuator_gainprm"][acts, 0], -params["actuator_biasprm"][acts, 2],
                  params["actuator_forcerange"][acts, 1]]
        np.testing.assert_allclose(drawn[6:6 + 6 * a], np.concatenate(blocks), rtol=1e-6)
        assert drawn[6 + 6 * a] == r["obs_lag"] and drawn[7 + 6 * a] == r["action_latency"]
        assert drawn[8 + 6 * a] == pytest.approx(float(r["push_countdown"]) * env.dt)


def test_without_the_option_the_critic_is_as_before():
    on = envs.make("joystick", randomization=RANDOMIZATION)
    frame = sum(size for _, size in on.observation_layout)
    assert on.critic_observation_size == frame + 17


def test_privileged_is_empty_with_randomization_off():
    env = envs.make("joystick", critic_randomization=True)
    assert env.critic_observation_size == env.observation_size + 17


# ----------------------------------------------------------------------------- fall rule


def _tilted_qpos(env, angle: float) -> np.ndarray:
    """The home pose with the pelvis rolled by `angle` (rad) about x, at its standing height."""
    qpos = np.array(env.robot.index(env.sim).home_qpos, np.float64)
    qpos[3:7] = [np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0]
    return qpos


@pytest.mark.parametrize("angle, fell", [(0.7, False), (0.9, True)])
def test_a_tilt_past_fall_tilt_is_a_fall_in_mjx_and_in_native_mujoco(env, angle, fell):
    qpos = _tilted_qpos(env, angle)
    setup = robot_task.make_setup(env.config, robot_task.TaskDef((), {}, evaluate=None))
    data = mujoco.MjData(env.sim.mj_model)
    data.qpos[:] = qpos
    mujoco.mj_kinematics(env.sim.mj_model, data)
    assert env.deploy.host_terminated(model=env.sim.mj_model, data=data) is fell
    mjx_data = jax.jit(lambda q: robot_task.physics.init(env.sim.mjx_model, q, jnp.zeros(env.sim.mj_model.nv)))(
        jnp.asarray(qpos, jnp.float32))
    assert bool(robot_task.fallen(setup, mjx_data)) is fell


def test_no_tilt_rule_by_default():
    env = envs.make("joystick")
    data = mujoco.MjData(env.sim.mj_model)
    data.qpos[:] = _tilted_qpos(env, 1.5)
    mujoco.mj_kinematics(env.sim.mj_model, data)
    assert env.deploy.host_terminated(model=env.sim.mj_model, data=data) is False


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize("field, value, message", [
    ("fall_tilt", -0.1, r"fall_tilt: must be in \[0, pi\]"),
    ("fall_tilt", 4.0, r"fall_tilt: must be in \[0, pi\]"),
    ("observation_history", 0, r"observation_history: must be an integer in 1\.\.64"),
    ("observation_history", 65, r"observation_history: must be an integer in 1\.\.64"),
    ("observation_history", True, r"observation_history: expected int"),
    ("critic_randomization", "yes", r"critic_randomization: expected bool"),
])
def test_bad_settings_are_refused_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        envs.make("joystick", **{field: value})


def test_walk_has_the_same_skeleton_settings():
    with pytest.raises(ValueError, match="observation_history"):
        envs.make("walk", observation_history=0)
    assert envs.make("walk", observation_history=2).observation_history == 2


@pytest.mark.parametrize("experiment", [joystick_experiment, balance_experiment])
def test_the_robust_presets_validate_and_match_for_init_from(experiment):
    config = experiment.get_config("gpu_randomized")
    run_config.validate(config)
    env = config.env
    assert env["observation_history"] == 5 and env["critic_randomization"] is True
    assert env["fall_tilt"] == 0.8 and env["fall_height"] == 0.40
    R.RandomizationConfig(**{k: v for k, v in env["randomization"].items()}).validate()


def test_gpu_randomized_trains_under_larger_kicks_than_it_is_judged_under():
    config = run_config.validate(joystick_experiment.get_config("gpu_randomized"), build=False)
    train = envs.make_config("joystick", **config.env).randomization
    judged = envs.make_config("joystick", **{**config.env, **config.eval_env}).randomization
    assert train.push_velocity == (0.1, 1.5) and judged.push_velocity == (0.1, 1.0)
    assert judged == dataclasses.replace(train, push_velocity=judged.push_velocity) == joystick.GPU_RANDOMIZATION


# ----------------------------------------------------------------------------- outside JAX


class _Recorder:
    """A numpy policy that stands still (action 0) and keeps what it saw."""

    def __init__(self, spec, action_size: int):
        self.spec, self.seen, self.zero = spec, [], np.zeros(action_size, np.float32)

    def __call__(self, obs):
        self.seen.append(np.array(obs))
        return self.zero

    def ctrl(self, action):
        s = self.spec
        return np.clip(s.ctrl_offset + s.ctrl_scale * action, s.ctrl_min, s.ctrl_max)


def test_sim2sim_gives_the_native_policy_the_same_stacked_observation(env):
    from jaxhum.tools import sim2sim

    starts = sim2sim.episode_starts(env, 2, seed=0)
    mjx_first = np.asarray(jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 2)).obs)
    frame = sum(size for _, size in env.observation_layout)
    for i in range(2):
        policy = _Recorder(env.deploy, env.action_size)
        sim2sim.native_episode(env, policy, starts.qpos[i], starts.qvel[i], starts.commands[i], starts.worlds[i])
        seen = np.stack(policy.seen)
        assert seen.shape[1] == H * frame
        # the same world's first observation (noise included), every slot filled with it
        np.testing.assert_allclose(seen[0], mjx_first[i], atol=1e-4)
        for t in range(1, len(seen)):  # each native frame moves one slot back, as in MJX
            np.testing.assert_array_equal(seen[t].reshape(H, frame)[1:], seen[t - 1].reshape(H, frame)[:-1])


def test_robot_precision_act_runs_every_matmul_in_full_float32():
    """`load_run`'s act is the exported policy's arithmetic: no reduced-precision GPU passes."""
    from jaxhum.run import checkpoint

    def policy_fn(params, obs, key):
        return jnp.tanh(obs @ params)

    jaxpr = str(jax.make_jaxpr(lambda p, o: checkpoint._robot_precision_act(policy_fn, p, o))(
        jnp.ones((3, 2)), jnp.ones((4, 3))))
    assert "HIGHEST" in jaxpr
    assert "HIGHEST" not in str(jax.make_jaxpr(lambda p, o: policy_fn(p, o, None))(jnp.ones((3, 2)), jnp.ones((4, 3))))


def test_make_policy_runs_at_robot_precision_unless_told_otherwise():
    """`load_policy`'s policy (`run_config.make_policy`) computes what the exported policy computes:
    'highest' matmuls by default, the backend's default only when asked (matmul_precision=None)."""
    import types

    calls = []

    def policy_fn(params, obs, key):
        calls.append(str(jax.make_jaxpr(lambda p, o: jnp.tanh(o @ p.policy))(params, obs)))
        return jnp.tanh(obs @ params.policy)

    trainer = types.SimpleNamespace(policy_fn=policy_fn)
    state = types.SimpleNamespace(policy_params=jnp.ones((3, 2)), normalizer=None)
    obs = jnp.ones((4, 3))
    np.testing.assert_allclose(run_config.make_policy(trainer, state)(obs), np.tanh(np.full((4, 2), 3.0)), rtol=1e-6)
    assert "HIGHEST" in calls[-1]
    run_config.make_policy(trainer, state, matmul_precision=None)(obs)
    assert "HIGHEST" not in calls[-1]
    run_config.make_policy(trainer, state, deterministic=False)(obs, jax.random.key(0))
    assert "HIGHEST" in calls[-1]
