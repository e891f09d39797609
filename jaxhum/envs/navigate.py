"""navigate: a high-level policy drives a frozen joystick policy to a goal on the floor.

Hierarchy (one jitted step): every `high_level_period` seconds (0.2-0.5 s is the intended
range) the high-level policy's action a in [-1, 1]^3 becomes a velocity command (vx, vy, yaw
rate) in the low-level joystick policy's command ranges (`terms.command_from_action`: a = 0
stands still, +-1 the ends of each range); the low-level joystick env and its trained actor then
take K = high_level_period / joystick dt control steps (50 Hz for jh1) under that command
(`jaxhum.envs.terms.commands.with_command`, held), the actor fed the joystick env's own
observation (its layout, history, noise and lag, if the joystick run has them). One navigate
step is those K joystick steps (`lax.scan`).

The low-level policy comes from a joystick run directory (`low_level=RUN_DIR`, loaded with
`jaxhum.run.checkpoint.load_run`: the run's evaluation world and its deterministic actor) or
is `low_level=untrained`, a freshly initialised joystick actor (the joystick cpu preset's
architecture, seed 0) over a joystick env on `robot` (jh1 by default), for CPU checks and tests;
with a run directory the run's robot is the robot (`robot`, if given, must name it). Its
parameters are constants closed over by the env (`NavigateEnv.low_level`, in the env's static
part): they are never in a train state, so no gradient reaches them and no update changes them.

Goals: at reset a goal is drawn `goal_distance` m away (2-8 m) in a direction `goal_angle`
(any, by default) from the robot's start heading; a `goal_heading_share` of goals also ask for a
heading, uniform in [-pi, pi) (`terms.sample_goal`). Success: within `success_radius` (0.3 m)
of the goal, and of its heading within `success_heading` (0.3 rad) when it asks for one, at
some step of the `episode_seconds` (20 s) episode without a fall. Reaching does not end the
episode (evaluators count only falls as terminations): the robot is paid for staying there.

Actor observation (`OBSERVATION_LAYOUT`), what a robot has: the goal's position in the robot's
frame (2, from its localisation: the pelvis position and yaw), the goal's heading relative to
the robot's as (cos, sin) and whether the goal has one (3), the robot's velocity estimate: the
command its low-level policy follows now (3, the previous high-level action mapped; no
privileged base velocity), the gyro (3) and gravity in the IMU frame (3), and the share of the
episode left (1).

Critic observation: the actor observation, then the true base velocity in the base frame (3)
and the world (3), and the pelvis height (1).

Reward (`DEFAULT_REWARD_WEIGHTS`, terms in `jaxhum.envs.terms.navigate`): progress (m/s closed
on the goal), distance kernel, heading kernel near the goal, reaching bonus (once), command
smoothness (`command_rate`) and termination (a fall in any of the K low-level steps ends the
episode).

Evaluation metrics per step, each a telescoped running figure whose per-episode mean (what the
runner's evaluation and `python -m jaxhum.evaluate` report, as `eval/tracking_error_<name>`) is
the episode's figure: `tracking/navigate_missed` (1 if the goal was not reached, 0 if it was:
1 minus the success rate), `tracking/navigate_final_distance` (m, at the episode's last step)
and `tracking/navigate_time` (s to first reach the goal; the whole episode when never);
`NavigateEnv.tracking_bounds` make an episode a success in `jaxhum.evaluate` when it does not
fall and reaches its goal. `fall` is 1.0 on a step with a fall.

Export: `python -m jaxhum.export RUN_DIR --out DIR` writes the pair (`jaxhum.tools.export.export_pair`:
both actors, the rate of each, the command mapping), which `jaxhum.tools.deploy.PolicyPair` runs with
numpy. Sim-to-sim refuses the task (`NavigateEnv.deploy` is None).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from jaxhum import robots
from jaxhum.envs.base import Env, EnvState, with_autoreset
from jaxhum.envs.terms import commands, observations, rewards
from jaxhum.envs.terms import navigate as terms
from jaxhum.envs.terms.locomotion import JoystickConfig

UNTRAINED = "untrained"  # low_level: a freshly initialised joystick actor instead of a run
LOW_LEVEL_TASK = "joystick"  # the task a low-level run must have trained
UNTRAINED_HIDDEN_SIZES = (64, 64)  # the joystick cpu preset's actor (experiments/joystick.py)

REWARD_TERMS: Mapping[str, rewards.RewardTerm] = types.MappingProxyType(
    {
        "progress": terms.progress,
        "distance": terms.distance_kernel,
        "heading": terms.heading_kernel,
        "reached": terms.reaching_bonus,
        "command_rate": terms.command_rate,
        "termination": rewards.termination,
    }
)

DEFAULT_REWARD_WEIGHTS: Mapping[str, float] = types.MappingProxyType(
    {
        "progress": 1.0,
        "distance": 0.5,
        "heading": 0.5,
        "reached": 10.0,
        "command_rate": -0.05,
        "termination": -20.0,
    }
)

OBSERVATION_LAYOUT: tuple[tuple[str, int], ...] = (
    ("goal_position", 2),
    ("goal_heading", 3),
    ("commanded_velocity", 3),
    ("imu_angular_velocity", 3),
    ("gravity_in_imu", 3),
    ("time_left", 1),
)
CRITIC_EXTRA_SIZE = 3 + 3 + 1
ACTION_SIZE = commands.COMMAND_SIZE

# `python -m jaxhum.evaluate`: an episode succeeds when it does not fall and reaches its goal.
TRACKING_BOUNDS: Mapping[str, float] = types.MappingProxyType({"navigate_missed": 0.0})


@dataclasses.dataclass(frozen=True)
class NavigateConfig:
    """Settings of navigate; every field can be overridden through `make`.

    Attributes:
      low_level: the frozen low-level policy: a joystick run directory (its newest checkpoint),
        or 'untrained' (a freshly initialised joystick actor, for CPU checks and tests).
      robot: the robot (`jaxhum.robots` name or .toml spec path); '' means the low level's: the
        joystick default (jh1) when untrained, the run's robot with a run directory (a robot
        given with a run directory must be the run's).
      high_level_period: seconds between high-level commands (0.2-0.5 s intended); a whole
        multiple of the low-level joystick env's control step.
      episode_seconds: episode length (s) before truncation (the success window).
      goal_distance: (low, high) distance of the goal from the start (m).
      goal_angle: (low, high) direction of the goal from the start heading (rad).
      goal_heading_share: probability in [0, 1] that a goal also asks for a heading.
      success_radius: within this distance (m) of the goal the robot has reached it ...
      success_heading: ... and within this heading error (rad) when the goal has a heading.
      distance_sigma: width (m^2) of the distance kernel.
      heading_radius: the heading kernel pays within this distance (m) of the goal.
      heading_sigma: width (rad^2) of the heading kernel.
      reward_weights: term name -> weight; an override is merged into the defaults, zero weights skipped.
    """

    low_level: str = ""
    robot: str = ""
    high_level_period: float = 0.2
    episode_seconds: float = 20.0
    goal_distance: tuple[float, float] = (2.0, 8.0)
    goal_angle: tuple[float, float] = (-3.141592653589793, 3.141592653589793)
    goal_heading_share: float = 0.5
    success_radius: float = 0.3
    success_heading: float = 0.3
    distance_sigma: float = 4.0
    heading_radius: float = 1.0
    heading_sigma: float = 0.25
    reward_weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: DEFAULT_REWARD_WEIGHTS)

    def validate(self) -> None:
        """Raises ValueError naming the first invalid field (`low_level` last: it reads the disk)."""
        for name in ("goal_distance", "goal_angle"):
            value = tuple(getattr(self, name))
            if len(value) != 2 or not value[0] <= value[1]:
                raise ValueError(f"{name}: must be (low, high) with low <= high, got {value}")
        if not self.goal_distance[0] >= 0:
            raise ValueError(f"goal_distance: must be >= 0, got {tuple(self.goal_distance)}")
        if not 0.0 <= self.goal_heading_share <= 1.0:
            raise ValueError(f"goal_heading_share: must be in [0, 1], got {self.goal_heading_share}")
        for name in ("high_level_period", "episode_seconds", "success_radius", "success_heading",
                     "distance_sigma", "heading_radius", "heading_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if not self.episode_seconds >= self.high_level_period:
            raise ValueError(f"episode_seconds: must be >= high_level_period ({self.high_level_period}), "
                             f"got {self.episode_seconds}")
        rewards.check_weights(REWARD_TERMS, self.reward_weights)
        if self.robot:
            robots.check_robot(self.robot)
        check_low_level(self.low_level, self.robot)


def check_low_level(source: str, robot: str = "") -> None:
    """Raises ValueError naming `low_level` unless `source` is 'untrained' or a joystick run
    directory (read from its config.json; nothing is loaded), or naming `robot` when it is given
    and the run trained another robot."""
    if source == UNTRAINED:
        return
    if not isinstance(source, str) or not source:
        raise ValueError(f"low_level: required: a joystick run directory (low_level=RUN_DIR) or {UNTRAINED!r}")
    run_dir = pathlib.Path(source)
    if not run_dir.is_dir():
        raise ValueError(f"low_level: {source}: no such run directory (give a joystick run directory or "
                         f"{UNTRAINED!r})")
    try:
        saved = json.loads((run_dir / "config.json").read_text())
        task = saved.get("env_name")
        run_robot = (saved.get("env") or {}).get("robot") or JoystickConfig().robot
    except (OSError, ValueError, AttributeError):
        raise ValueError(f"low_level: {source}: not a run directory (no readable config.json); give a "
                         f"joystick run directory or {UNTRAINED!r}") from None
    if task != LOW_LEVEL_TASK:
        raise ValueError(f"low_level: {source}: a {task!r} run, not a joystick run")
    if robot and robot != run_robot:
        raise ValueError(f"robot: the low-level run {source} trained robot {run_robot!r}, not {robot!r} "
                         f"(leave robot empty to use the run's)")


# ----------------------------------------------------------------------------- the low level


@dataclasses.dataclass(frozen=True, eq=False)
class LowLevel:
    """The frozen low-level policy and the joystick env it acts in.

    Attributes:
      env: the joystick `Env` (a run's evaluation world).
      params: the actor's parameters with its observation normalizer (a pytree of constants).
      act: `act(params, obs (..., O)) -> action (..., A)`, deterministic, pure.
      source: the run directory, or 'untrained'.
    """

    env: Env
    params: Any
    act: Callable[[Any, jax.Array], jax.Array]
    source: str


def load_low_level(source: str, robot: str = "") -> LowLevel:
    """The low-level policy `source` names (`NavigateConfig.low_level` and `.robot`, already checked)."""
    if source == UNTRAINED:
        return untrained_low_level(robot=robot)
    from jaxhum.run import checkpoint  # loading a run: the run layer, imported only here

    run = checkpoint.load_run(source)
    if run.config.env_name != LOW_LEVEL_TASK:
        raise ValueError(f"low_level: {source}: a {run.config.env_name!r} run, not a joystick run")
    return LowLevel(env=run.env, params=run.params, act=run.act, source=str(run.run_dir))


def untrained_low_level(seed: int = 0, robot: str = "") -> LowLevel:
    """A joystick actor as PPO initialises it (`UNTRAINED_HIDDEN_SIZES`, swish, a fresh
    observation normalizer) over the default joystick env on `robot` ('' : joystick's default):
    what a tiny run starts from."""
    from jaxhum.envs import registry
    from jaxhum.rl import networks, normalization
    from jaxhum.rl.train import PolicyParams

    env = registry.make(LOW_LEVEL_TASK, **({"robot": robot} if robot else {}))
    net = networks.make_policy_network(env.observation_size, env.action_size, UNTRAINED_HIDDEN_SIZES)
    params = PolicyParams(normalizer=normalization.init(env.observation_size),
                          policy=net.init(jax.random.key(seed)))

    def act(p: Any, obs: jax.Array) -> jax.Array:
        return networks.deterministic(net.apply(p.policy, normalization.normalize(p.normalizer, obs)))

    return LowLevel(env=env, params=params, act=act, source=UNTRAINED)


# ----------------------------------------------------------------------------- the env


@dataclasses.dataclass(frozen=True, eq=False)
class NavigateEnv(Env):
    """`Env` with the frozen `low_level` (static: its params are constants of every jitted
    function), the number of low-level steps per step (`low_level_steps`, K), the
    bounds `python -m jaxhum.evaluate` applies (`TRACKING_BOUNDS`: the goal reached)."""

    low_level: LowLevel | None = None
    low_level_steps: int = 1
    tracking_bounds: Mapping[str, float] = dataclasses.field(default_factory=lambda: TRACKING_BOUNDS)


class _Parts(NamedTuple):
    """What the env's functions close over (all frozen)."""

    config: NavigateConfig
    low: LowLevel
    steps: int  # K, low-level control steps per high-level step
    episode_length: int  # high-level steps
    root_body_id: int
    imu_site_id: int
    gyro: slice
    linvel: slice
    command_low: jax.Array  # (3,) the low-level command ranges' lower ends
    command_high: jax.Array  # (3,) ... and upper ends


def low_level_steps(period: float, dt: float) -> int:
    """K = period / dt, the low-level steps in one high-level step; ValueError naming
    `high_level_period` unless it is a whole multiple (to 1e-6) of the low-level step `dt`."""
    k = int(round(period / dt))
    if k < 1 or abs(k * dt - period) > 1e-6:
        raise ValueError(f"high_level_period: must be a whole multiple of the low-level control step "
                         f"{dt:g} s, got {period}")
    return k


def command_ranges(low_env: Env) -> tuple[jax.Array, jax.Array]:
    """(low (3,), high (3,)): the joystick env's vx, vy and yaw-rate ranges."""
    c = low_env.config
    ranges = (c.vx_range, c.vy_range, c.yaw_rate_range)
    return (jnp.asarray([r[0] for r in ranges], jnp.float32), jnp.asarray([r[1] for r in ranges], jnp.float32))


def pose(parts: _Parts, data: Any) -> tuple[jax.Array, jax.Array]:
    """(xy (2,), yaw ()) of the pelvis in the world."""
    root = parts.root_body_id
    return data.xpos[root, :2], terms.yaw_of(data.xmat[root].reshape(3, 3))


def goal_relative(parts: _Parts, data: Any, goal: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(position (2,), heading error (), distance ()) of `goal` (3,) from the robot in `data`."""
    xy, yaw = pose(parts, data)
    position, heading = terms.goal_in_robot_frame(goal, xy=xy, yaw=yaw)
    return position, heading, jnp.linalg.norm(goal[:2] - xy)


def observe(parts: _Parts, data: Any, info: dict[str, Any], last_action: jax.Array) -> jax.Array:
    """(15,) the actor observation (`OBSERVATION_LAYOUT`)."""
    position, heading, _ = goal_relative(parts, data, info["goal"])
    has = info["has_heading"]
    command = terms.command_from_action(last_action, low=parts.command_low, high=parts.command_high)
    left = 1.0 - info["steps"].astype(jnp.float32) / parts.episode_length
    obs = jnp.concatenate([
        position,
        jnp.stack([has * jnp.cos(heading), has * jnp.sin(heading), has]),
        command,
        observations.imu_angular_velocity(data=data, gyro_slice=parts.gyro),
        observations.gravity_in_imu(data=data, imu_site_id=parts.imu_site_id),
        left[None],
    ]).astype(jnp.float32)
    chex.assert_shape(obs, (sum(n for _, n in OBSERVATION_LAYOUT),))
    return obs


def critic_observation(parts: _Parts, obs: jax.Array, data: Any) -> jax.Array:
    """(15 + CRITIC_EXTRA_SIZE,) the actor observation, then base velocity (base frame, world) and height."""
    return jnp.concatenate([obs, data.sensordata[parts.linvel], data.qvel[0:3],
                            data.xpos[parts.root_body_id, 2:3]]).astype(jnp.float32)


def _start(parts: _Parts, key: jax.Array, low_state: EnvState) -> EnvState:
    """The first state of an episode from the low-level env's first state: the command at
    standing still, a goal drawn from `key`."""
    config = parts.config
    zero_action = jnp.zeros((ACTION_SIZE,), jnp.float32)
    low_state = commands.with_command(parts.low.env, low_state, _command(parts, zero_action), episode_start=True)
    xy, yaw = pose(parts, low_state.data)
    goal, has_heading = terms.sample_goal(key, start_xy=xy, start_yaw=yaw, distance_range=config.goal_distance,
                                          angle_range=config.goal_angle, heading_share=config.goal_heading_share)
    _, _, distance = goal_relative(parts, low_state.data, goal)
    info = {"low": low_state, "goal": goal, "has_heading": has_heading, "distance": distance,
            "steps": jnp.zeros((), jnp.int32), "reached": jnp.zeros((), bool),
            "reach_time": jnp.asarray(config.episode_seconds, jnp.float32)}
    obs = observe(parts, low_state.data, info, zero_action)
    metrics = _judge(parts, info, low_state.data, zero_action, zero_action, jnp.zeros((), bool)).metrics
    return EnvState.start(low_state.data, obs, ACTION_SIZE, metrics,
                          critic_obs=critic_observation(parts, obs, low_state.data), info=info)


def _reset(parts: _Parts, key: jax.Array) -> EnvState:
    """A new episode: the low-level env's reset (its noise, randomization) and a goal."""
    key_low, key_goal = jax.random.split(key)
    return _start(parts, key_goal, parts.low.env.reset(key_low))


def _reset_to(parts: _Parts, key: jax.Array, qpos: jax.Array, qvel: jax.Array) -> EnvState:
    """A new episode at exactly qpos (nq,), qvel (nv,) (the low-level env's `reset_to`) and a goal."""
    key_low, key_goal = jax.random.split(key)
    return _start(parts, key_goal, parts.low.env.reset_to(key_low, qpos, qvel))


def _command(parts: _Parts, action: jax.Array) -> jax.Array:
    return terms.command_from_action(action, low=parts.command_low, high=parts.command_high)


def _low_level_step(parts: _Parts, low_state: EnvState, _: None) -> tuple[EnvState, jax.Array]:
    """One low-level control step: the frozen actor on the joystick observation, then the joystick
    env's step (no autoreset: the navigate episode ends it); also whether it fell (() float32)."""
    action = parts.low.act(parts.low.params, low_state.obs)
    low_state = parts.low.env.step_without_reset(low_state, action)
    return low_state, low_state.done


class _Judged(NamedTuple):
    reward: jax.Array  # ()
    metrics: dict[str, jax.Array]  # all ()
    info: dict[str, Any]


def _judge(parts: _Parts, info: dict[str, Any], data: Any, action: jax.Array, last_action: jax.Array,
           fell: jax.Array) -> _Judged:
    """The reward, metrics and info after a step that reached `data` (`info` from before it)."""
    config = parts.config
    _, heading, distance = goal_relative(parts, data, info["goal"])
    steps = info["steps"] + 1
    within = terms.within_goal(distance=distance, heading_error=heading, has_heading=info["has_heading"],
                               radius=config.success_radius, heading_tolerance=config.success_heading)
    first = within & ~fell & ~info["reached"]
    reached = info["reached"] | first
    reach_time = jnp.where(first, steps * config.high_level_period, info["reach_time"]).astype(jnp.float32)
    quantities = {
        "distance": distance, "prev_distance": info["distance"], "period": config.high_level_period,
        "distance_sigma": config.distance_sigma, "heading_error": heading, "has_heading": info["has_heading"],
        "heading_radius": config.heading_radius, "heading_sigma": config.heading_sigma,
        "first_reached": first, "action": action, "last_action": last_action, "fell": fell,
    }
    reward, metrics = rewards.weighted_sum(REWARD_TERMS, config.reward_weights, quantities)
    missed_before, missed_now = 1.0 - info["reached"].astype(jnp.float32), 1.0 - reached.astype(jnp.float32)
    metrics = {
        **metrics,
        "tracking/navigate_missed": terms.telescoped(missed_now, missed_before, steps),
        "tracking/navigate_final_distance": terms.telescoped(distance, info["distance"], steps),
        "tracking/navigate_time": terms.telescoped(reach_time, info["reach_time"], steps),
        "fall": fell.astype(jnp.float32),
    }
    info = {**info, "distance": distance, "steps": steps, "reached": reached, "reach_time": reach_time}
    return _Judged(reward, metrics, info)


def _step(parts: _Parts, state: EnvState, action: jax.Array) -> EnvState:
    """One high-level step of one env with action (3,): K low-level steps under its command."""
    chex.assert_shape(action, (ACTION_SIZE,))
    action = jnp.clip(action.astype(jnp.float32), -1.0, 1.0)
    low_state = commands.with_command(parts.low.env, state.info["low"], _command(parts, action))
    low_state, fell_k = jax.lax.scan(functools.partial(_low_level_step, parts), low_state, None, length=parts.steps)
    fell = jnp.max(fell_k) > 0.0
    judged = _judge(parts, state.info, low_state.data, action, state.last_action, fell)
    info = {**judged.info, "low": low_state}
    obs = observe(parts, low_state.data, info, action)
    return state.advance(low_state.data, obs, judged.reward, fell.astype(jnp.float32), action, judged.metrics,
                         critic_obs=critic_observation(parts, obs, low_state.data), info=info)


def make(config: NavigateConfig, name: str = "navigate", low_level: LowLevel | None = None) -> NavigateEnv:
    """Builds navigate from a validated config (`jaxhum.envs.make('navigate', low_level=...)`
    builds by name); `low_level` given here replaces loading `config.low_level`."""
    if not isinstance(config, NavigateConfig):
        raise ValueError(f"config: expected a NavigateConfig, got {type(config).__name__}")
    config.validate()
    low = load_low_level(config.low_level, config.robot) if low_level is None else low_level
    low_env = low.env
    commands.command_offset(low_env)  # ValueError naming `env` unless it observes a command
    k = low_level_steps(config.high_level_period, low_env.dt)
    episode_length = max(1, int(round(config.episode_seconds / config.high_level_period)))
    idx = low_env.robot.index(low_env.sim)
    command_low, command_high = command_ranges(low_env)
    parts = _Parts(config, low, k, episode_length, idx.root_body_id, idx.imu_site_id, idx.gyro, idx.linvel,
                   command_low, command_high)
    step = functools.partial(_step, parts)
    obs_size = sum(n for _, n in OBSERVATION_LAYOUT)
    return NavigateEnv(
        name=name,
        config=config,
        reset=functools.partial(_reset, parts),
        reset_to=functools.partial(_reset_to, parts),
        step=with_autoreset(step, episode_length),
        step_without_reset=step,
        observation_size=obs_size,
        action_size=ACTION_SIZE,
        dt=k * low_env.dt,
        episode_length=episode_length,
        sim=low_env.sim,
        observation_layout=OBSERVATION_LAYOUT,
        robot=low_env.robot,
        critic_observation_size=obs_size + CRITIC_EXTRA_SIZE,
        fresh_starts=True,
        low_level=low,
        low_level_steps=k,
    )
