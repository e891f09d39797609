"""Environment state, the bundle of pure functions a task returns, and autoreset.

A task supplies three pure functions for ONE environment (vmap at the call site):
`reset(key)`, `reset_to(key, qpos, qvel)` and `step_without_reset(state, action)`. This
module adds episode truncation and automatic reset on top to give `step(state, action)`.

Autoreset restores the state a given environment started its episode in (drawn at its
`reset`), as brax's `AutoResetWrapper` does: it costs a select, not a second physics pass.
Tasks whose episodes must each start afresh (new command, new physics parameters) set
`Env.fresh_starts`; a trainer then calls `refresh_starts` once per iteration, which draws a new
start for every env with `reset` and stores it as the start its next autoreset restores. An
episode never changes its start or its parameters mid-way.

Non-finite physics: a step that leaves `qpos`, `qvel`, `obs`, `critic_obs` or `reward` NaN or
infinite ends its episode at once (terminated, so nothing bootstraps from it), restores the
stored start, reports reward 0 and the start's observation as `final_obs`, and sets
`metrics['nonfinite']` to 1.0 (0.0 on every other step; every task has the key). So a blown-up
simulation costs one episode, never the run, and no NaN reaches a learner.

Curriculum: a task that declares `Env.curriculum` names reads each name's level, a () float32 in
[0, 1], from `state.info['curriculum'][name]`; its `reset` puts the level it wants outside
training there (usually 1.0, the full task) and a trainer overwrites the levels of every env (in
`info` and `first_info`) before each rollout, so levels change without recompiling.

Optional parts of the state, the same for every task so trainers need no special cases:
`critic_obs` (privileged observation for an asymmetric critic; shape (0,) when the task has
none, `Env.critic_observation_size == 0`) and `info` (whatever a task carries from step to step:
its command, timers, a PRNG key, randomized physics parameters; `{}` when it carries nothing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from mujoco import mjx

NONFINITE = "nonfinite"  # metric: 1.0 on a step whose physics became NaN/inf (then reset), else 0.0


@struct.dataclass
class EnvState:
    """State of one environment (a leading batch axis is added by vmap).

    `done` marks the step on which an episode ended, by termination or by reaching the
    episode length; `truncated` marks the second case alone, so a learner bootstraps from
    `final_obs` there. After an autoreset `obs` is already the new episode's first observation
    while `final_obs` holds the observation that ended the old one.
    """

    data: mjx.Data  # physics state
    obs: jax.Array  # (obs_size,) observation after this step (after autoreset when done)
    reward: jax.Array  # () reward of this step
    done: jax.Array  # () float32, 1.0 if the episode ended at this step (terminated or truncated)
    truncated: jax.Array  # () float32, 1.0 if it ended by the time limit and not by termination
    final_obs: jax.Array  # (obs_size,) observation reached by this step, before any autoreset
    step_count: jax.Array  # () int32, steps taken in the current episode
    last_action: jax.Array  # (action_size,) action of the previous step (zeros after reset)
    first_data: mjx.Data  # physics state this episode started from; restored on autoreset
    first_obs: jax.Array  # (obs_size,) observation at `first_data`
    metrics: dict[str, jax.Array]  # 'reward/<term>' for each active term plus task metrics, all ()
    critic_obs: jax.Array  # (critic_size,) privileged observation for the value net; (0,) if none
    final_critic_obs: jax.Array  # (critic_size,) critic observation before any autoreset
    first_critic_obs: jax.Array  # (critic_size,) critic observation at `first_data`
    info: dict[str, Any]  # task state carried between steps (command, timers, key, ...); {} if none
    first_info: dict[str, Any]  # `info` at the start the next autoreset restores

    @property
    def terminated(self) -> jax.Array:
        """() float32, 1.0 if the episode ended by termination (no bootstrap)."""
        return self.done * (1.0 - self.truncated)

    @property
    def params(self) -> Any:
        """The current episode's randomized physics parameters (`info['params']`; {} if none)."""
        return self.info.get("params", {})

    @classmethod
    def start(cls, data: mjx.Data, obs: jax.Array, action_size: int, metrics: dict[str, jax.Array],
              critic_obs: jax.Array | None = None, info: dict[str, Any] | None = None) -> EnvState:
        """The first state of an episode at `data` (zero reward, action and step count).

        `metrics` gives the metric keys and shapes (e.g. a step's metrics); they start at zero.
        `critic_obs` defaults to an empty (0,) vector and `info` to `{}`.
        """
        zero = jnp.zeros((), jnp.float32)
        critic_obs = jnp.zeros((0,), jnp.float32) if critic_obs is None else critic_obs
        info = {} if info is None else info
        metrics = {**metrics, NONFINITE: zero}
        return cls(
            data=data,
            obs=obs,
            reward=zero,
            done=zero,
            truncated=zero,
            final_obs=obs,
            step_count=jnp.zeros((), jnp.int32),
            last_action=jnp.zeros((action_size,), jnp.float32),
            first_data=data,
            first_obs=obs,
            metrics=jax.tree.map(jnp.zeros_like, metrics),
            critic_obs=critic_obs,
            final_critic_obs=critic_obs,
            first_critic_obs=critic_obs,
            info=info,
            first_info=info,
        )

    def advance(self, data: mjx.Data, obs: jax.Array, reward: jax.Array, terminated: jax.Array,
                action: jax.Array, metrics: dict[str, jax.Array], critic_obs: jax.Array | None = None,
                info: dict[str, Any] | None = None) -> EnvState:
        """The state after one control step without reset (not truncated; autoreset comes later).

        `critic_obs` and `info` keep their previous values when not given. `metrics` gains
        `metrics['nonfinite']` (see `nonfinite`).
        """
        critic_obs = self.critic_obs if critic_obs is None else critic_obs
        metrics = {**metrics, NONFINITE: nonfinite(data, obs, critic_obs, reward)}
        return self.replace(
            critic_obs=critic_obs,
            final_critic_obs=critic_obs,
            info=self.info if info is None else info,
            data=data,
            obs=obs,
            reward=reward,
            done=terminated,
            truncated=jnp.zeros((), jnp.float32),
            final_obs=obs,
            step_count=self.step_count + 1,
            last_action=action,
            metrics=metrics,
        )


@dataclasses.dataclass(frozen=True, eq=False)
class DeploySpec:
    """What running a task's policy outside JAX needs (export, sim-to-sim in native MuJoCo).

    Attributes:
      ctrl_offset, ctrl_scale, ctrl_min, ctrl_max: (A,) float arrays: the task maps an action a
        in [-1, 1]^A onto actuator controls as
        `ctrl[actuator_ids] = clip(ctrl_offset + ctrl_scale * clip(a, -1, 1), ctrl_min, ctrl_max)`
        (a torque task: the middle and half-width of each ctrl range; a position-actuated robot:
        the home pose, the action scale and the joint range).
      actuator_ids: (A,) int, the actuator each action entry drives.
      host_observation: `(*, model: mujoco.MjModel, data: mujoco.MjData, last_action (nu,))
        -> (frame_size,) float32 numpy array`, one frame of the task's observation built from
        native MuJoCo data after `mj_step` (command tasks also take `command`); a policy with
        `Env.observation_history` H > 1 reads the last H frames, newest first
        (`jaxhum.tools.deploy.FrameHistory`).
      host_terminated: `(*, model, data) -> bool`, the task's termination on native data.
      robot: JSON-able robot facts for an exported policy's policy.json (home pose, PD gains,
        torque limits, ... whatever the robot has; None where it has none).
      host_tracking: a command task's `(*, model, data, command (3,)) -> {'tracking/<name>':
        float}`, the tracking errors (the step's `tracking/...` metrics) of the control step that
        reached native `data` under `command`; None for other tasks.
    """

    ctrl_offset: Any
    ctrl_scale: Any
    ctrl_min: Any
    ctrl_max: Any
    actuator_ids: Any
    host_observation: Callable[..., Any]
    host_terminated: Callable[..., bool]
    robot: Mapping[str, Any]
    host_tracking: Callable[..., Mapping[str, float]] | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class Env:
    """A task as a named bundle of pure functions over `EnvState` for a single environment.

    Attributes:
      name: registry name.
      config: the task's frozen config.
      reset: key -> EnvState, with the task's reset noise.
      reset_to: (key, qpos (nq,), qvel (nv,)) -> EnvState at exactly that configuration.
      step: (EnvState, action (action_size,)) -> EnvState with truncation and autoreset.
      step_without_reset: one control step with neither truncation nor autoreset;
        `done` is termination alone (for wrappers that do their own, such as brax's).
      observation_size, action_size: vector sizes.
      dt: control step in seconds.
      episode_length: steps after which an episode is truncated.
      sim: the loaded model (`jaxhum.sim.SimModel`).
      observation_layout: (term name, size) of each slice of one observation frame, in order;
        sizes add up to the frame size, observation_size / observation_history (what an exported
        policy's robot loop needs to build the vector).
      observation_history: H, frames in an observation: the last H frames, newest first (the
        episode's first frame fills the slots before it); 1 (the default) is the frame alone.
      robot: the `jaxhum.robots.Robot` record of tasks on one of our robots, else None.
      deploy: how to run the task's policy outside JAX (`DeploySpec`); None if the task has
        not described it (export and sim-to-sim then refuse it).
      critic_observation_size: size of `state.critic_obs`, the privileged observation an
        asymmetric critic reads; 0 when the task has none (the critic then reads `obs`).
      fresh_starts: a trainer should call `refresh_starts` once per iteration so that every
        episode starts from a newly drawn reset (False keeps brax's behaviour: an env restores
        the same start at every autoreset).
      curriculum: names of the curriculum levels the task reads from
        `state.info['curriculum'][name]` (() float32 in [0, 1]; its `reset` sets them); a
        trainer writes the current levels there before each rollout. () for none.
    """

    name: str
    config: Any
    reset: Callable[[jax.Array], EnvState]
    reset_to: Callable[[jax.Array, jax.Array, jax.Array], EnvState]
    step: Callable[[EnvState, jax.Array], EnvState]
    step_without_reset: Callable[[EnvState, jax.Array], EnvState]
    observation_size: int
    action_size: int
    dt: float
    episode_length: int
    sim: Any
    observation_layout: tuple[tuple[str, int], ...] = ()
    observation_history: int = 1
    robot: Any = None
    deploy: DeploySpec | None = None
    critic_observation_size: int = 0
    fresh_starts: bool = False
    curriculum: tuple[str, ...] = ()


def refresh_starts(env: Env, state: EnvState, key: jax.Array) -> EnvState:
    """`state` (batched, leading axis N) whose next autoresets start from fresh draws of `env.reset`.

    Only the stored start changes (`first_*`); episodes under way go on untouched.
    """
    n = state.reward.shape[0]
    fresh = jax.vmap(env.reset)(jax.random.split(key, n))
    return state.replace(
        first_data=fresh.first_data,
        first_obs=fresh.first_obs,
        first_critic_obs=fresh.first_critic_obs,
        first_info=fresh.first_info,
    )


def nonfinite(data: mjx.Data, obs: jax.Array, critic_obs: jax.Array, reward: jax.Array) -> jax.Array:
    """() float32: 1.0 if qpos, qvel, obs, critic_obs or reward holds a NaN or an infinity.

    NaN spreads through the dynamics into qpos/qvel within a step, so these few arrays suffice.
    """
    parts = (data.qpos, data.qvel, obs, critic_obs, reward)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in parts]))
    return 1.0 - finite.astype(jnp.float32)


def with_autoreset(
    step_without_reset: Callable[[EnvState, jax.Array], EnvState], episode_length: int
) -> Callable[[EnvState, jax.Array], EnvState]:
    """Wraps a one-env step with episode truncation at `episode_length` and automatic reset.

    On a step that ends an episode the returned state keeps `reward`, `done`, `truncated`,
    `final_obs`, `final_critic_obs` and `metrics` of that step, while `data`, `obs`,
    `critic_obs`, `info`, `step_count` and `last_action` start the next episode from the stored
    start (`first_*`).

    A step whose result is non-finite (`nonfinite`) is terminated and reset at once; its
    `reward` is 0, its `metrics` are 0 but `metrics['nonfinite'] = 1`, and its `final_obs` /
    `final_critic_obs` are the start's, so the step carries no NaN or inf out. Finite steps are
    untouched bit for bit.
    """

    def step(state: EnvState, action: jax.Array) -> EnvState:
        nxt = step_without_reset(state, action)
        bad_flag = nonfinite(nxt.data, nxt.obs, nxt.critic_obs, nxt.reward)
        bad = bad_flag > 0.0
        clean = lambda x: jnp.where(bad, jnp.zeros_like(x), x)  # noqa: E731
        metrics = {**jax.tree.map(clean, dict(nxt.metrics)), NONFINITE: bad_flag}
        nxt = nxt.replace(
            reward=clean(nxt.reward),
            final_obs=jnp.where(bad, nxt.first_obs, nxt.final_obs),
            final_critic_obs=jnp.where(bad, nxt.first_critic_obs, nxt.final_critic_obs),
            metrics=metrics,
        )
        terminated = jnp.where(bad, 1.0, nxt.done).astype(jnp.float32)
        truncated = jnp.where(
            (nxt.step_count >= episode_length) & (terminated == 0.0), 1.0, 0.0
        ).astype(jnp.float32)
        done = jnp.maximum(terminated, truncated)
        ended = done > 0.0

        def pick(fresh: jax.Array, current: jax.Array) -> jax.Array:
            return jnp.where(ended, fresh, current)

        return nxt.replace(
            data=jax.tree.map(pick, nxt.first_data, nxt.data),
            obs=pick(nxt.first_obs, nxt.obs),
            critic_obs=pick(nxt.first_critic_obs, nxt.critic_obs),
            info=jax.tree.map(pick, nxt.first_info, nxt.info),
            step_count=jnp.where(ended, 0, nxt.step_count).astype(jnp.int32),
            last_action=pick(jnp.zeros_like(nxt.last_action), nxt.last_action),
            done=done,
            truncated=truncated,
        )

    return step
