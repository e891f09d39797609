"""Curriculum: task difficulty levels that follow measured performance, as pure functions.

A task declares curriculum names (`Env.curriculum`, e.g. `("command", "push")`) and reads each
name's level, a () float32 in [0, 1], from `state.info['curriculum'][name]` (scaling its command
ranges or push magnitude by it). The trainer keeps the levels in `TrainState.curriculum` (so
they are checkpointed and a resumed run continues exactly), writes them into every env before
each rollout (`apply`) and moves them after each iteration with `update`:

    measured = metrics[config.metric]                       (this iteration's training metrics)
    level'   = min(level + step, 1)   if measured >= promote_above
               max(level - step, 0)   if measured <  demote_below
               level                  otherwise, or when no episode finished this iteration

Levels are data, not shapes: changing them never recompiles. A task that declares no names has
an empty curriculum state (no leaves, nothing written, nothing logged): training is bit for bit
what it is without this module.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

INFO_KEY = "curriculum"  # state.info[INFO_KEY][name]: () float32 level of one env
LOG_PREFIX = "curriculum/"
# The iteration metric that says whether any episode ended (levels hold when none did).
_FINISHED = "train/episodes_finished"


@dataclasses.dataclass(frozen=True)
class CurriculumConfig:
    """How curriculum levels move (used only by tasks that declare `Env.curriculum` names).

    Attributes:
      metric: the training metric that measures performance, one the PPO iteration reports:
        'train/episode_length', 'train/episode_reward' or 'train/mean_reward_per_step'.
      promote_above: a level grows by `step` after an iteration whose metric is >= this.
      demote_below: a level shrinks by `step` after an iteration whose metric is < this
        (<= promote_above; between the two the level holds).
      step: how much a level moves per iteration, in (0, 1].
      initial_level: every level at the start of training, in [0, 1].
    """

    metric: str = "train/episode_length"
    promote_above: float = 400.0
    demote_below: float = 100.0
    step: float = 0.05
    initial_level: float = 0.0

    def validate(self) -> None:
        """Raises ValueError('field: constraint, got value') for the first invalid field."""
        if self.metric not in METRICS:
            raise ValueError(f"curriculum.metric: must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if not 0.0 < self.step <= 1.0:
            raise ValueError(f"curriculum.step: must be in (0, 1], got {self.step!r}")
        if not 0.0 <= self.initial_level <= 1.0:
            raise ValueError(f"curriculum.initial_level: must be in [0, 1], got {self.initial_level!r}")
        if not self.demote_below <= self.promote_above:
            raise ValueError(f"curriculum.demote_below: must be <= promote_above = {self.promote_above}, "
                             f"got {self.demote_below!r}")


METRICS = ("train/episode_length", "train/episode_reward", "train/mean_reward_per_step")


@struct.dataclass
class CurriculumState:
    """The current level of each curriculum name; {} when the task declares none."""

    levels: dict[str, jax.Array]  # name -> () float32 in [0, 1]


def init(config: CurriculumConfig, names: tuple[str, ...]) -> CurriculumState:
    """Every name at `config.initial_level`."""
    return CurriculumState(levels={n: jnp.asarray(config.initial_level, jnp.float32) for n in names})


def update(config: CurriculumConfig, state: CurriculumState, metrics: dict[str, jax.Array]) -> CurriculumState:
    """The levels after an iteration whose training metrics are `metrics` (see module docstring).

    Pure and jittable; `functools.partial(update, config)` is `update(state, metrics)`.
    """
    if not state.levels:
        return state
    measured = metrics[config.metric]
    finished = metrics.get(_FINISHED, jnp.ones(()))
    move = jnp.where(measured >= config.promote_above, config.step,
                     jnp.where(measured < config.demote_below, -config.step, 0.0))
    move = jnp.where(finished > 0, move, 0.0).astype(jnp.float32)
    return CurriculumState(levels={n: jnp.clip(v + move, 0.0, 1.0) for n, v in state.levels.items()})


def apply(env_state: Any, state: CurriculumState) -> Any:
    """`env_state` (batched, leading axis N) with every env's levels set in `info` and `first_info`.

    The autoresets of the coming rollout restore `first_info`, so new episodes use them too.
    """
    if not state.levels:
        return env_state
    n = env_state.reward.shape[0]

    def write(info: dict[str, Any]) -> dict[str, Any]:
        levels = {k: jnp.broadcast_to(v, (n,)).astype(info[INFO_KEY][k].dtype) for k, v in state.levels.items()}
        return {**info, INFO_KEY: {**info[INFO_KEY], **levels}}

    return env_state.replace(info=write(env_state.info), first_info=write(env_state.first_info))


def log(state: CurriculumState) -> dict[str, jax.Array]:
    """{'curriculum/<name>': level} for the iteration metrics."""
    return {f"{LOG_PREFIX}{n}": v for n, v in state.levels.items()}


def check_env(env: Any) -> tuple[str, ...]:
    """The env's curriculum names, after checking its reset provides each level.

    Raises:
      ValueError: `curriculum: ...` when `env.reset` does not put a () float level for every
        declared name in `state.info['curriculum']` (traced with `jax.eval_shape`; nothing runs).
    """
    names = tuple(getattr(env, "curriculum", ()) or ())
    if not names:
        return ()
    if len(set(names)) != len(names):
        raise ValueError(f"curriculum: names must be unique, got {names}")
    state = jax.eval_shape(env.reset, jax.random.key(0))
    provided = getattr(state, "info", {}).get(INFO_KEY, {})
    for name in names:
        leaf = provided.get(name)
        if leaf is None or leaf.shape != () or not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise ValueError(f"curriculum: task {getattr(env, 'name', '?')} declares {name!r} but its reset "
                             f"does not put a () float level in state.info['{INFO_KEY}']['{name}']")
    return names

