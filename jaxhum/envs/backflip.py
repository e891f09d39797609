"""backflip: our humanoid robot (jh1) does a standing backflip: it crouches, takes off, turns a full
backward rotation about its pitch axis, lands on its feet and stands for 1 s (the seed chapter's
exercise).

Can jh1 flip? The figure (jh1: 34.9 kg, knee 139 N m, hip 88 N m, ankle 50 N m; thigh and shank
0.30 m each; moments of inertia about the lateral axis through the centre of mass computed from
jh1.xml with MuJoCo: 3.48 kg m^2 standing, 2.21 kg m^2 tucked at hips -1.65, knees 1.8 rad):
a flight of T = 0.6 s needs a take-off velocity v = g T / 2 = 2.94 m/s (the centre of mass rises
0.44 m) and, tucked, an average pitch rate 2 pi / T = 10.5 rad/s, an angular momentum of
2.21 x 10.5 = 23 kg m^2/s (6.6 rad/s at take-off while still extended). Pushing over the legs'
0.30 m stroke takes a = v^2 / (2 d) = 14.4 m/s^2, a ground force m (a + g) = 846 N (2.5 body
weights), 423 N per leg; with the force through the hip, the knee carries F L sin(flexion / 2):
72 N m at a 1.2 rad crouch, 91 N m at 1.6 rad, 52-65% of the 139 N m limit (with the force through
the hip, the 88 N m hips only hold the trunk; the backward lean that starts the rotation loads them
more). A 0.7 s flight asks 87-111 N m at the knee. jh1 can flip; the task
runs on it, as `jh1_flip` (`jaxhum/robots/assets/jh1_flip.toml`): jh1's MJCF and gains with
floor contacts for the knees, forearms, hands, pelvis, torso and head (only the floor, no self
collision), and action scales wide enough for a tuck (hip pitch, knee and shoulder pitch 1.5 rad,
ankle pitch 0.5). These are estimates from rigid-body kinematics, not a trained flip.

Reward design: phase-based terms, not a tracked reference. A reference motion would need a flip
made for jh1 (keyframes through crouch, take-off, tuck, untuck, landing) that is itself
dynamically feasible, or the tracking fights the physics in the flight phase where nothing can
correct the angular momentum; phase terms say what a flip is (height, rotation in the air,
an upright landing, standing after) and leave the how (crouch depth, arm swing, tuck timing)
to the policy. Reference-state initialization is then not needed: every episode starts standing.
Phases (`jaxhum.envs.terms.backflip.advance_flip`): ground -> flight (both feet off the floor for
`takeoff_steps` steps) -> landed (the first foot contact after the flight) -> standing.

Actions as every robot task: joint position targets `home + action_scale * a`, a in [-1, 1]^A.

Actor observation (`OBSERVATION_TERMS`): the episode clock t / episode_seconds (1), gyro (3),
gravity in the IMU frame (3), joint positions from home (A), joint velocities (A), previous
action (A). Critic observation (`state.critic_obs`): the actor observation, then pelvis height
(1), base linear velocity in the world (3) and in the base frame (3), the accumulated rotation
over 2 pi (1), foot contacts (2), body contact (1), landed (1), standing progress (1); with
`critic_randomization` also what the episode's randomization drew.

Accumulated rotation: `state.info['flip'].rotation` (rad, backward positive), the pelvis pitch
about its own lateral axis unwrapped every control step (`terms.backflip.accumulate_rotation`).

Reward (`DEFAULT_REWARD_WEIGHTS`; terms in `jaxhum.envs.terms.backflip` and `.rewards`):
height (pelvis above standing, until the rotation is done), rotation (backward pitch rate in
the air, up to one turn), landing (upright landing after >= `success_rotation_deg`), upright,
pose and still (after such a landing), late (no take-off by `takeoff_seconds`), body_contact,
action_rate, torques, termination.

Episode: `episode_seconds` (3 s); it terminates at a fall (pelvis below the fall height) and,
with `terminate_on_body_contact`, when a knee, hand, forearm, pelvis, torso or head touches the
floor. Success (per episode): rotation >= 330 degrees and a landing followed by 1 s on both feet
within `stand_tilt` of upright, with no other body part down. Evaluation metrics (per step, each a
telescoped running figure whose episode mean is the episode's figure): `tracking/flip_missed`
(1 - success), `tracking/flip_rotation_deg`, `tracking/flip_landing_tilt_deg` (180 if it never
landed), `tracking/flip_peak_height` (m), `tracking/flip_peak_torque` (peak |torque| / nominal limit,
over all joints). `BackflipEnv.tracking_bounds` makes an episode a success in
`python -m jaxhum.evaluate` when it does not terminate and `flip_missed` is 0; the runner's
evaluation shows them as `eval/tracking_error_flip_*`.

Randomization: off by default; `GPU_RANDOMIZATION` (the gpu preset's) is the robot tasks' recommended
physics (masses, torso mass and centre of mass, motor strength, kp/kd, joint damping, armature,
dry friction, floor and sole friction: the landing surface), noise on the observed terms, one
step of sensor lag and of action latency, and no pushes.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxhum import robots
from jaxhum.config import FrozenMapping
from jaxhum.envs import robot_task
from jaxhum.envs.base import Env
from jaxhum.envs.terms import backflip as terms
from jaxhum.envs.terms import observations, randomization, rewards
from jaxhum.envs.terms.reach import telescoped
from jaxhum.sim.sensors import geoms_touching, geoms_touching_np

REWARD_TERMS: Mapping[str, rewards.RewardTerm] = types.MappingProxyType(
    {
        "height": terms.height_gain,
        "rotation": terms.rotation_progress,
        "landing": terms.landing_bonus,
        "upright": terms.upright_after_landing,
        "pose": terms.pose_after_landing,
        "still": terms.still_after_landing,
        "late": terms.late_takeoff,
        "body_contact": terms.body_contact,
        "action_rate": rewards.action_rate_l2,
        "torques": rewards.torques_l2,
        "termination": rewards.termination,
    }
)

DEFAULT_REWARD_WEIGHTS: Mapping[str, float] = types.MappingProxyType(
    {
        "height": 5.0,
        "rotation": 0.1,
        "landing": 20.0,
        "upright": 1.0,
        "pose": 0.5,
        "still": -0.1,
        "late": -1.0,
        "body_contact": -1.0,
        "action_rate": -0.002,
        "torques": -1e-6,
        "termination": -20.0,
    }
)

OBSERVATION_TERMS = (
    terms.time_since_start,
    observations.imu_angular_velocity,
    observations.gravity_in_imu,
    observations.joint_pos_from_home,
    observations.joint_vel,
    observations.previous_action,
)

# The robot tasks' recommended randomization without pushes, its noise on the terms backflip observes.
GPU_RANDOMIZATION = dataclasses.replace(
    randomization.GPU_PRESET,
    push_interval=None,
    push_velocity=None,
    obs_noise=FrozenMapping({k: v for k, v in randomization.GPU_PRESET.obs_noise.items()
                             if k in {t.__name__ for t in OBSERVATION_TERMS}}),
)

TRACKING_BOUNDS: Mapping[str, float] = types.MappingProxyType({"flip_missed": 0.0})
CRITIC_EXTRA_SIZE = 1 + 3 + 3 + 1 + 2 + 1 + 1 + 1


@dataclasses.dataclass(frozen=True)
class BackflipConfig:
    """Settings of backflip; every field can be overridden through `make`.

    Attributes:
      robot: robot name (`jaxhum.robots.ROBOTS` or `SPEC_FILES`) or a .toml spec path; default
        `jh1_flip` (jh1 with floor contacts beyond the soles and a tuck's action scales).
      episode_seconds: episode length (s) before truncation; the flip and 1 s of standing fit in it.
      fall_height: pelvis height (m) below which the robot has fallen; 0: 0.5 / 1.3 of its standing height.
      fall_tilt: must be 0: a flip turns the pelvis upside down (falls are judged by height and contact).
      terminate_on_fall: end the episode at a fall.
      terminate_on_body_contact: end it when a body part other than the soles touches the floor.
      reset_noise_scale: half-width of the uniform noise (rad, rad/s) on joint angles and velocities at reset.
      observation_history: the actor sees its last this many observation frames, newest first.
      takeoff_seconds: after this long (s) without a take-off, the `late` term costs every step.
      takeoff_steps: control steps with both feet off the floor that make a take-off.
      stand_seconds: standing after the landing (s) that, with the rotation, makes a success.
      stand_tilt: the most pelvis tilt (rad) that counts as standing.
      success_rotation_deg: the least rotation (degrees) that counts as a full flip.
      tilt_sigma: width (rad^2) of the landing and upright kernels exp(-tilt^2 / sigma).
      pose_sigma: width (rad^2) of the pose kernel exp(-|q - q_home|^2 / sigma).
      reward_weights: term name -> weight; an override is merged into the defaults, zero weights skipped.
      randomization: per-episode domain randomization, noise, lag, latency (`RandomizationConfig`;
        off by default; `GPU_RANDOMIZATION` holds the gpu preset's ranges).
      critic_randomization: the critic also reads what the episode's randomization drew.
    """

    robot: str = "jh1_flip"
    episode_seconds: float = 3.0
    fall_height: float = 0.0
    fall_tilt: float = 0.0
    terminate_on_fall: bool = True
    terminate_on_body_contact: bool = True
    reset_noise_scale: float = 0.02
    observation_history: int = 1
    takeoff_seconds: float = 1.0
    takeoff_steps: int = 3
    stand_seconds: float = 1.0
    stand_tilt: float = 0.35
    success_rotation_deg: float = 330.0
    tilt_sigma: float = 0.25
    pose_sigma: float = 1.0
    reward_weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: DEFAULT_REWARD_WEIGHTS)
    randomization: randomization.RandomizationConfig = dataclasses.field(
        default_factory=randomization.RandomizationConfig)
    critic_randomization: bool = False

    def validate(self) -> None:
        """Raises ValueError naming the first invalid field."""
        robots.check_robot(self.robot)
        if self.fall_tilt != 0.0:
            raise ValueError(f"fall_tilt: must be 0 (a flip turns the pelvis upside down), got {self.fall_tilt}")
        for name in ("episode_seconds", "stand_seconds", "stand_tilt", "tilt_sigma", "pose_sigma",
                     "takeoff_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        for name in ("fall_height", "reset_noise_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.success_rotation_deg <= 720.0:
            raise ValueError(f"success_rotation_deg: must be in (0, 720], got {self.success_rotation_deg}")
        t = self.takeoff_steps
        if isinstance(t, bool) or not isinstance(t, int) or t < 1:
            raise ValueError(f"takeoff_steps: must be an integer >= 1, got {t!r}")
        if not self.episode_seconds > self.stand_seconds:
            raise ValueError(f"episode_seconds: must be > stand_seconds = {self.stand_seconds:g} s, "
                             f"got {self.episode_seconds}")
        for name in ("terminate_on_fall", "terminate_on_body_contact", "critic_randomization"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: must be true or false, got {getattr(self, name)!r}")
        robot_task.check_skeleton_fields(self)
        rewards.check_weights(REWARD_TERMS, self.reward_weights)
        if not isinstance(self.randomization, randomization.RandomizationConfig):
            raise ValueError(f"randomization: expected a RandomizationConfig, got {type(self.randomization).__name__}")
        self.randomization.validate()


@dataclasses.dataclass(frozen=True, eq=False)
class BackflipEnv(Env):
    """`Env` with the bounds `python -m jaxhum.evaluate` applies to each episode's means (`TRACKING_BOUNDS`)."""

    tracking_bounds: Mapping[str, float] = dataclasses.field(default_factory=lambda: TRACKING_BOUNDS)


# ----------------------------------------------------------------------------- the task


@dataclasses.dataclass(frozen=True, eq=False)
class BackflipConstants:
    """The task's constants on one robot, resolved once per built env (`Setup.constants`)."""

    rules: terms.Rules
    body_geom_ids: np.ndarray  # (k,) int, colliding geoms other than the soles and the floor (k may be 0)
    actuator_ids: jax.Array  # (A,) int
    torque_limit: jax.Array  # (A,) float32, nominal |torque| limits (N m)


def body_geoms(mj_model: Any, idx: robots.RobotIndex) -> np.ndarray:
    """(k,) int32 the geoms that collide (contype or conaffinity set) other than the floor and the soles."""
    skip = {int(idx.floor_geom_id), *np.ravel(idx.foot_geom_ids).tolist()}
    return np.asarray([g for g in range(mj_model.ngeom) if (mj_model.geom_contype[g] or mj_model.geom_conaffinity[g])
                       and g not in skip], np.int32)


def constants(*, config: BackflipConfig, setup: robot_task.Setup) -> BackflipConstants:
    """The flip's rules in control steps, the body geoms that must not touch, the joints' torque limits."""
    rules = terms.Rules(
        takeoff_steps=int(config.takeoff_steps),
        stand_steps=max(1, int(round(config.stand_seconds / setup.dt))),
        stand_tilt=float(config.stand_tilt),
        success_rotation=float(np.radians(config.success_rotation_deg)),
    )
    return BackflipConstants(rules=rules, body_geom_ids=body_geoms(setup.sim.mj_model, setup.idx),
                             actuator_ids=jnp.asarray(setup.idx.actuator_ids),
                             torque_limit=jnp.asarray(setup.idx.torque_limit, jnp.float32))


def body_touching(setup: robot_task.Setup, data: Any) -> jax.Array:
    """() bool: a body part other than the soles touches the floor (False on a robot with none colliding)."""
    ids = setup.constants.body_geom_ids
    if ids.size == 0:
        return jnp.zeros((), bool)
    return geoms_touching(data, ids, setup.idx.floor_geom_id)


def _pelvis(setup: robot_task.Setup, data: Any) -> tuple[jax.Array, jax.Array]:
    root = setup.idx.root_body_id
    return data.xmat[root].reshape(3, 3), data.xpos[root, 2]


def init_info(*, setup: robot_task.Setup, data: Any) -> dict[str, Any]:
    """A new episode's flip record, from its first pelvis pose."""
    rot, height = _pelvis(setup, data)
    return {"flip": terms.new_flip(terms.pitch_angle(rot), height)}


def evaluate(*, config: BackflipConfig, setup: robot_task.Setup, data: Any, action: jax.Array,
             last_action: jax.Array, info: dict[str, Any], fell: jax.Array) -> robot_task.Outcome:
    """The state `data` reached by `action` (A,): the flip moved on (phases, rotation, peaks), the
    reward terms' quantities, termination (a fall, or a body part on the floor), the flip's figures."""
    c = setup.constants
    before: terms.FlipState = info["flip"]
    rot, height = _pelvis(setup, data)
    tilt = terms.tilt_angle(rot)
    foot_contact = robots.foot_contacts(setup.idx, data)
    touching = body_touching(setup, data)
    torque = data.actuator_force[c.actuator_ids]
    flip = terms.advance_flip(before, c.rules, phi=terms.pitch_angle(rot), tilt=tilt, height=height,
                              foot_contact=foot_contact, body_contact=touching,
                              torque_fraction=jnp.abs(torque) / c.torque_limit)
    ended = (fell & config.terminate_on_fall) | (touching & config.terminate_on_body_contact)
    terminated = ended.astype(jnp.float32)
    rotated = flip.rotation >= c.rules.success_rotation
    quantities = {
        "height": height,
        "standing_height": setup.idx.standing_height,
        "flip_done": flip.landed | rotated,
        "rotation": flip.rotation,
        "rotation_before": before.rotation,
        "airborne": ~jnp.any(foot_contact > 0),
        "dt": setup.dt,
        "touchdown": flip.landed & ~before.landed,
        "tilt": tilt,
        "success_rotation": c.rules.success_rotation,
        "tilt_sigma": config.tilt_sigma,
        "after_flip": flip.landed & rotated,
        "joint_pos_error": data.qpos[setup.qpos_adr] - setup.home_joint_pos,
        "pose_sigma": config.pose_sigma,
        "root_linvel": data.qvel[0:3],
        "time": data.time,
        "takeoff_seconds": config.takeoff_seconds,
        "flown": flip.flown,
        "touching": touching,
        "action": action,
        "last_action": last_action,
        "torque": torque,
        "fell": terminated > 0.0,
    }
    now, was = terms.figures(flip), terms.figures(before)
    metrics = {f"tracking/{n}": telescoped(now[n], was[n], flip.steps) for n in now}
    metrics["body_contact"] = touching.astype(jnp.float32)
    return robot_task.Outcome(quantities, terminated, metrics, {**info, "flip": flip})


def observation_inputs(*, config: BackflipConfig) -> dict[str, Any]:
    """The episode length the clock term divides by."""
    return {"episode_seconds": float(config.episode_seconds)}


def host_observation_inputs(*, config: BackflipConfig) -> dict[str, Any]:
    """`observation_inputs` on native data (the same: the clock reads `MjData.time`)."""
    return {"episode_seconds": float(config.episode_seconds)}


def critic_extras(*, config: BackflipConfig, setup: robot_task.Setup, data: Any, info: dict[str, Any],
                  drawn: jax.Array) -> jax.Array:
    """(CRITIC_EXTRA_SIZE (+ P),) privileged state: pelvis height, base velocity (world, base frame),
    rotation / 2 pi, foot contacts, body contact, landed, standing progress; then `drawn` if asked."""
    idx, flip = setup.idx, info["flip"]
    extras = jnp.concatenate([
        data.xpos[idx.root_body_id, 2:3],
        data.qvel[0:3],
        data.sensordata[idx.linvel],
        (flip.rotation / terms.TWO_PI)[None],
        robots.foot_contacts(idx, data),
        body_touching(setup, data).astype(jnp.float32)[None],
        flip.landed.astype(jnp.float32)[None],
        jnp.minimum(flip.stand / setup.constants.rules.stand_steps, 1.0)[None],
    ]).astype(jnp.float32)
    chex.assert_shape(extras, (CRITIC_EXTRA_SIZE,))
    return jnp.concatenate([extras, drawn]) if config.critic_randomization else extras


def host_terminated(*, config: BackflipConfig, setup: robot_task.Setup, data: Any) -> bool:
    """The termination on native `mujoco.MjData`: the fall test, or a body part on the floor."""
    ids = setup.constants.body_geom_ids
    touching = bool(ids.size) and geoms_touching_np(data, ids, setup.idx.floor_geom_id)
    return robot_task.host_fall(config=config, setup=setup, data=data) or bool(
        config.terminate_on_body_contact and touching)


TASK = robot_task.TaskDef(
    observation_terms=OBSERVATION_TERMS,
    reward_terms=REWARD_TERMS,
    evaluate=evaluate,
    init_info=init_info,
    observation_inputs=observation_inputs,
    host_observation_inputs=host_observation_inputs,
    critic_extras=critic_extras,
    constants=constants,
    host_terminated=host_terminated,
    env_class=BackflipEnv,
)


def make(config: BackflipConfig, name: str = "backflip") -> BackflipEnv:
    """Builds backflip from a validated config (`jaxhum.envs.make('backflip', ...)` builds by name)."""
    if not isinstance(config, BackflipConfig):
        raise ValueError(f"config: expected a BackflipConfig, got {type(config).__name__}")
    return robot_task.build(config, TASK, name=name)
