"""Velocity-command locomotion on our robots: the task joystick and balance are (one `TaskDef`).

joystick (`jaxhum.envs.joystick`) is this task with its defaults; balance (`jaxhum.envs.balance`)
is it with the command fixed at zero and pushes on. Both are built from `TASK` by
`jaxhum.envs.robot_task.build`, so their observation, critic observation and action shapes are
the same (a joystick policy fine-tunes into balance). What the task is (the skeleton does the rest):

  observation (`OBSERVATION_TERMS`): gyro, gravity in the IMU frame, the followed command, joint
    positions from home, joint velocities, previous action, gait clock.
  critic extras (`critic_extras`, after the true actor observation): base linear velocity in the
    base frame and in the world, pelvis height, foot contacts, feet air time, foot heights above
    standing, planar foot velocities (`CRITIC_EXTRA_SIZE`).
  info (`init_info`, `next_info`): the drawn command, its PRNG key and countdown
    (`jaxhum.envs.terms.commands`), feet air time and last contacts.
  reward (`REWARD_TERMS`, `DEFAULT_REWARD_WEIGHTS`), termination at a fall, metrics
    `tracking/vx`, `tracking/yaw` (`evaluate`); host tracking errors for sim-to-sim.
  curriculum: the levels 'command' (scales the followed command) and, with pushes on, 'push'.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
from collections.abc import Mapping
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from jaxhum import robots
from jaxhum.config import FrozenMapping
from jaxhum.envs import robot_task
from jaxhum.envs.base import Env
from jaxhum.envs.terms import commands, observations, randomization, rewards

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

# The target for a trained policy: mean |vx error| <= 0.15 m/s, |yaw-rate error| <= 0.2 rad/s.
TRACKING_BOUNDS: Mapping[str, float] = types.MappingProxyType({"vx": 0.15, "yaw": 0.2})
CRITIC_EXTRA_SIZE = 3 + 3 + 1 + 2 + 2 + 2 + 4
CURRICULUM_NAMES = (commands.COMMAND_LEVEL, robot_task.PUSH_LEVEL)

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
      robot: robot name (`jaxhum.robots.ROBOTS` or `SPEC_FILES`), or the path of a .toml robot spec file.
      episode_seconds: episode length (s) before truncation.
      fall_height: pelvis height (m) below which the episode terminates; 0 means walk's
        0.5 / 1.3 of the standing pelvis height.
      terminate_on_fall: end the episode at a fall.
      fall_tilt: the robot has also fallen when its pelvis tilts more than this (rad) from
        upright; 0 (the default) judges falls by height alone.
      observation_history: the actor sees its last this many observation frames, newest first
        (`Env.observation_history`; 1, the default, is the current frame alone); each frame is
        the noisy, lagged observation the robot would read.
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
      critic_randomization: the privileged critic also reads what the episode's randomization
        drew (physics parameters, lag, latency, seconds to the next kick:
        `randomization.Randomizer.privileged`); off by default. The actor never sees it.
      curriculum: declare the curriculum levels 'command' (scales the command ranges) and, with
        pushes on, 'push' (scales push magnitudes); the trainer moves them (`ppo.curriculum`).
        Off: no levels, the task is the full one.
    """

    robot: str = "jh1"
    episode_seconds: float = 20.0
    fall_height: float = 0.0
    fall_tilt: float = 0.0
    terminate_on_fall: bool = True
    reset_noise_scale: float = 0.05
    observation_history: int = 1
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
    critic_randomization: bool = False
    curriculum: bool = False

    def validate(self) -> None:
        """Raises ValueError naming the first invalid field."""
        robots.check_robot(self.robot)
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
        robot_task.check_skeleton_fields(self)
        rewards.check_weights(REWARD_TERMS, self.reward_weights)
        if not isinstance(self.randomization, randomization.RandomizationConfig):
            raise ValueError(f"randomization: expected a RandomizationConfig, got {type(self.randomization).__name__}")
        self.randomization.validate()
        if not isinstance(self.critic_randomization, bool):
            raise ValueError(f"critic_randomization: must be true or false, got {self.critic_randomization!r}")
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



def standing_foot_height(sim: Any, idx: robots.RobotIndex) -> np.ndarray:
    """(2,) world z of the foot sites at the home keyframe."""
    data = mujoco.MjData(sim.mj_model)
    data.qpos[:] = idx.home_qpos
    mujoco.mj_kinematics(sim.mj_model, data)
    return np.asarray(data.site_xpos[idx.foot_site_ids, 2], np.float32)


# ----------------------------------------------------------------------------- the task


class GaitConstants(NamedTuple):
    """The task's constants on one robot, resolved once per built env (`Setup.constants`)."""

    foot_site_ids: jax.Array  # (2,) int, the left and right foot sites
    standing_foot_height: jax.Array  # (2,) float32, their world z at home (m)
    pose_weights: jax.Array  # (A,) float32, `pose_weights(robot)`
    actuator_ids: jax.Array  # (A,) int, the actuator each action entry drives
    resample_every: int  # control steps between command draws (`commands.resample_steps`; 0: held)


class Feet(NamedTuple):
    """The feet over one control step."""

    contact: jax.Array  # (2,) 1.0 per foot on the floor after the step
    air_time: jax.Array  # (2,) s each foot has been in the air, counted up to this step
    first_contact: jax.Array  # (2,) 1.0 on the step a foot touches down
    vel_xy: jax.Array  # (2, 2) world-frame planar foot velocities over the step (m/s)
    height: jax.Array  # (2,) m above the foot's standing height
    next_air_time: jax.Array  # (2,) the air time carried to the next step (0 on the ground)


def constants(*, config: JoystickConfig, setup: robot_task.Setup) -> GaitConstants:
    """The robot's foot sites and standing foot heights, pose weights, actuators; the resample period."""
    idx = setup.idx
    return GaitConstants(
        foot_site_ids=jnp.asarray(idx.foot_site_ids),
        standing_foot_height=jnp.asarray(standing_foot_height(setup.sim, idx)),
        pose_weights=jnp.asarray(pose_weights(setup.robot)),
        actuator_ids=jnp.asarray(idx.actuator_ids),
        resample_every=commands.resample_steps(config, setup.dt),
    )


def curriculum_levels(*, config: JoystickConfig) -> tuple[str, ...]:
    """The levels the env declares (`JoystickConfig.curriculum_names`)."""
    return config.curriculum_names


def init_info(*, config: JoystickConfig, setup: robot_task.Setup, key: jax.Array, data: Any) -> dict[str, Any]:
    """A new episode's command (drawn from `key`), its key and countdown, feet air time and contacts."""
    key_command, key_info = jax.random.split(key)
    if jax.dtypes.issubdtype(key_info.dtype, jax.dtypes.prng_key):
        # Raw key data in `info`: autoreset selects between infos with jnp.where.
        key_info = jax.random.key_data(key_info)
    return {
        "command": commands.sample_command(key_command, config),
        "key": key_info,
        "resample_in": jnp.asarray(setup.constants.resample_every, jnp.int32),
        "feet_air_time": jnp.zeros((2,), jnp.float32),
        "last_contact": robots.foot_contacts(setup.idx, data),
    }


def next_info(*, config: JoystickConfig, setup: robot_task.Setup, info: dict[str, Any]) -> dict[str, Any]:
    """`info` a step later: the command countdown ticks, a new command is drawn when due."""
    return commands.next_command(info, config, setup.constants.resample_every)


def observation_inputs(*, config: JoystickConfig, info: dict[str, Any]) -> dict[str, Any]:
    """The followed command (3,) and the gait clock's frequency."""
    return {"command": commands.followed_command(info), "gait_frequency": config.gait_frequency}


def host_observation_inputs(*, config: JoystickConfig, command: Any = None) -> dict[str, Any]:
    """`observation_inputs` on native data: `command` (3,) as given, zeros by default."""
    command = np.zeros(commands.COMMAND_SIZE, np.float32) if command is None else np.asarray(command, np.float32)
    return {"command": command, "gait_frequency": config.gait_frequency}


def foot_state(*, setup: robot_task.Setup, data: Any, prev_data: Any, info: dict[str, Any]) -> Feet:
    """The feet of the step from `prev_data` to `data`."""
    c = setup.constants
    contact = robots.foot_contacts(setup.idx, data)
    # Touchdown as Playground's and Isaac Lab's air-time terms define it; contact OR the last
    # step's contact filters one-step flickers of MJX's contact flag.
    contact_filt = jnp.maximum(contact, info["last_contact"])
    air_time = info["feet_air_time"] + setup.dt
    first_contact = ((info["feet_air_time"] > 0.0) & (contact_filt > 0.0)).astype(jnp.float32)
    foot_xpos = data.site_xpos[c.foot_site_ids]
    vel_xy = (foot_xpos[:, :2] - prev_data.site_xpos[c.foot_site_ids][:, :2]) / setup.dt
    return Feet(contact=contact, air_time=air_time, first_contact=first_contact, vel_xy=vel_xy,
                height=foot_xpos[:, 2] - c.standing_foot_height, next_air_time=air_time * (1.0 - contact_filt))


def evaluate(*, config: JoystickConfig, setup: robot_task.Setup, data: Any, prev_data: Any, action: jax.Array,
             last_action: jax.Array, info: dict[str, Any], fell: jax.Array) -> robot_task.Outcome:
    """The state `data` reached from `prev_data` by `action` (A,): the reward terms' quantities,
    termination at a fall, the tracking errors; `aux` the planar foot velocities (2, 2)."""
    idx = setup.idx
    command = commands.followed_command(info)
    feet = foot_state(setup=setup, data=data, prev_data=prev_data, info=info)
    moving = (jnp.linalg.norm(command) > config.moving_threshold).astype(jnp.float32)
    local_linvel, angvel = data.sensordata[idx.linvel], data.sensordata[idx.gyro]
    quantities = {
        "command": command,
        "local_linvel": local_linvel,
        "angvel": angvel,
        "tracking_sigma": config.tracking_sigma,
        "gravity": observations.gravity_in_imu(data=data, imu_site_id=idx.imu_site_id),
        "torque": data.actuator_force[setup.constants.actuator_ids],
        "joint_vel": data.qvel[setup.dof_adr],
        "action": action,
        "last_action": last_action,
        "air_time": feet.air_time,
        "first_contact": feet.first_contact,
        "air_time_threshold": config.air_time_threshold,
        "air_time_max": config.air_time_max,
        "moving_threshold": config.moving_threshold,
        "foot_contact": feet.contact,
        "foot_vel_xy": feet.vel_xy,
        "foot_height": feet.height,
        "target_foot_height": target_foot_height(data.time, config, moving),
        "joint_pos_error": data.qpos[setup.qpos_adr] - setup.home_joint_pos,
        "pose_weights": setup.constants.pose_weights,
        "fell": fell,
    }
    info = {**info, "feet_air_time": feet.next_air_time, "last_contact": feet.contact}
    return robot_task.Outcome(quantities, robot_task.fall_termination(fell=fell, config=config),
                              commands.tracking_errors(command, local_linvel, angvel), info, aux=feet.vel_xy)


def critic_extras(*, config: JoystickConfig, setup: robot_task.Setup, data: Any, info: dict[str, Any],
                  aux: jax.Array | None, drawn: jax.Array) -> jax.Array:
    """(CRITIC_EXTRA_SIZE (+ P),) privileged state for the critic; `aux` the step's planar foot
    velocities (2, 2), None at reset (zeros); with `config.critic_randomization` then `drawn` (P,),
    what the episode's randomization drew (`Randomizer.privileged`)."""
    idx, c = setup.idx, setup.constants
    foot_vel_xy = jnp.zeros((2, 2), jnp.float32) if aux is None else aux
    extras = jnp.concatenate([
        data.sensordata[idx.linvel],
        data.qvel[0:3],
        data.xpos[idx.root_body_id, 2:3],
        info["last_contact"],
        info["feet_air_time"],
        data.site_xpos[c.foot_site_ids, 2] - c.standing_foot_height,
        foot_vel_xy.ravel(),
    ])
    chex.assert_shape(extras, (CRITIC_EXTRA_SIZE,))
    return jnp.concatenate([extras, drawn]) if config.critic_randomization else extras


def host_tracking(*, setup: robot_task.Setup, data: mujoco.MjData, command: Any) -> dict[str, float]:
    """`commands.tracking_errors` of the step that reached native `data` under `command` (3,)."""
    command = np.asarray(command, np.float32)
    errors = commands.tracking_errors(command, data.sensordata[setup.idx.linvel], data.sensordata[setup.idx.gyro])
    return {k: float(v) for k, v in errors.items()}


def env_fields(*, config: JoystickConfig, setup: robot_task.Setup) -> dict[str, Any]:
    """`JoystickEnv.command_schedule` with this env's config, resample period and episode length."""
    schedule = functools.partial(commands.command_schedule, config=config, every=setup.constants.resample_every,
                                 length=setup.episode_length)
    return {"command_schedule": schedule}


TASK = robot_task.TaskDef(
    observation_terms=OBSERVATION_TERMS,
    reward_terms=REWARD_TERMS,
    evaluate=evaluate,
    init_info=init_info,
    next_info=next_info,
    observation_inputs=observation_inputs,
    host_observation_inputs=host_observation_inputs,
    critic_extras=critic_extras,
    constants=constants,
    curriculum=curriculum_levels,
    host_tracking=host_tracking,
    env_class=JoystickEnv,
    env_fields=env_fields,
    fresh_starts=True,
)
