"""reach: our humanoid robot (jh1) stands and brings a hand to a target point (or both hands to two).

Every episode shows a target per driven hand (`hand`: 'left', 'right' or 'both', left first),
drawn in the pelvis frame from that hand's workspace (`workspace`: a box, `left_box_low` ..
`right_box_high`, or a sphere shell about the shoulder, `left_shell_center`, `shell_radius`,
`left_shell_azimuth`, `shell_elevation`, ...), redrawn every `resample_seconds` from the episode's
own PRNG key in `state.info` (`jaxhum.envs.terms.reach.next_target`). A target is fixed in the
pelvis frame (it moves with the pelvis, as a target given relative to the body does), so the
robot needs no estimate of its own pose in the world to see it. The hand point is a body's
frame plus an offset (`hand_bodies`, `hand_offset`: jh1's forearms and the centre of its hand
sphere), so the robot's MJCF needs no site. `Env.fresh_starts` is set: every episode a new draw.

Actions as every robot task: joint position targets `home + action_scale * a`, a in [-1, 1]^A;
the legs keep the balance, the waist and arms reach.

Actor observation (`OBSERVATION_TERMS`; `env.observation_layout` names the slices), from what a
robot has: gyro (3), gravity in the IMU frame (3), the target(s) in the pelvis frame (3K,
`reach_target`), target minus hand point in the pelvis frame (3K, `hand_to_target`: forward
kinematics of the arm from the joint encoders, pelvis -> waist -> arm, which a robot computes the
same way), joint positions from home (A), joint velocities (A), previous action (A).

Critic observation (`state.critic_obs`): the actor observation, then the base linear velocity in
the base frame (3) and the world (3), pelvis height (1), foot contacts (2), each hand's hold
progress (K, consecutive steps within the tolerance over `hold_seconds`, at most 1) and the
target's age over `reach_seconds` (1, at most 1); with `critic_randomization` also what the
episode's randomization drew.

Reward (`DEFAULT_REWARD_WEIGHTS`, each term in `jaxhum.envs.terms.reach` or `.rewards`): reach
(exp(-d^2 / `distance_sigma`), mean over hands), reach_fine (the same with `fine_distance_sigma`),
hold (share of hands within `reach_tolerance`), leg_pose (squared deviation of the leg joints
from home), orientation (squared tilt), base_velocity (planar pelvis velocity squared),
ang_vel_xy, lin_vel_z, action_rate, torques, termination.

Success per target: the hand within `reach_tolerance` (5 cm) at most `reach_seconds` (2 s) after
the target appeared, and held there for `hold_seconds` (0.5 s) of consecutive control steps
(`jaxhum.envs.terms.reach.advance_timers`). A target is judged at the end of its life (redrawn,
or the episode ends) once it has lived `reach_seconds + hold_seconds`, or at a fall (a miss
unless already held). Evaluation metrics (per step; every evaluator of the house reports their
per-episode means): `tracking/reach_missed` (share of the episode's judged targets not reached
and held: the per-target success rate is 1 minus it), `tracking/reach_final_distance` (m, hand
distance on a judged target's last step), `tracking/reach_time` (s, time to first come within
the tolerance, the window when never in time), each written as a telescoped running figure
(`terms.reach.telescoped`) whose episode mean is the episode's figure; and `tracking/reach_distance`
(m, the hand distance of each step: its mean over the episode). `ReachEnv.tracking_bounds`
makes an episode a success in `python -m jaxhum.evaluate` when it does not fall and misses no
target. The runner's evaluation shows them as `eval/tracking_error_reach_*`.

Export and sim-to-sim: `env.deploy.host_observation(model, data, command=targets (3K,))` builds
the observation on native `MjData`; `ReachEnv.command_schedule(info)` is the episode's target
sequence (length + 1, 3K) replayed from the reset info, so `python -m jaxhum.sim2sim` drives
native episodes with MJX's targets; natively it measures `tracking/reach_distance` (stateless);
the judged figures need the success timers and are MJX-only.
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
from jaxhum.envs.terms import observations, randomization, rewards
from jaxhum.envs.terms import reach as terms

HANDS = ("left", "right", "both")

REWARD_TERMS: Mapping[str, rewards.RewardTerm] = types.MappingProxyType(
    {
        "reach": terms.distance_kernel,
        "reach_fine": terms.fine_distance_kernel,
        "hold": terms.hold_bonus,
        "leg_pose": rewards.pose_deviation,
        "orientation": rewards.flat_orientation,
        "base_velocity": terms.base_velocity_xy,
        "ang_vel_xy": rewards.ang_vel_xy,
        "lin_vel_z": rewards.lin_vel_z,
        "action_rate": rewards.action_rate_l2,
        "torques": rewards.torques_l2,
        "termination": rewards.termination,
    }
)

DEFAULT_REWARD_WEIGHTS: Mapping[str, float] = types.MappingProxyType(
    {
        "reach": 1.0,
        "reach_fine": 1.0,
        "hold": 1.0,
        "leg_pose": -0.5,
        "orientation": -2.0,
        "base_velocity": -0.5,
        "ang_vel_xy": -0.15,
        "lin_vel_z": -0.5,
        "action_rate": -0.01,
        "torques": -1e-5,
        "termination": -100.0,
    }
)

# Per-joint weights of leg_pose: the legs hold their home pose, the waist and arms are free to reach.
LEG_POSE_WEIGHTS: tuple[tuple[str, float], ...] = (
    (r".*_(hip_(pitch|roll|yaw)|knee|ankle_(pitch|roll))", 1.0),
)

OBSERVATION_TERMS = (
    observations.imu_angular_velocity,
    observations.gravity_in_imu,
    terms.reach_target,
    terms.hand_to_target,
    observations.joint_pos_from_home,
    observations.joint_vel,
    observations.previous_action,
)

# `randomization.GPU_PRESET` with its noise on the terms reach observes (it has no velocimeter term).
GPU_RANDOMIZATION = dataclasses.replace(
    randomization.GPU_PRESET,
    obs_noise=FrozenMapping({k: v for k, v in randomization.GPU_PRESET.obs_noise.items()
                             if k in {t.__name__ for t in OBSERVATION_TERMS}}),
)

# `python -m jaxhum.evaluate`: an episode succeeds when it does not fall and misses no judged target.
TRACKING_BOUNDS: Mapping[str, float] = types.MappingProxyType({"reach_missed": 0.0})
CRITIC_BASE_SIZE = 3 + 3 + 1 + 2 + 1  # + K hold progresses


@dataclasses.dataclass(frozen=True)
class ReachConfig:
    """Settings of reach; every field can be overridden through `make`.

    Attributes:
      robot: robot name (`jaxhum.robots.ROBOTS` or `SPEC_FILES`), or the path of a .toml robot spec file.
      episode_seconds: episode length (s) before truncation.
      fall_height: pelvis height (m) below which the robot has fallen; 0: 0.5 / 1.3 of its standing height.
      fall_tilt: also fallen past this pelvis tilt (rad) from upright; 0 judges falls by height alone.
      terminate_on_fall: end the episode at a fall.
      reset_noise_scale: half-width of the uniform noise (rad, rad/s) on joint angles and velocities at reset.
      observation_history: the actor sees its last this many observation frames, newest first.
      hand: the hand(s) driven: 'left', 'right', or 'both' (two targets, left first).
      hand_bodies: (left, right) the body each hand point is attached to.
      hand_offset: the hand point in that body's frame (m), both hands (jh1: its hand sphere's centre).
      workspace: where targets are drawn, in the pelvis frame: 'box' or 'shell'.
      left_box_low, left_box_high, right_box_low, right_box_high: (x, y, z) corners of each hand's box (m).
      left_shell_center, right_shell_center: (x, y, z) centre of each hand's shell (m; jh1's shoulders).
      shell_radius: (low, high) distance from the centre (m), both hands.
      left_shell_azimuth, right_shell_azimuth: (low, high) rad about the pelvis z axis from +x towards +y.
      shell_elevation: (low, high) rad from the horizontal (up positive), both hands.
      resample_seconds: new targets every this many seconds; 0 holds the first for the whole
        episode. At least reach_seconds + hold_seconds, so that every redrawn target is judged.
      reach_tolerance: a hand this close to its target (m) has reached it.
      reach_seconds: the hand must come within the tolerance at most this long (s) after the
        target appeared ...
      hold_seconds: ... and stay within it this long (s) for the target to count as a success.
      distance_sigma, fine_distance_sigma: widths (m^2) of the reach and reach_fine kernels.
      reward_weights: term name -> weight; an override is merged into the defaults, zero weights skipped.
      randomization: per-episode domain randomization, noise, lag, latency, pushes
        (`jaxhum.envs.terms.randomization.RandomizationConfig`; all off by default;
        `GPU_RANDOMIZATION` holds the recommended ranges).
      critic_randomization: the critic also reads what the episode's randomization drew.
    """

    robot: str = "jh1"
    episode_seconds: float = 12.0
    fall_height: float = 0.0
    fall_tilt: float = 0.0
    terminate_on_fall: bool = True
    reset_noise_scale: float = 0.05
    observation_history: int = 1
    hand: str = "right"
    hand_bodies: tuple[str, str] = ("left_forearm", "right_forearm")
    hand_offset: tuple[float, float, float] = (0.0, 0.0, -0.2)
    workspace: str = "shell"
    left_box_low: tuple[float, float, float] = (0.18, 0.10, 0.12)
    left_box_high: tuple[float, float, float] = (0.30, 0.28, 0.26)
    right_box_low: tuple[float, float, float] = (0.18, -0.28, 0.12)
    right_box_high: tuple[float, float, float] = (0.30, -0.10, 0.26)
    left_shell_center: tuple[float, float, float] = (0.0, 0.19, 0.35)
    right_shell_center: tuple[float, float, float] = (0.0, -0.19, 0.35)
    shell_radius: tuple[float, float] = (0.22, 0.36)
    left_shell_azimuth: tuple[float, float] = (-0.3, 1.0)
    right_shell_azimuth: tuple[float, float] = (-1.0, 0.3)
    shell_elevation: tuple[float, float] = (-1.2, 0.4)
    resample_seconds: float = 3.0
    reach_tolerance: float = 0.05
    reach_seconds: float = 2.0
    hold_seconds: float = 0.5
    distance_sigma: float = 0.05
    fine_distance_sigma: float = 0.002
    reward_weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: DEFAULT_REWARD_WEIGHTS)
    randomization: randomization.RandomizationConfig = dataclasses.field(
        default_factory=randomization.RandomizationConfig)
    critic_randomization: bool = False

    def validate(self) -> None:
        """Raises ValueError naming the first invalid field."""
        robots.check_robot(self.robot)
        if self.hand not in HANDS:
            raise ValueError(f"hand: must be one of {', '.join(HANDS)}, got {self.hand!r}")
        if self.workspace not in terms.WORKSPACES:
            raise ValueError(f"workspace: must be one of {', '.join(terms.WORKSPACES)}, got {self.workspace!r}")
        if len(tuple(self.hand_bodies)) != 2 or not all(isinstance(b, str) and b for b in self.hand_bodies):
            raise ValueError(f"hand_bodies: must be two body names (left, right), got {self.hand_bodies!r}")
        for side in ("left", "right"):
            low, high = getattr(self, f"{side}_box_low"), getattr(self, f"{side}_box_high")
            if not all(lo <= hi for lo, hi in zip(low, high)):
                raise ValueError(f"{side}_box_high: must be >= {side}_box_low on every axis, got {high} "
                                 f"against {low}")
        for name in ("shell_radius", "left_shell_azimuth", "right_shell_azimuth", "shell_elevation"):
            value = tuple(getattr(self, name))
            if len(value) != 2 or not value[0] <= value[1]:
                raise ValueError(f"{name}: must be (low, high) with low <= high, got {value}")
        if not self.shell_radius[0] >= 0:
            raise ValueError(f"shell_radius: must be >= 0, got {tuple(self.shell_radius)}")
        if not (-np.pi / 2 <= self.shell_elevation[0] and self.shell_elevation[1] <= np.pi / 2):
            raise ValueError(f"shell_elevation: must lie in [-pi/2, pi/2] rad, got {tuple(self.shell_elevation)}")
        for name in ("episode_seconds", "reach_tolerance", "reach_seconds", "hold_seconds", "distance_sigma",
                     "fine_distance_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        for name in ("fall_height", "reset_noise_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        judged = self.reach_seconds + self.hold_seconds
        if not (self.resample_seconds == 0 or self.resample_seconds >= judged):
            raise ValueError(f"resample_seconds: must be 0 (hold the first target) or >= reach_seconds + "
                             f"hold_seconds = {judged:g} s, got {self.resample_seconds}")
        if not self.episode_seconds >= judged:
            raise ValueError(f"episode_seconds: must be >= reach_seconds + hold_seconds = {judged:g} s, "
                             f"got {self.episode_seconds}")
        robot_task.check_skeleton_fields(self)
        rewards.check_weights(REWARD_TERMS, self.reward_weights)
        if not isinstance(self.randomization, randomization.RandomizationConfig):
            raise ValueError(f"randomization: expected a RandomizationConfig, got {type(self.randomization).__name__}")
        self.randomization.validate()
        if not isinstance(self.critic_randomization, bool):
            raise ValueError(f"critic_randomization: must be true or false, got {self.critic_randomization!r}")

    @property
    def sides(self) -> tuple[str, ...]:
        """The driven hands, left first: ('left',), ('right',) or ('left', 'right')."""
        return ("left", "right") if self.hand == "both" else (self.hand,)

    @property
    def workspace_arrays(self) -> terms.Workspace:
        """`terms.Workspace` of the driven hands (K rows), from the config's ranges."""
        def rows(fmt: str) -> np.ndarray:
            return np.asarray([getattr(self, fmt.format(s)) for s in self.sides], np.float32)

        k = len(self.sides)
        return terms.Workspace(
            low=rows("{}_box_low"), high=rows("{}_box_high"), center=rows("{}_shell_center"),
            radius=np.tile(np.asarray(self.shell_radius, np.float32), (k, 1)), azimuth=rows("{}_shell_azimuth"),
            elevation=np.tile(np.asarray(self.shell_elevation, np.float32), (k, 1)),
        )


@dataclasses.dataclass(frozen=True, eq=False)
class ReachEnv(Env):
    """`Env` with the bounds `python -m jaxhum.evaluate` applies to each episode's means (`TRACKING_BOUNDS`:
    no missed target), and `command_schedule(info) -> (episode_length + 1, 3K)`, the targets an
    episode started with `info` shows after each step (`target_schedule`; sim2sim drives native
    episodes with it)."""

    tracking_bounds: Mapping[str, float] = dataclasses.field(default_factory=lambda: TRACKING_BOUNDS)
    command_schedule: Any = None


def leg_pose_weights(robot: robots.Robot) -> np.ndarray:
    """(A,) weight of each actuated joint in leg_pose (`LEG_POSE_WEIGHTS`; 0.0 where none matches)."""
    return np.asarray([next((w for expr, w in LEG_POSE_WEIGHTS if re.fullmatch(expr, n)), 0.0)
                       for n in robot.joint_names], np.float32)


# ----------------------------------------------------------------------------- the task


class ReachConstants(NamedTuple):
    """The task's constants on one robot, resolved once per built env (`Setup.constants`)."""

    workspace: terms.Workspace  # (K, ...) the driven hands' target ranges
    hand_body_ids: np.ndarray  # (K,) int, the bodies carrying the hand points
    hand_offsets: np.ndarray  # (K, 3) float32, the hand points in those bodies' frames
    pose_weights: jax.Array  # (A,) float32, `leg_pose_weights(robot)`
    actuator_ids: jax.Array  # (A,) int
    resample_every: int  # control steps between target draws (0: held)
    reach_steps: int  # control steps after a target appears within which the hand must arrive
    hold_steps: int  # consecutive control steps it must then stay
    judge_age: int  # a target is judged at the end of its life once it has lived this many steps


def _steps(seconds: float, dt: float) -> int:
    return int(round(seconds / dt))


def constants(*, config: ReachConfig, setup: robot_task.Setup) -> ReachConstants:
    """Hand bodies, workspace, weights, periods. ValueError naming `robot` if the robot has neither
    hand body (a robot without arms, such as jh_mini), naming `hand_bodies` if it lacks a driven one."""
    model = setup.sim.mj_model
    names = dict(zip(("left", "right"), config.hand_bodies))
    if all(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) < 0 for b in names.values()):
        raise ValueError(f"robot: reach needs a robot with hands, and {config.robot!r} has neither hand body "
                         f"{tuple(names.values())} (no arms?); pick a robot with arms, or name its hand bodies "
                         f"in hand_bodies")
    ids = []
    for side in config.sides:
        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, names[side])
        if body < 0:
            raise ValueError(f"hand_bodies: robot {config.robot!r} has no body {names[side]!r}")
        ids.append(body)
    k = len(ids)
    reach_steps, hold_steps = _steps(config.reach_seconds, setup.dt), max(1, _steps(config.hold_seconds, setup.dt))
    return ReachConstants(
        workspace=config.workspace_arrays,
        hand_body_ids=np.asarray(ids, np.int32),
        hand_offsets=np.tile(np.asarray(config.hand_offset, np.float32), (k, 1)),
        pose_weights=jnp.asarray(leg_pose_weights(setup.robot)),
        actuator_ids=jnp.asarray(setup.idx.actuator_ids),
        resample_every=_steps(config.resample_seconds, setup.dt) if config.resample_seconds > 0 else 0,
        reach_steps=reach_steps,
        hold_steps=hold_steps,
        judge_age=reach_steps + hold_steps,
    )


def _hand_inputs(setup: robot_task.Setup) -> dict[str, Any]:
    c = setup.constants
    return {"hand_body_ids": c.hand_body_ids, "hand_offsets": c.hand_offsets, "root_body_id": setup.idx.root_body_id}


def init_info(*, config: ReachConfig, setup: robot_task.Setup, key: jax.Array) -> dict[str, Any]:
    """A new episode's targets (drawn from `key`), its key and countdown, the success timers and tally."""
    key_target, key_info = jax.random.split(key)
    if jax.dtypes.issubdtype(key_info.dtype, jax.dtypes.prng_key):
        key_info = jax.random.key_data(key_info)  # raw key data: autoreset selects infos with jnp.where
    c = setup.constants
    return {
        "target": terms.sample_targets(key_target, c.workspace, config.workspace),
        "key": key_info,
        "resample_in": jnp.asarray(c.resample_every, jnp.int32),
        "steps": jnp.zeros((), jnp.int32),
        "timers": terms.new_timers(len(config.sides)),
        "tally": terms.new_tally(),
    }


def _target_part(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in ("target", "key", "resample_in")}


def next_info(*, config: ReachConfig, setup: robot_task.Setup, info: dict[str, Any]) -> dict[str, Any]:
    """`info` a step later: the target countdown ticks; new targets are drawn when due and their timers restart."""
    c = setup.constants
    moved = terms.next_target(_target_part(info), c.workspace, config.workspace, c.resample_every)
    resampled = moved.pop("resampled")
    return {**info, **moved, "timers": terms.reset_timers(info["timers"], resampled)}


def target_schedule(info: dict[str, Any], *, config: ReachConfig, constants: ReachConstants,
                    length: int) -> jax.Array:
    """(length + 1, 3K) the targets an episode started with `info` (a reset state's) shows: entry
    t in the observation after step t (0: the reset's), the one step t + 1 is taken under.
    Physics-free: only `terms.next_target` moves the targets."""

    def tick(carry: dict[str, Any], _: None) -> tuple[dict[str, Any], jax.Array]:
        carry = terms.next_target(carry, constants.workspace, config.workspace, constants.resample_every)
        carry.pop("resampled")
        return carry, carry["target"].reshape(-1)

    _, later = jax.lax.scan(tick, _target_part(info), None, length=length)
    return jnp.concatenate([info["target"].reshape(1, -1), later])


def observation_inputs(*, setup: robot_task.Setup, info: dict[str, Any]) -> dict[str, Any]:
    """The targets (K, 3) and the hand points' bodies, offsets and root."""
    return {"target": info["target"], **_hand_inputs(setup)}


def host_observation_inputs(*, config: ReachConfig, setup: robot_task.Setup, command: Any = None) -> dict[str, Any]:
    """`observation_inputs` on native data: `command` (3K,), the targets in the pelvis frame; by
    default the middle of each hand's workspace (`terms.workspace_centre`)."""
    c = setup.constants
    if command is None:
        target = terms.workspace_centre(c.workspace, config.workspace)
    else:
        target = np.asarray(command, np.float32).reshape(-1, 3)
    return {"target": target, **_hand_inputs(setup)}


class _Judged(NamedTuple):
    timers: terms.ReachTimers
    tally: terms.Tally
    distance: jax.Array  # (K,)
    metrics: dict[str, jax.Array]


def judge(*, config: ReachConfig, setup: robot_task.Setup, info: dict[str, Any], distance: jax.Array,
          terminated: jax.Array) -> _Judged:
    """The success timers and tally after a step at hand distances (K,), and the step's metrics:
    the telescoped figures (`terms.figures`) and `tracking/reach_distance` (mean over hands)."""
    c = setup.constants
    timers = terms.advance_timers(info["timers"], within=distance < config.reach_tolerance,
                                  reach_steps=c.reach_steps, hold_steps=c.hold_steps)
    steps = info["steps"] + 1
    last_step = (steps >= setup.episode_length) | (terminated > 0.0)
    if c.resample_every > 0:
        last_step = last_step | (info["resample_in"] <= 1)  # `terms.next_target` redraws after this step
    judged = last_step & ((timers.age >= c.judge_age) | (terminated > 0.0))
    tally = terms.add_to_tally(info["tally"], timers, distance=distance, judge=judged, reach_steps=c.reach_steps,
                               dt=setup.dt)
    before, now = terms.figures(info["tally"]), terms.figures(tally)
    metrics = {f"tracking/{n}": terms.telescoped(now[n], before[n], steps) for n in now}
    metrics["tracking/reach_distance"] = jnp.mean(distance)
    return _Judged(timers, tally, distance, metrics)


def evaluate(*, config: ReachConfig, setup: robot_task.Setup, data: Any, action: jax.Array,
             last_action: jax.Array, info: dict[str, Any], fell: jax.Array) -> robot_task.Outcome:
    """The state `data` reached by `action` (A,): the reward terms' quantities, termination at a
    fall, the success timers and tally moved on, the reach metrics."""
    idx = setup.idx
    error = terms.hand_errors(data=data, target=info["target"], **_hand_inputs(setup))
    distance = jnp.linalg.norm(error, axis=-1)
    terminated = robot_task.fall_termination(fell=fell, config=config)
    judged = judge(config=config, setup=setup, info=info, distance=distance, terminated=terminated)
    quantities = {
        "hand_distance": distance,
        "distance_sigma": config.distance_sigma,
        "fine_distance_sigma": config.fine_distance_sigma,
        "reach_tolerance": config.reach_tolerance,
        "joint_pos_error": data.qpos[setup.qpos_adr] - setup.home_joint_pos,
        "pose_weights": setup.constants.pose_weights,
        "gravity": observations.gravity_in_imu(data=data, imu_site_id=idx.imu_site_id),
        "local_linvel": data.sensordata[idx.linvel],
        "angvel": data.sensordata[idx.gyro],
        "action": action,
        "last_action": last_action,
        "torque": data.actuator_force[setup.constants.actuator_ids],
        "fell": fell,
    }
    info = {**info, "timers": judged.timers, "tally": judged.tally, "steps": info["steps"] + 1}
    return robot_task.Outcome(quantities, terminated, judged.metrics, info)


def critic_extras(*, config: ReachConfig, setup: robot_task.Setup, data: Any, info: dict[str, Any],
                  drawn: jax.Array) -> jax.Array:
    """(CRITIC_BASE_SIZE + K (+ P),) privileged state: base velocities, pelvis height, foot
    contacts, hold progress per hand, the target's age; with `critic_randomization` then `drawn`."""
    idx, c, timers = setup.idx, setup.constants, info["timers"]
    extras = jnp.concatenate([
        data.sensordata[idx.linvel],
        data.qvel[0:3],
        data.xpos[idx.root_body_id, 2:3],
        robots.foot_contacts(idx, data),
        jnp.minimum(timers.run / c.hold_steps, 1.0),
        jnp.minimum(timers.age / max(c.reach_steps, 1), 1.0)[None],
    ]).astype(jnp.float32)
    chex.assert_shape(extras, (CRITIC_BASE_SIZE + len(config.sides),))
    return jnp.concatenate([extras, drawn]) if config.critic_randomization else extras


def host_tracking(*, setup: robot_task.Setup, data: mujoco.MjData, command: Any) -> dict[str, float]:
    """`tracking/reach_distance` of native `data` for the targets `command` (3K,): the stateless
    metric; the judged figures (missed, final distance, time) need the success timers (MJX only)."""
    target = np.asarray(command, np.float64).reshape(-1, 3)
    error = terms.hand_errors(data=data, target=target, **_hand_inputs(setup))
    return {"tracking/reach_distance": float(np.mean(np.linalg.norm(error, axis=-1)))}


def env_fields(*, config: ReachConfig, setup: robot_task.Setup) -> dict[str, Any]:
    """`ReachEnv.command_schedule`: `target_schedule` with this env's config, constants and episode length."""
    return {"command_schedule": functools.partial(target_schedule, config=config, constants=setup.constants,
                                                  length=setup.episode_length)}


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
    host_tracking=host_tracking,
    env_class=ReachEnv,
    env_fields=env_fields,
    fresh_starts=True,
)


def make(config: ReachConfig, name: str = "reach") -> ReachEnv:
    """Builds reach from a validated config (`jaxhum.envs.make('reach', ...)` builds by name)."""
    if not isinstance(config, ReachConfig):
        raise ValueError(f"config: expected a ReachConfig, got {type(config).__name__}")
    return robot_task.build(config, TASK, name=name)
