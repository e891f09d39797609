"""joystick: our humanoid robot (jh1) walks at a commanded velocity (vx, vy, yaw rate).

The task robot researchers train (MuJoCo Playground's joystick tasks, Isaac Lab's velocity
tasks). Every episode starts with a command drawn from `vx_range`, `vy_range`, `yaw_rate_range`
(a `zero_command_share` of commands exactly zero: stand still); it is redrawn every
`resample_seconds` from the episode's own PRNG key in `state.info`. `Env.fresh_starts` is set,
so a trainer gives every episode a newly drawn start and command (`refresh_starts`).

Actions as walk: joint position targets `home + action_scale * a`, a in [-1, 1]^A.

Actor observation, from sensors a robot has (`env.observation_layout` names the slices): gyro
(3), gravity direction in the IMU frame (3), command (3), joint positions relative to home (A),
joint velocities (A), previous action (A), gait clock (4: cos and sin of each foot's phase,
from the simulation time at `gait_frequency`).

Critic observation (`state.critic_obs`, privileged, for an asymmetric critic): the actor
observation, then the true base linear velocity in the base frame (3) and in the world (3),
pelvis height (1), foot contacts (2), feet air time (2), foot heights above standing (2) and
planar foot velocities (4).

Reward (`DEFAULT_REWARD_WEIGHTS`, all overridable; each term in `jaxhum.envs.terms.rewards`):
tracking_lin_vel and tracking_ang_vel (exponential kernels, width `tracking_sigma`), lin_vel_z,
ang_vel_xy, orientation (squared tilt of the gravity direction), torques, energy (off by
default), action_rate, feet_air_time (paid at touchdown, only while the command is non-zero),
feet_slip, feet_phase (feet follow the gait clock's swing height, zero while standing), pose
(weighted deviation from home: hip roll/yaw, ankle roll, waist and arms count, the walking
joints little), stand_still and termination. Weights after Playground's G1 joystick task,
adjusted for jh1.

Episode: terminates when the pelvis drops below the fall height (walk's rule), truncated at
20 s. Evaluation metrics per step: `tracking/vx` (|vx_cmd - vx| in the base frame, m/s),
`tracking/yaw` (|yaw_rate_cmd - w_z|, rad/s), `fall`, and with pushes on `push_magnitude`.

Randomization (`config.randomization`, off by default) as in walk (`jaxhum.envs.terms.randomization`):
physics drawn per episode, noise and lag on the actor observation (the critic observation
starts with the true one), action latency, pushes. Curriculum (`config.curriculum`, off by
default): the env declares the levels 'command' (and 'push' with pushes on); the step follows
`level * info['command']` (the drawn command, uniform in the full ranges, so the followed one
is uniform in the ranges scaled by the level) and scales every push's magnitude by the push
level. An episode's first observation, computed at reset, shows the reset's level (1.0).
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from jaxhum import robots
from jaxhum.config import FrozenMapping
from jaxhum.envs.base import Env, EnvState, with_autoreset
from jaxhum.envs.terms import observations, randomization, rewards
from jaxhum.envs.walk import FALL_RATIO, position_control_deploy
from jaxhum.sim import physics

REWARD_TERMS: Mapping[str, rewards.RewardTerm] = types.MappingProxyType(
    {
        "tracking_lin_vel": rewards.tracking_lin_vel,
        "tracking_ang_vel": rewards.tracking_ang_vel,
        "lin_vel_z": rewards.lin_vel_z,
        "ang_vel_xy": rewards.ang_vel_xy,
        "orientation": rewards.flat_orientation,
        "torques": rewards.torques_l2,
        "energy": rewards.energy,
        "action_rate": rewards.action_rate_l2,
        "feet_air_time": rewards.feet_air_time,
        "feet_slip": rewards.feet_slip,
        "feet_phase": rewards.feet_phase,
        "pose": rewards.pose_deviation,
        "stand_still": rewards.stand_still,
        "termination": rewards.termination,
    }
)

DEFAULT_REWARD_WEIGHTS: Mapping[str, float] = types.MappingProxyType(
    {
        "tracking_lin_vel": 1.0,
        "tracking_ang_vel": 0.75,
        "lin_vel_z": -0.5,
        "ang_vel_xy": -0.15,
        "orientation": -2.0,
        "torques": -1e-5,
        "energy": 0.0,
        "action_rate": -0.01,
        "feet_air_time": 2.0,
        "feet_slip": -0.25,
        "feet_phase": 1.0,
        "pose": -0.5,
        "stand_still": -0.5,
        "termination": -100.0,
    }
)

# Per-joint weights of the pose term: joints a forward gait barely needs are held near home.
POSE_WEIGHTS: tuple[tuple[str, float], ...] = (
    (r".*_hip_pitch", 0.01),
    (r".*_knee", 0.01),
    (r".*_ankle_pitch", 0.05),
    (r".*_hip_roll", 1.0),
    (r".*_hip_yaw", 1.0),
    (r".*_ankle_roll", 1.0),
    (r"waist_yaw", 1.0),
    (r".*_(shoulder_(pitch|roll|yaw)|elbow)", 0.2),
)

OBSERVATION_TERMS = (
    observations.imu_angular_velocity,
    observations.gravity_in_imu,
    observations.velocity_command,
    observations.joint_pos_from_home,
    observations.joint_vel,
    observations.previous_action,
    observations.gait_phase,
)

COMMAND_SIZE = 3
# The target for a trained policy: mean |vx error| <= 0.15 m/s, |yaw-rate error| <= 0.2 rad/s.
TRACKING_BOUNDS: Mapping[str, float] = types.MappingProxyType({"vx": 0.15, "yaw": 0.2})
CRITIC_EXTRA_SIZE = 3 + 3 + 1 + 2 + 2 + 2 + 4
CURRICULUM_NAMES = ("command", "push")
CURRICULUM_INFO_KEY = "curriculum"  # = jaxhum.rl.curriculum.INFO_KEY (envs do not import rl)

# `randomization.GPU_PRESET` for joystick's observation: its noise on the terms joystick observes
# (it has no velocimeter term).
GPU_RANDOMIZATION = dataclasses.replace(
    randomization.GPU_PRESET,
    obs_noise=FrozenMapping({k: v for k, v in randomization.GPU_PRESET.obs_noise.items()
                             if k in {t.__name__ for t in OBSERVATION_TERMS}}),
)


@dataclasses.dataclass(frozen=True)
class JoystickConfig:
    """Settings of joystick; every field can be overridden through `make`.

    Attributes:
      robot: robot name in `jaxhum.robots.ROBOTS`.
      episode_seconds: episode length (s) before truncation.
      fall_height: pelvis height (m) below which the episode terminates; 0 means walk's
        0.5 / 1.3 of the standing pelvis height.
      terminate_on_fall: end the episode at a fall.
      reset_noise_scale: half-width of the uniform noise (rad, rad/s) on joint angles and
        velocities at reset.
      vx_range, vy_range: (low, high) of the commanded forward / lateral velocity (m/s, base frame).
      yaw_rate_range: (low, high) of the commanded yaw rate (rad/s).
      zero_command_share: probability in [0, 1] that a drawn command is exactly (0, 0, 0).
      resample_seconds: a new command is drawn every this many seconds within an episode;
        0 keeps the first command for the whole episode.
      gait_frequency: gait clock frequency (Hz, strides per second per foot).
      swing_height: foot lift (m) the feet_phase term asks for at mid-swing.
      tracking_sigma: width of the tracking kernels (m^2/s^2, rad^2/s^2).
      air_time_threshold, air_time_max: feet_air_time pays clip(t, 0, max) - threshold per touchdown (s).
      moving_threshold: command norm at or below which the robot is told to stand.
      reward_weights: term name -> weight; an override is merged into the defaults and
        zero-weight terms are not computed.
      randomization: per-episode domain randomization, observation noise, sensor lag, action
        latency and pushes (`jaxhum.envs.terms.randomization.RandomizationConfig`; all off by default;
        `GPU_RANDOMIZATION` holds the recommended ranges). Noise and lag apply to the actor
        observation; with pushes on the metrics carry `push_magnitude`.
      curriculum: declare the curriculum levels 'command' (scales the command ranges) and, with
        pushes on, 'push' (scales push magnitudes); the trainer moves them (`ppo.curriculum`).
        Off: no levels, the task is the full one.
    """

    robot: str = "jh1"
    episode_seconds: float = 20.0
    fall_height: float = 0.0
    terminate_on_fall: bool = True
    reset_noise_scale: float = 0.05
    vx_range: tuple[float, float] = (-0.5, 1.0)
    vy_range: tuple[float, float] = (-0.3, 0.3)
    yaw_rate_range: tuple[float, float] = (-0.5, 0.5)
    zero_command_share: float = 0.1
    resample_seconds: float = 5.0
    gait_frequency: float = 1.5
    swing_height: float = 0.08
    tracking_sigma: float = 0.25
    air_time_threshold: float = 0.2
    air_time_max: float = 0.5
    moving_threshold: float = 0.1
    reward_weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: DEFAULT_REWARD_WEIGHTS)
    randomization: randomization.RandomizationConfig = dataclasses.field(
        default_factory=randomization.RandomizationConfig)
    curriculum: bool = False

    def validate(self) -> None:
        """Raises ValueError naming the first invalid field."""
        if self.robot not in robots.ROBOTS:
            raise ValueError(f"robot: must be one of {', '.join(sorted(robots.ROBOTS))}, got {self.robot!r}")
        if not self.episode_seconds > 0:
            raise ValueError(f"episode_seconds: must be > 0, got {self.episode_seconds}")
        for name in ("vx_range", "vy_range", "yaw_rate_range"):
            value = tuple(getattr(self, name))
            if len(value) != 2 or not value[0] <= value[1]:
                raise ValueError(f"{name}: must be (low, high) with low <= high, got {value}")
        if not 0.0 <= self.zero_command_share <= 1.0:
            raise ValueError(f"zero_command_share: must be in [0, 1], got {self.zero_command_share}")
        for name in ("fall_height", "reset_noise_scale", "resample_seconds", "swing_height", "air_time_threshold",
                     "moving_threshold"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("gait_frequency", "tracking_sigma", "air_time_max"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        rewards.check_weights(REWARD_TERMS, self.reward_weights)
        if not isinstance(self.randomization, randomization.RandomizationConfig):
            raise ValueError(f"randomization: expected a RandomizationConfig, got {type(self.randomization).__name__}")
        self.randomization.validate()
        if not isinstance(self.curriculum, bool):
            raise ValueError(f"curriculum: must be true or false, got {self.curriculum!r}")

    @property
    def curriculum_names(self) -> tuple[str, ...]:
        """The levels the env declares: () when `curriculum` is off."""
        if not self.curriculum:
            return ()
        return CURRICULUM_NAMES if self.randomization.pushes_on else CURRICULUM_NAMES[:1]


@dataclasses.dataclass(frozen=True, eq=False)
class JoystickEnv(Env):
    """`Env` with the bounds `python -m jaxhum.evaluate` applies to each episode's mean tracking
    errors (an episode succeeds only within them): the issue's target, 0.15 m/s and 0.2 rad/s;
    and `command_schedule(info) -> (episode_length + 1, 3)`, `command_schedule` with this env's
    config, resample period and episode length (`jaxhum.sim2sim` drives native episodes with it)."""

    tracking_bounds: Mapping[str, float] = dataclasses.field(default_factory=lambda: TRACKING_BOUNDS)
    command_schedule: Any = None


def sample_command(key: jax.Array, config: JoystickConfig) -> jax.Array:
    """A command (3,) (vx, vy, yaw_rate), each uniform in its range; all zero with probability
    `zero_command_share`. Pure: the same key gives the same command."""
    key_value, key_zero = jax.random.split(key)
    low = jnp.array([config.vx_range[0], config.vy_range[0], config.yaw_rate_range[0]], jnp.float32)
    high = jnp.array([config.vx_range[1], config.vy_range[1], config.yaw_rate_range[1]], jnp.float32)
    command = jax.random.uniform(key_value, (COMMAND_SIZE,), minval=low, maxval=high)
    zero = jax.random.uniform(key_zero) < config.zero_command_share
    return jnp.where(zero, 0.0, command)


def resample_steps(config: JoystickConfig, dt: float) -> int:
    """Control steps between command draws; 0 when the command is held for the whole episode."""
    return int(round(config.resample_seconds / dt)) if config.resample_seconds > 0 else 0


def next_command(info: dict[str, Any], config: JoystickConfig, every: int) -> dict[str, Any]:
    """`info` one control step later: the command countdown ticks and, when it reaches 0, a new
    command is drawn from the carried key (raw uint32 key data, which is split) and the countdown
    restarts at `every`.
    `every == 0` holds the command."""
    if every == 0:
        return info
    key, sub = jax.random.split(info["key"])
    left = info["resample_in"] - 1
    due = left <= 0
    return {
        **info,
        "key": jnp.where(due, key, info["key"]),
        "command": jnp.where(due, sample_command(sub, config), info["command"]),
        "resample_in": jnp.where(due, every, left).astype(jnp.int32),
    }


def followed_command(info: dict[str, Any]) -> jax.Array:
    """(3,) the command the robot is told to follow: the drawn one, times the command level when
    `info` carries curriculum levels (1.0 outside training)."""
    if CURRICULUM_INFO_KEY not in info:
        return info["command"]
    return info[CURRICULUM_INFO_KEY]["command"] * info["command"]


def command_schedule(info: dict[str, Any], config: JoystickConfig, every: int, length: int) -> jax.Array:
    """(length + 1, 3) the followed commands of an episode started with `info` (a reset state's):
    entry t is the command in the observation after step t (0: the reset's) and the command step
    t + 1 is taken and tracked under. Pure and physics-free: only `next_command` moves the command."""

    def tick(carry: dict[str, Any], _: None) -> tuple[dict[str, Any], jax.Array]:
        carry = next_command(carry, config, every)
        return carry, followed_command(carry)

    keys = ("command", "key", "resample_in", CURRICULUM_INFO_KEY)
    _, later = jax.lax.scan(tick, {k: info[k] for k in keys if k in info}, None, length=length)
    return jnp.concatenate([followed_command(info)[None], later])


def tracking_errors(command: Any, local_linvel: Any, angvel: Any) -> dict[str, Any]:
    """A step's tracking errors: `tracking/vx` |vx_cmd - vx| (m/s, base-frame velocimeter) and
    `tracking/yaw` |yaw_rate_cmd - w_z| (rad/s, gyro), from the command (3,) the step was taken
    under and the sensors (3,) after it. jnp or numpy arrays alike."""
    return {"tracking/vx": abs(command[0] - local_linvel[0]), "tracking/yaw": abs(command[2] - angvel[2])}


def with_command(env: Env, state: EnvState, command: Any, hold: bool = True) -> EnvState:
    """`state` (one env or a batch) told to follow `command` (3,) = (vx, vy, yaw_rate) from now on.

    The command is written into `state.info` and into the observation (and critic observation)
    the policy acts on next. With `hold` the command is never resampled in this episode (an
    autoreset of `env.step` still starts the next episode with a drawn command: drive a policy
    with `env.step_without_reset`, or call `with_command` again after a reset). Under a
    curriculum (`config.curriculum`) the step follows `level * command`; the level is 1.0
    outside training.
    """
    offset = _command_offset(env)
    cmd = jnp.broadcast_to(jnp.asarray(command, jnp.float32), state.info["command"].shape)
    info = {**state.info, "command": cmd}
    if hold:
        info["resample_in"] = jnp.full_like(state.info["resample_in"], jnp.iinfo(jnp.int32).max)
    return state.replace(
        info=info,
        obs=state.obs.at[..., offset:offset + COMMAND_SIZE].set(cmd),
        critic_obs=state.critic_obs.at[..., offset:offset + COMMAND_SIZE].set(cmd),
    )


def _command_offset(env: Env) -> int:
    offset = 0
    for name, size in env.observation_layout:
        if name == observations.velocity_command.__name__:
            return offset
        offset += size
    raise ValueError(f"env: task {env.name!r} has no command in its observation")


def pose_weights(robot: robots.Robot) -> np.ndarray:
    """(A,) weight of each actuated joint in the pose term (`POSE_WEIGHTS`; 1.0 where none matches)."""
    out = []
    for name in robot.joint_names:
        out.append(next((w for expr, w in POSE_WEIGHTS if re.fullmatch(expr, name)), 1.0))
    return np.asarray(out, np.float32)


def target_foot_height(data_time: jax.Array, config: JoystickConfig, moving: jax.Array) -> jax.Array:
    """(2,) swing heights the gait clock asks of the left and right foot at time t:
    swing_height * max(sin(phi), 0) for each foot's phase (see `observations.gait_phase`); 0 when standing."""
    left = 2.0 * jnp.pi * config.gait_frequency * data_time
    phase = jnp.stack([left, left + jnp.pi])
    return config.swing_height * jnp.maximum(jnp.sin(phase), 0.0) * moving


def _standing_foot_height(sim: Any, idx: robots.RobotIndex) -> np.ndarray:
    """(2,) world z of the foot sites at the home keyframe."""
    data = mujoco.MjData(sim.mj_model)
    data.qpos[:] = idx.home_qpos
    mujoco.mj_kinematics(sim.mj_model, data)
    return np.asarray(data.site_xpos[idx.foot_site_ids, 2], np.float32)


def make(config: JoystickConfig, name: str = "joystick") -> JoystickEnv:
    """Builds joystick from a validated config (`jaxhum.envs.make('joystick', ...)` builds by name).

    `name` is the built env's `Env.name` (a task defined as a joystick config, e.g. balance).
    """
    config.validate()
    robot = robots.get_robot(config.robot)
    sim = robot.load()
    idx = robot.index(sim)
    model, mj = sim.mjx_model, sim.mj_model
    n_act = len(robot.joint_names)
    dt = float(mj.opt.timestep) * robot.n_substeps
    episode_length = max(1, int(round(config.episode_seconds / dt)))
    every = resample_steps(config, dt)
    fall_height = config.fall_height or FALL_RATIO * idx.standing_height
    weights = dict(config.reward_weights)

    qpos_adr, dof_adr = jnp.asarray(idx.qpos_adr), jnp.asarray(idx.dof_adr)
    home_qpos = jnp.asarray(idx.home_qpos, jnp.float32)
    home_joint_pos = jnp.asarray(idx.home_joint_pos, jnp.float32)
    foot_sites = jnp.asarray(idx.foot_site_ids)
    foot_z0 = jnp.asarray(_standing_foot_height(sim, idx))
    joint_pose_weights = jnp.asarray(pose_weights(robot))
    actuator_ids = jnp.asarray(idx.actuator_ids)
    root = idx.root_body_id
    obs_context = {
        "qpos_adr": qpos_adr,
        "dof_adr": dof_adr,
        "home_joint_pos": home_joint_pos,
        "imu_site_id": idx.imu_site_id,
        "linvel_slice": idx.linvel,
        "gyro_slice": idx.gyro,
        "gait_frequency": config.gait_frequency,
    }

    def observe(data, command, last_action) -> jax.Array:
        return observations.concat(OBSERVATION_TERMS, {"data": data, "command": command, "last_action": last_action,
                                                       **obs_context})

    home_data = jax.eval_shape(physics.init, model, home_qpos, jnp.zeros((mj.nv,), jnp.float32))
    layout = observations.layout(
        OBSERVATION_TERMS,
        {"data": home_data, "command": jnp.zeros((COMMAND_SIZE,)), "last_action": jnp.zeros((n_act,)), **obs_context})
    obs_size = sum(size for _, size in layout)
    rand = randomization.build(config.randomization, sim, idx, layout, dt)
    levels = config.curriculum_names

    def critic_observe(obs, data, info, foot_vel_xy) -> jax.Array:
        return jnp.concatenate([
            obs,
            data.sensordata[idx.linvel],
            data.qvel[0:3],
            data.xpos[root, 2:3],
            info["last_contact"],
            info["feet_air_time"],
            data.site_xpos[foot_sites, 2] - foot_z0,
            foot_vel_xy.ravel(),
        ])

    def evaluate(data, prev_data, action, last_action, info, push=None):
        """(reward, terminated, metrics, info, foot_vel_xy) of the state `data` reached from
        `prev_data` by `action` (after a kick of magnitude `push`, None for none)."""
        command = followed_command(info)
        contact = robots.foot_contacts(idx, data)
        # Touchdown as Playground's and Isaac Lab's air-time terms define it; contact OR the last
        # step's contact filters one-step flickers of MJX's contact flag.
        contact_filt = jnp.maximum(contact, info["last_contact"])
        air_time = info["feet_air_time"] + dt
        first_contact = ((info["feet_air_time"] > 0.0) & (contact_filt > 0.0)).astype(jnp.float32)
        foot_xpos = data.site_xpos[foot_sites]
        foot_vel_xy = (foot_xpos[:, :2] - prev_data.site_xpos[foot_sites][:, :2]) / dt
        moving = (jnp.linalg.norm(command) > config.moving_threshold).astype(jnp.float32)
        height = data.xpos[root, 2]
        fell = height < fall_height
        joint_pos_error = data.qpos[qpos_adr] - home_joint_pos
        local_linvel = data.sensordata[idx.linvel]
        angvel = data.sensordata[idx.gyro]
        context = {
            "command": command,
            "local_linvel": local_linvel,
            "angvel": angvel,
            "tracking_sigma": config.tracking_sigma,
            "gravity": observations.gravity_in_imu(data=data, imu_site_id=idx.imu_site_id),
            "torque": data.actuator_force[actuator_ids],
            "joint_vel": data.qvel[dof_adr],
            "action": action,
            "last_action": last_action,
            "air_time": air_time,
            "first_contact": first_contact,
            "air_time_threshold": config.air_time_threshold,
            "air_time_max": config.air_time_max,
            "moving_threshold": config.moving_threshold,
            "foot_contact": contact,
            "foot_vel_xy": foot_vel_xy,
            "foot_height": foot_xpos[:, 2] - foot_z0,
            "target_foot_height": target_foot_height(data.time, config, moving),
            "joint_pos_error": joint_pos_error,
            "pose_weights": joint_pose_weights,
            "fell": fell,
        }
        reward, metrics = rewards.weighted_sum(REWARD_TERMS, weights, context)
        metrics.update(tracking_errors(command, local_linvel, angvel))
        metrics["fall"] = fell.astype(jnp.float32)
        if config.randomization.pushes_on:
            metrics["push_magnitude"] = jnp.zeros((), jnp.float32) if push is None else push
        terminated = jnp.where(fell & config.terminate_on_fall, 1.0, 0.0).astype(jnp.float32)
        info = {**info, "feet_air_time": air_time * (1.0 - contact_filt), "last_contact": contact}
        return reward, terminated, metrics, info, foot_vel_xy

    def state_at(key: jax.Array, qpos: jax.Array, qvel: jax.Array) -> EnvState:
        key_command, key_info = jax.random.split(key)
        # fold_in, not a split of `key`: joystick without randomization draws as before.
        episode = rand.episode_start(jax.random.fold_in(key, 1), obs_size, n_act)
        data = physics.init(rand.physics_model(model, episode), qpos, qvel)
        if jax.dtypes.issubdtype(key_info.dtype, jax.dtypes.prng_key):
            # Raw key data in `info`: autoreset selects between infos with jnp.where.
            key_info = jax.random.key_data(key_info)
        contact = robots.foot_contacts(idx, data)
        info = {
            "command": sample_command(key_command, config),
            "key": key_info,
            "resample_in": jnp.asarray(every, jnp.int32),
            "feet_air_time": jnp.zeros((2,), jnp.float32),
            "last_contact": contact,
            **episode,
        }
        if levels:  # the full task outside training; the trainer writes its levels over these
            info[CURRICULUM_INFO_KEY] = {n: jnp.ones((), jnp.float32) for n in levels}
        zero_action = jnp.zeros((n_act,), jnp.float32)
        _, _, metrics, _, _ = evaluate(data, data, zero_action, zero_action, info)
        true_obs = observe(data, followed_command(info), zero_action)
        obs, info = rand.observe(true_obs, info)
        critic_obs = critic_observe(true_obs, data, info, jnp.zeros((2, 2), jnp.float32))
        return EnvState.start(data, obs, n_act, metrics, critic_obs=critic_obs, info=info)

    def reset_to(key: jax.Array, qpos: jax.Array, qvel: jax.Array) -> EnvState:
        return state_at(key, qpos, qvel)

    def reset(key: jax.Array) -> EnvState:
        key_qpos, key_qvel, key_state = jax.random.split(key, 3)
        s = config.reset_noise_scale
        qpos = home_qpos.at[qpos_adr].add(jax.random.uniform(key_qpos, (n_act,), minval=-s, maxval=s))
        qvel = jnp.zeros((mj.nv,), jnp.float32).at[dof_adr].set(
            jax.random.uniform(key_qvel, (n_act,), minval=-s, maxval=s))
        return state_at(key_state, qpos, qvel)

    def step_without_reset(state: EnvState, action: jax.Array) -> EnvState:
        chex.assert_shape(action, (n_act,))
        action = jnp.clip(action.astype(jnp.float32), -1.0, 1.0)
        episode_model = rand.physics_model(model, state.info)
        applied, info = rand.delayed_action(action, state.info)
        push_level = info[CURRICULUM_INFO_KEY]["push"] if "push" in levels else None
        data, push, info = rand.push(state.data, info, push_level)
        data = physics.step(episode_model, data, robots.action_to_ctrl(idx, applied), robot.n_substeps)
        # prev_data = state.data: a kick changes velocities only, foot velocities come from positions.
        reward, terminated, metrics, info, foot_vel_xy = evaluate(data, state.data, action, state.last_action,
                                                                  info, push)
        info = next_command(info, config, every)
        true_obs = observe(data, followed_command(info), action)
        obs, info = rand.observe(true_obs, info)
        critic_obs = critic_observe(true_obs, data, info, foot_vel_xy)
        return state.advance(data, obs, reward, terminated, action, metrics, critic_obs=critic_obs, info=info)

    return JoystickEnv(
        name=name,
        config=config,
        reset=reset,
        reset_to=reset_to,
        step=with_autoreset(step_without_reset, episode_length),
        step_without_reset=step_without_reset,
        observation_size=obs_size,
        action_size=n_act,
        dt=dt,
        episode_length=episode_length,
        sim=sim,
        observation_layout=layout,
        robot=robot,
        deploy=_deploy_spec(config, robot, idx, fall_height),
        critic_observation_size=obs_size + CRITIC_EXTRA_SIZE,
        fresh_starts=True,
        curriculum=levels,
        command_schedule=lambda info: command_schedule(info, config, every, episode_length),
    )


def _deploy_spec(config: JoystickConfig, robot: robots.Robot, idx: robots.RobotIndex, fall_height: float):
    """joystick outside JAX: the same observation terms on native MjData, given the command."""
    context = {
        "qpos_adr": idx.qpos_adr,
        "dof_adr": idx.dof_adr,
        "home_joint_pos": np.asarray(idx.home_joint_pos, np.float32),
        "imu_site_id": idx.imu_site_id,
        "linvel_slice": idx.linvel,
        "gyro_slice": idx.gyro,
        "gait_frequency": config.gait_frequency,
    }
    n_act = len(robot.joint_names)

    def host_observation(*, model: mujoco.MjModel, data: mujoco.MjData, last_action=None, command=None) -> np.ndarray:
        """The actor observation on native data; `command` (3,) and `last_action` (A,) default to zeros."""
        del model
        command = np.zeros(COMMAND_SIZE, np.float32) if command is None else np.asarray(command, np.float32)
        last_action = np.zeros(n_act, np.float32) if last_action is None else np.asarray(last_action, np.float32)
        return observations.concat_host(OBSERVATION_TERMS, {"data": data, "command": command,
                                                            "last_action": last_action, **context})

    def host_terminated(*, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        del model
        return bool(config.terminate_on_fall and data.xpos[idx.root_body_id, 2] < fall_height)

    def host_tracking(*, model: mujoco.MjModel, data: mujoco.MjData, command) -> dict[str, float]:
        """`tracking_errors` of the step that reached native `data` under `command` (3,)."""
        del model
        command = np.asarray(command, np.float32)
        errors = tracking_errors(command, data.sensordata[idx.linvel], data.sensordata[idx.gyro])
        return {k: float(v) for k, v in errors.items()}

    return position_control_deploy(robot, idx, host_observation, host_terminated, host_tracking)
