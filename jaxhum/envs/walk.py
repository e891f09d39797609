"""walk: our humanoid robot walks forward in +x (the seed chapter's example task).

Robot: `jaxhum.robots` (default `jh1`). Actions a in [-1, 1]^A are joint position targets around
the home pose, `target = home + action_scale * a`, tracked by the position actuators (the PD law
runs inside the physics at every substep; the policy acts every `dt = n_substeps * timestep`).

Observation (what the robot's own sensors give; `env.observation_layout` names the slices):
joint positions relative to home (A), joint velocities (A), the torso orientation as the gravity
direction in the IMU frame (3) and the heading (cos yaw, sin yaw) of the IMU's forward axis (2),
IMU linear velocity (3, velocimeter) and angular velocity (3, gyro), foot contacts (2). The heading
lets the policy see and correct a turn away from +x, the direction the reward pays for.

Reward, the chapter's four terms with its weights (all overridable through `reward_weights`):

    forward_velocity   2.0    * pelvis x-velocity (world frame, m/s)
    upright            1.0    * (+1 while the pelvis is above upright_height, -10 at or below)
    energy            -0.005  * sum_i a_i^2 (the chapter's 0.5 * -0.01; squared actions, not power)
    orientation        1.0    * -(|roll| + |pitch|) of the pelvis (rad)

Heights: the chapter's 0.8 m (upright) and 0.5 m (fall) are for a robot whose torso stands at
about 1.3 m (the classic MuJoCo humanoid). We keep their ratios to the standing height,
0.8 / 1.3 and 0.5 / 1.3, and apply them to our robot's pelvis height at home (`robot.index`'s
`standing_height`); `upright_height` / `fall_height` override them in metres. The episode
terminates when the pelvis drops below the fall height and is truncated after 20 s.

The rest (robot, reset noise, randomization, the step pipeline, autoreset, the `DeploySpec`) is
the robot-task skeleton's (`jaxhum.envs.robot_task`); this module is walk's terms, reward and
termination (`TASK`).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from jaxhum import robots
from jaxhum.envs import robot_task
from jaxhum.envs.base import Env
from jaxhum.envs.robot_task import CHAPTER_STANDING_HEIGHT, FALL_RATIO, position_control_deploy
from jaxhum.envs.terms import observations, randomization, rewards

__all__ = [
    "CHAPTER_STANDING_HEIGHT", "DEFAULT_REWARD_WEIGHTS", "FALL_RATIO", "OBSERVATION_TERMS", "REWARD_TERMS", "TASK",
    "UPRIGHT_RATIO", "WalkConfig", "make", "position_control_deploy", "roll_pitch",
]

REWARD_TERMS: Mapping[str, rewards.RewardTerm] = types.MappingProxyType(
    {
        "forward_velocity": rewards.torso_x_velocity,
        "upright": rewards.upright_bonus,
        "energy": rewards.action_l2,
        "orientation": rewards.tilt,
    }
)

DEFAULT_REWARD_WEIGHTS: Mapping[str, float] = types.MappingProxyType(
    {"forward_velocity": 2.0, "upright": 1.0, "energy": 0.5 * -0.01, "orientation": 1.0}
)

OBSERVATION_TERMS = (
    observations.joint_pos_from_home,
    observations.joint_vel,
    observations.gravity_in_imu,
    observations.heading_in_world,
    observations.imu_linear_velocity,
    observations.imu_angular_velocity,
    observations.foot_contacts,
)

# The chapter's heights over its robot's standing torso height (see the module docstring);
# FALL_RATIO = 0.5 / CHAPTER_STANDING_HEIGHT is every robot task's default (`robot_task`).
UPRIGHT_RATIO = 0.8 / CHAPTER_STANDING_HEIGHT


@dataclasses.dataclass(frozen=True)
class WalkConfig:
    """Settings of walk; every field can be overridden through `make`.

    Attributes:
      robot: robot name (`jaxhum.robots.ROBOTS` or `SPEC_FILES`), or the path of a .toml robot spec file.
      episode_seconds: episode length in seconds before truncation (20 s as in the chapter).
      upright_height: pelvis height (m) above which `upright` pays +1; 0 means
        0.8 / 1.3 of the robot's standing pelvis height.
      fall_height: pelvis height (m) below which the episode terminates; 0 means 0.5 / 1.3 of
        the standing height.
      terminate_on_fall: end the episode at a fall (else it runs to the time limit).
      fall_tilt: the robot has also fallen when its pelvis tilts more than this (rad) from
        upright; 0 (the default) judges falls by height alone.
      observation_history: the actor sees its last this many observation frames, newest first
        (`Env.observation_history`; 1, the default, is the current frame alone); each frame is
        the noisy, lagged observation the robot would read.
      reset_noise_scale: half-width of the uniform noise (rad, rad/s) added to the joint angles
        and velocities of the home pose at reset.
      reward_weights: term name -> weight; an override is merged into the defaults and
        zero-weight terms are not computed.
      randomization: per-episode domain randomization, observation noise, sensor lag, action
        latency and pushes (`jaxhum.envs.terms.randomization.RandomizationConfig`; all off by default).
        When anything is on, the env asks for fresh starts (`Env.fresh_starts`) so every
        episode draws anew, and with pushes on the metrics carry `push_magnitude`.
    """

    robot: str = "jh1"
    episode_seconds: float = 20.0
    upright_height: float = 0.0
    fall_height: float = 0.0
    fall_tilt: float = 0.0
    terminate_on_fall: bool = True
    reset_noise_scale: float = 0.05
    observation_history: int = 1
    reward_weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: DEFAULT_REWARD_WEIGHTS)
    randomization: randomization.RandomizationConfig = dataclasses.field(
        default_factory=randomization.RandomizationConfig)

    def validate(self) -> None:
        """Raises ValueError naming the first invalid field."""
        robots.check_robot(self.robot)
        if not self.episode_seconds > 0:
            raise ValueError(f"episode_seconds: must be > 0, got {self.episode_seconds}")
        for name in ("upright_height", "fall_height", "reset_noise_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        robot_task.check_skeleton_fields(self)
        rewards.check_weights(REWARD_TERMS, self.reward_weights)
        if not isinstance(self.randomization, randomization.RandomizationConfig):
            raise ValueError(f"randomization: expected a RandomizationConfig, got {type(self.randomization).__name__}")
        self.randomization.validate()


def roll_pitch(quat: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Roll and pitch (rad) of a unit quaternion (w, x, y, z) (4,), ZYX Euler convention."""
    chex.assert_shape(quat, (4,))
    w, x, y, z = quat[0], quat[1], quat[2], quat[3]
    roll = jnp.arctan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = jnp.arcsin(jnp.clip(2.0 * (w * y - z * x), -1.0, 1.0))
    return roll, pitch


class WalkConstants(NamedTuple):
    """walk's constants on one robot (`Setup.constants`)."""

    upright_height: float  # pelvis height (m) above which `upright` pays +1


def constants(*, config: WalkConfig, setup: robot_task.Setup) -> WalkConstants:
    """The upright height in metres; raises ValueError if the fall height exceeds it."""
    upright_height = config.upright_height or UPRIGHT_RATIO * setup.idx.standing_height
    if not setup.fall_height <= upright_height:
        raise ValueError(f"fall_height: must not exceed upright_height ({upright_height:.3f} m), "
                         f"got {setup.fall_height:.3f}")
    return WalkConstants(upright_height=upright_height)


def evaluate(*, config: WalkConfig, setup: robot_task.Setup, data: Any, action: jax.Array,
             fell: jax.Array) -> robot_task.Outcome:
    """The state `data` reached by `action` (A,): the chapter's reward quantities, termination at
    a fall, the pelvis x-velocity and height."""
    root = setup.idx.root_body_id
    height = data.xpos[root, 2]
    roll, pitch = roll_pitch(data.xquat[root])
    quantities = {
        "root_linvel": data.qvel[0:3],  # a free joint's linear velocity is in the world frame
        "torso_height": height,
        "upright_height": setup.constants.upright_height,
        "action": action,
        "roll": roll,
        "pitch": pitch,
    }
    metrics = {"x_velocity": data.qvel[0], "torso_height": height}
    return robot_task.Outcome(quantities, robot_task.fall_termination(fell=fell, config=config), metrics)


TASK = robot_task.TaskDef(
    observation_terms=OBSERVATION_TERMS,
    reward_terms=REWARD_TERMS,
    evaluate=evaluate,
    constants=constants,
    split_reset=robot_task.split_reset_keeping_key,
)


def make(config: WalkConfig) -> Env:
    """Builds walk from a validated config (use `jaxhum.envs.make('walk', ...)` to build by name)."""
    return robot_task.build(config, TASK, name="walk")
