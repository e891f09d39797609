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

Episode: terminates when the pelvis drops below the fall height (every robot task's rule),
truncated at 20 s. Evaluation metrics per step: `tracking/vx` (|vx_cmd - vx| in the base frame, m/s),
`tracking/yaw` (|yaw_rate_cmd - w_z|, rad/s), `fall`, and with pushes on `push_magnitude`.

Randomization (`config.randomization`, off by default) as in every robot task (`jaxhum.envs.terms.randomization`):
physics drawn per episode, noise and lag on the actor observation (the critic observation
starts with the true one), action latency, pushes. Curriculum (`config.curriculum`, off by
default): the env declares the levels 'command' (and 'push' with pushes on); the step follows
`level * info['command']` (the drawn command, uniform in the full ranges, so the followed one
is uniform in the ranges scaled by the level) and scales every push's magnitude by the push
level. An episode's first observation, computed at reset, shows the reset's level (1.0).

The task is defined in `jaxhum.envs.terms.locomotion` (`TASK`, shared with balance, which must
keep its shapes) on the robot-task skeleton (`jaxhum.envs.robot_task`); its commands are
`jaxhum.envs.terms.commands`. This module names it and re-exports the names other code uses.
"""

from __future__ import annotations

from jaxhum.envs import robot_task
from jaxhum.envs.robot_task import CURRICULUM_INFO_KEY
from jaxhum.envs.terms.commands import (
    COMMAND_SIZE,
    command_schedule,
    followed_command,
    next_command,
    resample_steps,
    sample_command,
    tracking_errors,
    with_command,
)
from jaxhum.envs.terms.commands import command_offset as _command_offset  # noqa: F401 (tests use it)
from jaxhum.envs.terms.locomotion import (
    CRITIC_EXTRA_SIZE,
    CURRICULUM_NAMES,
    DEFAULT_REWARD_WEIGHTS,
    GPU_RANDOMIZATION,
    OBSERVATION_TERMS,
    POSE_WEIGHTS,
    REWARD_TERMS,
    TASK,
    TRACKING_BOUNDS,
    JoystickConfig,
    JoystickEnv,
    pose_weights,
    target_foot_height,
)

__all__ = [
    "COMMAND_SIZE", "CRITIC_EXTRA_SIZE", "CURRICULUM_INFO_KEY", "CURRICULUM_NAMES", "DEFAULT_REWARD_WEIGHTS",
    "GPU_RANDOMIZATION", "OBSERVATION_TERMS", "POSE_WEIGHTS", "REWARD_TERMS", "TASK", "TRACKING_BOUNDS",
    "JoystickConfig", "JoystickEnv", "command_schedule", "followed_command", "make",
    "next_command", "pose_weights", "resample_steps", "sample_command", "target_foot_height", "tracking_errors",
    "with_command",
]


def make(config: JoystickConfig, name: str = "joystick") -> JoystickEnv:
    """Builds joystick from a validated config (`jaxhum.envs.make('joystick', ...)` builds by name).

    `name` is the built env's `Env.name`.
    """
    return robot_task.build(config, TASK, name=name)
