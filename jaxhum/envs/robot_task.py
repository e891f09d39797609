"""One robot-task skeleton: the pipeline every task on one of our position-actuated robots shares.

A task (walk, joystick, balance; later reach, navigate, ...) is a `TaskDef`: its observation
terms, its reward terms, what its `info` carries (commands, timers), how it judges the state a
step reached (`evaluate`: the quantities its reward terms name, termination, metrics), how its
info moves on each step, and optionally a privileged critic observation. `build(config, task,
name)` does everything else, the same way for every task:

  robot: `robots.get_robot(config.robot)`, loaded and indexed; dt = n_substeps * timestep; the
    episode length from `config.episode_seconds`; the fall height (`config.fall_height`, or 0.5 /
    1.3 of the standing pelvis height); all in a `Setup` the task's functions read.
  reset(key): uniform noise of half-width `config.reset_noise_scale` on the joint angles and
    velocities of the home pose; the episode's randomization from `fold_in(key_start, 1)`; the
    task's info (`TaskDef.init_info`); curriculum levels at 1.0 (the full task) for each name
    the task declares (`TaskDef.curriculum`; a trainer writes its own over them).
  step(state, a) for one env: a (A,) clipped to [-1, 1] -> the episode's physics model
    (`rand.physics_model`) -> delayed action (`rand.delayed_action`) -> push (`rand.push`, scaled
    by the 'push' level when declared) -> `physics.step(model, data, action_to_ctrl(a), n_substeps)`
    -> `TaskDef.evaluate`, reward = `rewards.weighted_sum(reward_terms, config.reward_weights, ...)`
    -> `TaskDef.next_info` -> observation (`observation_terms`) -> noise and lag (`rand.observe`)
    -> critic observation (the true observation, then `TaskDef.critic_extras`) -> `state.advance`.
  metrics: `reward/<term>` for each active term, the task's own, `fall` (1.0 when the pelvis is
    below the fall height), and with pushes on `push_magnitude` (m/s, 0 on steps without a kick).
  autoreset (`with_autoreset`), and the `DeploySpec` for export and sim-to-sim in native MuJoCo:
    the position-control action mapping, the same observation terms on native `MjData`, the
    task's host termination (default: the fall test) and host tracking errors.

Task functions are pure and keyword-only. Each asks, by its argument names, for what it reads of
what the skeleton offers at that point (listed in `TaskDef`), as reward and observation terms do.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxhum import robots
from jaxhum.envs.base import DeploySpec, Env, EnvState, with_autoreset
from jaxhum.envs.terms import observations, randomization, rewards
from jaxhum.sim import physics

# The seed chapter's fall height, 0.5 m, over its robot's standing torso height, 1.3 m (the classic
# MuJoCo humanoid); applied to our robot's standing pelvis height when `config.fall_height` is 0.
CHAPTER_STANDING_HEIGHT = 1.3
FALL_RATIO = 0.5 / CHAPTER_STANDING_HEIGHT
CURRICULUM_INFO_KEY = "curriculum"  # = jaxhum.rl.curriculum.INFO_KEY (envs do not import rl)
HISTORY_INFO_KEY = "obs_history"  # info[HISTORY_INFO_KEY]: (H, O) the actor's last H frames, newest first
PUSH_LEVEL = "push"  # the curriculum level that scales every push's magnitude, when a task declares it


class RobotTaskConfig(Protocol):
    """The fields of a task's frozen config that `build` reads (the task documents them)."""

    robot: str
    episode_seconds: float
    fall_height: float
    fall_tilt: float
    terminate_on_fall: bool
    reset_noise_scale: float
    observation_history: int
    reward_weights: Mapping[str, float]
    randomization: randomization.RandomizationConfig

    def validate(self) -> None: ...


@dataclasses.dataclass(frozen=True, eq=False)
class Setup:
    """What `build` resolves from a task's config, once; every task function may read it.

    Attributes:
      robot: the `robots.Robot` record; sim: the loaded model (`jaxhum.sim.SimModel`).
      idx: `robots.RobotIndex` (ids, addresses, home pose, gains).
      action_size: A, the actuated joints (action order).
      dt: control step (s), n_substeps * timestep.
      episode_length: control steps before truncation.
      fall_height: pelvis height (m) below which the robot has fallen.
      fall_cos_tilt: the robot has also fallen when the cosine of its pelvis tilt (the angle of the
        pelvis z axis from the world's) drops below this; -1.0 (the `fall_tilt` 0 of a config) never.
      history: H, observation frames the actor sees, newest first (`config.observation_history`).
      qpos_adr, dof_adr: (A,) int32 qpos / qvel addresses of the actuated joints.
      home_qpos: (nq,) float32 home keyframe; home_joint_pos: (A,) float32 its joint angles.
      levels: curriculum level names the env declares (() for none).
      constants: the task's own constants (`TaskDef.constants`), e.g. joystick's standing foot heights.
    """

    robot: robots.Robot
    sim: Any
    idx: robots.RobotIndex
    action_size: int
    dt: float
    episode_length: int
    fall_height: float
    fall_cos_tilt: float
    history: int
    qpos_adr: jax.Array
    dof_adr: jax.Array
    home_qpos: jax.Array
    home_joint_pos: jax.Array
    levels: tuple[str, ...] = ()
    constants: Any = None

    @property
    def sensors(self) -> dict[str, Any]:
        """Static inputs of the robot's observation terms (`jaxhum.envs.terms.observations`)."""
        return {"qpos_adr": self.qpos_adr, "dof_adr": self.dof_adr, "home_joint_pos": self.home_joint_pos,
                "imu_site_id": self.idx.imu_site_id, "linvel_slice": self.idx.linvel, "gyro_slice": self.idx.gyro}

    @property
    def host_sensors(self) -> dict[str, Any]:
        """`sensors` in numpy, for the terms on native `mujoco.MjData`."""
        return {"qpos_adr": self.idx.qpos_adr, "dof_adr": self.idx.dof_adr,
                "home_joint_pos": np.asarray(self.idx.home_joint_pos, np.float32),
                "imu_site_id": self.idx.imu_site_id, "linvel_slice": self.idx.linvel, "gyro_slice": self.idx.gyro}


class Outcome(NamedTuple):
    """What a task's `evaluate` says of the state one step reached.

    quantities: what its reward terms name (the context of `rewards.weighted_sum`).
    terminated: () float32, 1.0 if the episode ends here (e.g. `fall_termination`).
    metrics: the task's metrics beside the reward terms, all ().
    info: the task's info after the step (timers, contacts); None leaves it as it was.
    aux: what its `critic_extras` needs from the step (e.g. joystick's foot velocities); None if nothing.
    """

    quantities: Mapping[str, Any]
    terminated: jax.Array
    metrics: dict[str, jax.Array]
    info: dict[str, Any] | None = None
    aux: Any = None


def no_info() -> dict[str, Any]:
    """An info initializer for tasks that carry nothing of their own."""
    return {}


def same_info(*, info: dict[str, Any]) -> dict[str, Any]:
    """A per-step info update that changes nothing."""
    return info


def no_inputs() -> dict[str, Any]:
    """No observation inputs beyond the skeleton's."""
    return {}


def no_constants() -> None:
    """No task constants."""
    return None


def no_curriculum() -> tuple[str, ...]:
    """No curriculum levels."""
    return ()


def no_env_fields() -> dict[str, Any]:
    """No fields beyond `Env`'s."""
    return {}


MAX_HISTORY = 64  # the most observation frames a config may ask for


def check_skeleton_fields(config: RobotTaskConfig) -> None:
    """Raises ValueError naming the first invalid field of those every robot task's config has
    for the skeleton: `fall_tilt` in [0, pi] (rad, 0: off), `observation_history` in 1..MAX_HISTORY."""
    if not 0.0 <= config.fall_tilt <= np.pi:
        raise ValueError(f"fall_tilt: must be in [0, pi] rad (0: off), got {config.fall_tilt}")
    h = config.observation_history
    if isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= MAX_HISTORY:
        raise ValueError(f"observation_history: must be an integer in 1..{MAX_HISTORY}, got {h!r}")


def fall_termination(*, fell: jax.Array, config: RobotTaskConfig) -> jax.Array:
    """() float32: 1.0 when the robot fell (`fell`, () bool) and `config.terminate_on_fall`, else 0.0."""
    chex.assert_rank(fell, 0)
    return jnp.where(fell & config.terminate_on_fall, 1.0, 0.0).astype(jnp.float32)


def fallen(setup: Setup, data: Any) -> jax.Array:
    """() bool: the pelvis below `setup.fall_height`, or tilted past `config.fall_tilt` (the
    cosine of its tilt, the world-z component of its z axis, below `setup.fall_cos_tilt`)."""
    root = setup.idx.root_body_id
    return (data.xpos[root, 2] < setup.fall_height) | (data.xmat[root, 2, 2] < setup.fall_cos_tilt)


def host_fall(*, config: RobotTaskConfig, setup: Setup, data: Any) -> bool:
    """The fall termination on native `mujoco.MjData`: `fallen`'s rule in numpy."""
    root = setup.idx.root_body_id
    fell = data.xpos[root, 2] < setup.fall_height or data.xmat[root].reshape(3, 3)[2, 2] < setup.fall_cos_tilt
    return bool(config.terminate_on_fall and fell)


def split_reset(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(key_qpos, key_qvel, key_start) of a reset: a three-way split of `key`."""
    key_qpos, key_qvel, key_start = jax.random.split(key, 3)
    return key_qpos, key_qvel, key_start


def split_reset_keeping_key(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """walk's reset keys: the noise from a two-way split of `key`, the start from `key` itself (its
    randomization draws `fold_in(key, 1)`), so walk's resets stay what they have always been."""
    key_qpos, key_qvel = jax.random.split(key)
    return key_qpos, key_qvel, key


@dataclasses.dataclass(frozen=True, eq=False)
class TaskDef:
    """A robot task as tables and pure functions; `build` makes it an `Env`.

    Every function takes keyword-only arguments and asks only for those it reads, out of what
    is offered (`config`: the task's frozen config; `setup`: the built `Setup`; one env's shapes:
    A actions, O observation size).

    Attributes:
      observation_terms: actor observation terms, in order; they may name `data`, `last_action`
        (A,) (the action just taken, zeros at reset), `foot_contact` (2,), the entries of
        `Setup.sensors` and those `observation_inputs` returns.
      reward_terms: name -> reward term, weighted by `config.reward_weights` (zero weights skipped).
      evaluate: offered config, setup, data (after the step), prev_data (before it), action (A,),
        last_action (A,) (the previous step's), info, fell (() bool) -> `Outcome`.
      split_reset: key -> (key_qpos, key_qvel, key_start); `split_reset` unless a task keeps an older order.
      init_info: offered config, setup, key (the start key), data -> the task's part of a new
        episode's info (commands, timers, a key).
      next_info: offered config, setup, info -> the info after `evaluate` on each step (e.g. a
        command's countdown and redraw).
      observation_inputs: offered config, setup, info -> {name: value} more inputs of the
        observation terms (e.g. the followed command).
      host_observation_inputs: offered config, setup and the keyword arguments a native loop
        gives `DeploySpec.host_observation` (e.g. `command`) -> the same inputs in numpy.
      critic_extras: offered config, setup, data, info, aux (`Outcome.aux`; None at reset), drawn
        (`Randomizer.privileged`: what the episode's randomization drew) -> (C,) privileged
        quantities the critic observation appends to the true actor observation (size O + C,
        O one frame); None: the task has no critic observation.
      constants: offered config, setup (without constants) -> the task's constants, computed once.
      curriculum: offered config -> the names of the curriculum levels the env declares ('push'
        scales pushes; the task reads the others from `info['curriculum']`).
      host_terminated: offered config, setup, model, data -> bool, termination on native data.
      host_tracking: offered config, setup, model, data, command -> {'tracking/<name>': float}, or None.
      env_class, env_fields: the `Env` (sub)class built and, offered config and setup, its own fields.
      fresh_starts: every episode must start from a fresh draw even without randomization (a drawn command).
    """

    observation_terms: tuple[Callable[..., Any], ...]
    reward_terms: Mapping[str, rewards.RewardTerm]
    evaluate: Callable[..., Outcome]
    split_reset: Callable[[jax.Array], tuple[jax.Array, jax.Array, jax.Array]] = split_reset
    init_info: Callable[..., dict[str, Any]] = no_info
    next_info: Callable[..., dict[str, Any]] = same_info
    observation_inputs: Callable[..., Mapping[str, Any]] = no_inputs
    host_observation_inputs: Callable[..., Mapping[str, Any]] = no_inputs
    critic_extras: Callable[..., jax.Array] | None = None
    constants: Callable[..., Any] = no_constants
    curriculum: Callable[..., tuple[str, ...]] = no_curriculum
    host_terminated: Callable[..., bool] = host_fall
    host_tracking: Callable[..., Mapping[str, float]] | None = None
    env_class: type[Env] = Env
    env_fields: Callable[..., Mapping[str, Any]] = no_env_fields
    fresh_starts: bool = False


class _Parts(NamedTuple):
    """What the skeleton's functions close over (all frozen): bound with `functools.partial`."""

    task: TaskDef
    config: Any
    setup: Setup
    rand: randomization.Randomizer
    observation_size: int


class _Judged(NamedTuple):
    reward: jax.Array  # ()
    terminated: jax.Array  # () float32
    metrics: dict[str, jax.Array]  # all ()
    info: dict[str, Any]
    aux: Any


def call(fn: Callable[..., Any], **offered: Any) -> Any:
    """`fn` called with the keyword-only arguments it names, out of `offered` (the others are not
    passed; a named one that is not offered keeps its default or raises TypeError)."""
    return fn(**{n: offered[n] for n in rewards.keyword_names(fn) if n in offered})


# ----------------------------------------------------------------------------- build


def build(config: RobotTaskConfig, task: TaskDef, name: str) -> Env:
    """The `Env` named `name` of `task` on the robot `config.robot` (see the module docstring)."""
    config.validate()
    setup = make_setup(config, task)
    layout = _layout(task, config, setup)
    obs_size = sum(size for _, size in layout)  # one frame
    rand = randomization.build(config.randomization, setup.sim, setup.idx, layout, setup.dt)
    critic_size = _critic_extras_size(task, config, setup, rand)
    parts = _Parts(task, config, setup, rand, obs_size)
    step = functools.partial(_step, parts)
    return task.env_class(
        name=name,
        config=config,
        reset=functools.partial(_reset, parts),
        reset_to=functools.partial(_start, parts),
        step=with_autoreset(step, setup.episode_length),
        step_without_reset=step,
        observation_size=obs_size * setup.history,
        action_size=setup.action_size,
        dt=setup.dt,
        episode_length=setup.episode_length,
        sim=setup.sim,
        observation_layout=layout,
        observation_history=setup.history,
        robot=setup.robot,
        deploy=_deploy_spec(parts),
        critic_observation_size=0 if task.critic_extras is None else obs_size + critic_size,
        fresh_starts=task.fresh_starts or rand.on,
        curriculum=setup.levels,
        **call(task.env_fields, config=config, setup=setup),
    )


def make_setup(config: RobotTaskConfig, task: TaskDef) -> Setup:
    """The robot loaded and indexed, the step timing and heights, and the task's constants."""
    robot = robots.get_robot(config.robot)
    sim = robot.load()
    idx = robot.index(sim)
    dt = float(sim.mj_model.opt.timestep) * robot.n_substeps
    setup = Setup(
        robot=robot,
        sim=sim,
        idx=idx,
        action_size=len(robot.joint_names),
        dt=dt,
        episode_length=max(1, int(round(config.episode_seconds / dt))),
        fall_height=config.fall_height or FALL_RATIO * idx.standing_height,
        fall_cos_tilt=float(np.cos(config.fall_tilt)) if config.fall_tilt > 0 else -1.0,
        history=int(config.observation_history),
        qpos_adr=jnp.asarray(idx.qpos_adr),
        dof_adr=jnp.asarray(idx.dof_adr),
        home_qpos=jnp.asarray(idx.home_qpos, jnp.float32),
        home_joint_pos=jnp.asarray(idx.home_joint_pos, jnp.float32),
        levels=tuple(call(task.curriculum, config=config)),
    )
    return dataclasses.replace(setup, constants=call(task.constants, config=config, setup=setup))


def _home_data(setup: Setup) -> Any:
    return physics.init(setup.sim.mjx_model, setup.home_qpos, jnp.zeros((setup.sim.mj_model.nv,), jnp.float32))


def _layout(task: TaskDef, config: Any, setup: Setup) -> tuple[tuple[str, int], ...]:
    """(term name, size) of each observation term, from shapes alone (nothing is computed)."""

    def outputs(key: jax.Array) -> list[jax.Array]:
        data = _home_data(setup)
        info = _task_info(task, config, setup, key, data)
        context = _observation_context(task, config, setup, data, info, jnp.zeros((setup.action_size,), jnp.float32))
        return [observations.concat((fn,), context) for fn in task.observation_terms]

    parts = jax.eval_shape(outputs, jax.random.PRNGKey(0))
    return tuple((fn.__name__, int(p.shape[0])) for fn, p in zip(task.observation_terms, parts))


def _critic_extras_size(task: TaskDef, config: Any, setup: Setup, rand: randomization.Randomizer) -> int:
    """C, the size of the task's critic extras (0 without a critic), from shapes alone."""
    if task.critic_extras is None:
        return 0

    def extras(key: jax.Array) -> jax.Array:
        data = _home_data(setup)
        info = {**_task_info(task, config, setup, key, data), **rand.episode_start(key, 1, setup.action_size)}
        return call(task.critic_extras, config=config, setup=setup, data=data, info=info, aux=None,
                    drawn=rand.privileged(info))

    critic = jax.eval_shape(extras, jax.random.PRNGKey(0))
    chex.assert_rank(critic, 1)
    return int(critic.shape[0])


# ----------------------------------------------------------------------------- reset and step


def _task_info(task: TaskDef, config: Any, setup: Setup, key: jax.Array, data: Any) -> dict[str, Any]:
    return dict(call(task.init_info, config=config, setup=setup, key=key, data=data))


def _reset(parts: _Parts, key: jax.Array) -> EnvState:
    """A new episode at the home pose with uniform noise on the joint angles (nq) and velocities (nv)."""
    setup, s = parts.setup, parts.config.reset_noise_scale
    key_qpos, key_qvel, key_start = parts.task.split_reset(key)
    noise_shape = (setup.action_size,)
    qpos = setup.home_qpos.at[setup.qpos_adr].add(jax.random.uniform(key_qpos, noise_shape, minval=-s, maxval=s))
    qvel = jnp.zeros((setup.sim.mj_model.nv,), jnp.float32).at[setup.dof_adr].set(
        jax.random.uniform(key_qvel, noise_shape, minval=-s, maxval=s))
    return _start(parts, key_start, qpos, qvel)


def _start(parts: _Parts, key: jax.Array, qpos: jax.Array, qvel: jax.Array) -> EnvState:
    """The first state of an episode at exactly qpos (nq,), qvel (nv,); `key` draws the episode's
    randomization (`fold_in(key, 1)`) and the task's info."""
    task, config, setup, rand, obs_size = parts
    chex.assert_shape(qpos, setup.home_qpos.shape)
    chex.assert_shape(qvel, (setup.sim.mj_model.nv,))
    episode = rand.episode_start(jax.random.fold_in(key, 1), obs_size, setup.action_size)
    data = physics.init(rand.physics_model(setup.sim.mjx_model, episode), qpos, qvel)
    info = {**_task_info(task, config, setup, key, data), **episode}
    if setup.levels:  # the full task outside training; a trainer writes its levels over these
        info[CURRICULUM_INFO_KEY] = {n: jnp.ones((), jnp.float32) for n in setup.levels}
    zero_action = jnp.zeros((setup.action_size,), jnp.float32)
    metrics = _evaluate(parts, data, data, zero_action, zero_action, info, jnp.zeros((), jnp.float32)).metrics
    true_obs = _observe(parts, data, info, zero_action)
    obs, info = _stack_history(setup.history, *rand.observe(true_obs, info))
    critic_obs = _critic_observation(parts, true_obs, data, info, None)
    return EnvState.start(data, obs, setup.action_size, metrics, critic_obs=critic_obs, info=info)


def _step(parts: _Parts, state: EnvState, action: jax.Array) -> EnvState:
    """One control step of one env with action (A,), without truncation or autoreset."""
    task, config, setup, rand, _ = parts
    chex.assert_shape(action, (setup.action_size,))
    action = jnp.clip(action.astype(jnp.float32), -1.0, 1.0)
    episode_model = rand.physics_model(setup.sim.mjx_model, state.info)
    applied, info = rand.delayed_action(action, state.info)
    push_level = info[CURRICULUM_INFO_KEY][PUSH_LEVEL] if PUSH_LEVEL in setup.levels else None
    data, push, info = rand.push(state.data, info, push_level)
    ctrl = robots.action_to_ctrl(setup.idx, applied)
    data = physics.step(episode_model, data, ctrl, setup.robot.n_substeps)
    # prev_data = state.data: a kick changes velocities only, so positions before the step are its own.
    judged = _evaluate(parts, data, state.data, action, state.last_action, info, push)
    info = call(task.next_info, config=config, setup=setup, info=judged.info)
    true_obs = _observe(parts, data, info, action)
    obs, info = _stack_history(setup.history, *rand.observe(true_obs, info))
    critic_obs = _critic_observation(parts, true_obs, data, info, judged.aux)
    return state.advance(data, obs, judged.reward, judged.terminated, action, judged.metrics,
                         critic_obs=critic_obs, info=info)


def _evaluate(parts: _Parts, data: Any, prev_data: Any, action: jax.Array, last_action: jax.Array,
              info: dict[str, Any], push: jax.Array) -> _Judged:
    """The task's `evaluate`, its reward terms summed, and the skeleton's metrics (fall, push)."""
    task, config, setup, rand, _ = parts
    fell = fallen(setup, data)
    out = call(task.evaluate, config=config, setup=setup, data=data, prev_data=prev_data, action=action,
               last_action=last_action, info=info, fell=fell)
    reward, reward_metrics = rewards.weighted_sum(task.reward_terms, config.reward_weights, out.quantities)
    metrics = {**reward_metrics, **out.metrics, "fall": fell.astype(jnp.float32)}
    if rand.config.pushes_on:
        metrics["push_magnitude"] = push
    return _Judged(reward, out.terminated, metrics, info if out.info is None else out.info, out.aux)


def _observation_context(task: TaskDef, config: Any, setup: Setup, data: Any, info: dict[str, Any],
                         last_action: jax.Array) -> dict[str, Any]:
    context = {"data": data, "last_action": last_action, **setup.sensors,
               **call(task.observation_inputs, config=config, setup=setup, info=info)}
    if _wants(task.observation_terms, "foot_contact"):
        context["foot_contact"] = robots.foot_contacts(setup.idx, data)
    return context


def _observe(parts: _Parts, data: Any, info: dict[str, Any], last_action: jax.Array) -> jax.Array:
    """(O,) the true actor observation (before noise and lag)."""
    context = _observation_context(parts.task, parts.config, parts.setup, data, info, last_action)
    return observations.concat(parts.task.observation_terms, context)


def _stack_history(history: int, frame: jax.Array, info: dict[str, Any]) -> tuple[jax.Array, dict[str, Any]]:
    """(H * O,) the last H frames (O,) the policy saw, newest first, and the info keeping them in
    `info[HISTORY_INFO_KEY]` (H, O); the episode's first frame fills every slot. H = 1: `frame` as it is."""
    if history == 1:
        return frame, info
    chex.assert_rank(frame, 1)
    previous = info.get(HISTORY_INFO_KEY)
    if previous is None:  # the episode's first observation
        previous = jnp.broadcast_to(frame, (history, frame.shape[0]))
    frames = jnp.concatenate([frame[None], previous[:-1]])
    return frames.reshape(-1), {**info, HISTORY_INFO_KEY: frames}


def _critic_observation(parts: _Parts, true_obs: jax.Array, data: Any, info: dict[str, Any],
                        aux: Any) -> jax.Array | None:
    """(O + C,) the true actor observation, then the task's privileged extras; None without a critic."""
    if parts.task.critic_extras is None:
        return None
    extras = call(parts.task.critic_extras, config=parts.config, setup=parts.setup, data=data, info=info, aux=aux,
                  drawn=parts.rand.privileged(info))
    return jnp.concatenate([true_obs, extras])


def _wants(terms: tuple[Callable[..., Any], ...], name: str) -> bool:
    return any(name in rewards.keyword_names(fn) for fn in terms)


# ----------------------------------------------------------------------------- outside JAX


def _host_observation(parts: _Parts, *, model: Any, data: Any, last_action: Any = None, **given: Any) -> np.ndarray:
    """(O,) float32 the actor observation on native `mujoco.MjData`; `last_action` (A,) defaults to
    zeros, `given` are the task's inputs (e.g. joystick's `command`)."""
    del model  # the observation reads data alone
    task, config, setup = parts.task, parts.config, parts.setup
    unknown = set(given) - set(rewards.keyword_names(task.host_observation_inputs))
    if unknown:
        raise TypeError(f"host_observation: unexpected argument(s) {sorted(unknown)}")
    n = setup.action_size
    last_action = np.zeros(n, np.float32) if last_action is None else np.asarray(last_action, np.float32)
    context = {"data": data, "last_action": last_action, **setup.host_sensors,
               **call(task.host_observation_inputs, config=config, setup=setup, **given)}
    if _wants(task.observation_terms, "foot_contact"):
        context["foot_contact"] = robots.foot_contacts_np(setup.idx, data)
    return observations.concat_host(task.observation_terms, context)


def _host_call(parts: _Parts, fn: Callable[..., Any], **given: Any) -> Any:
    return call(fn, config=parts.config, setup=parts.setup, **given)


def _deploy_spec(parts: _Parts) -> DeploySpec:
    """The task outside JAX: its observation terms on native MjData, its host termination and tracking."""
    task = parts.task
    tracking = None if task.host_tracking is None else functools.partial(_host_call, parts, task.host_tracking)
    return position_control_deploy(parts.setup.robot, parts.setup.idx, functools.partial(_host_observation, parts),
                                   functools.partial(_host_call, parts, task.host_terminated), tracking)


def position_control_deploy(robot: robots.Robot, idx: robots.RobotIndex, host_observation, host_terminated,
                            host_tracking=None) -> DeploySpec:
    """The `DeploySpec` of a task that drives one of our position-actuated robots with
    `target = home + action_scale * a` (every robot task): its action mapping and robot facts,
    with the task's own host observation and termination."""
    return DeploySpec(
        ctrl_offset=np.asarray(idx.home_joint_pos, np.float64),
        ctrl_scale=np.asarray(idx.action_scale, np.float64),
        ctrl_min=np.asarray(idx.joint_range[:, 0], np.float64),
        ctrl_max=np.asarray(idx.joint_range[:, 1], np.float64),
        actuator_ids=np.asarray(idx.actuator_ids),
        host_observation=host_observation,
        host_terminated=host_terminated,
        host_tracking=host_tracking,
        robot=_robot_facts(robot, idx),
    )


def _robot_facts(robot: robots.Robot, idx: robots.RobotIndex) -> dict[str, Any]:
    """JSON-able robot facts for an exported policy's policy.json."""
    return {
        "name": robot.name,
        "actuators": "position (PD inside the physics): torque = kp (target - q) - kd qdot, clipped to torque_limit",
        "home_pose": np.asarray(idx.home_joint_pos).tolist(),
        "action_scale": np.asarray(idx.action_scale).tolist(),
        "pd_gains": {"kp": np.asarray(idx.kp).tolist(), "kd": np.asarray(idx.kd).tolist()},
        "torque_limit": np.asarray(idx.torque_limit).tolist(),
        "joint_range": np.asarray(idx.joint_range).tolist(),
        "imu": {"site": robot.imu_site, "gyro": robot.gyro_sensor, "linvel": robot.linvel_sensor},
        "feet": list(robot.foot_sites),
    }
