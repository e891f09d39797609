"""Evaluation of a trained policy on its task: per-episode statistics, computed on the device.

`make_episode_evaluator(env, policy_fn, num_episodes)` runs `num_episodes` environments, one
episode each, from their own reset keys, in one `lax.while_loop` that stops when every episode
has ended (terminated, or truncated at `env.episode_length`). It steps with
`env.step_without_reset`, so the physics state of an ended episode is never replaced by a reset
and its distance is measured on the data that ended it. `summarize` turns the per-episode
arrays into the report's figures on the host.

Only generic env facts are used: `state.data` (qpos, qvel, qfrc_actuator, subtree_com),
`state.done`, `state.metrics`, `env.dt`, `env.sim.mj_model` (masses). Metrics named
`tracking/<name>` (a command task's tracking error at each step) are averaged per episode; an
env attribute `tracking_bounds` ({name: bound}) makes an episode successful only if every mean
tracking error stays within its bound.

Mechanical work is `sum_t sum_i |qfrc_actuator_i * qvel_i| * dt`, the absolute power of the
actuator forces in joint space at each control step (equal to |actuator force * actuator
velocity| for actuators that each drive one joint, which is what both robots have); negative
work is counted as a cost too (no regeneration). Cost of transport = work / (m g d).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

TRACKING_PREFIX = "tracking/"
GRAVITY = 9.81  # m/s^2, for the cost of transport

PolicyFn = Callable[[Any, jax.Array], jax.Array]  # (params, obs (N, obs_size)) -> action (N, A)


@struct.dataclass
class EpisodeStats:
    """Per-episode results, each (N,) for N episodes (float32 unless said)."""

    episode_return: jax.Array  # sum of rewards
    length: jax.Array  # control steps taken
    terminated: jax.Array  # 1.0 if the episode ended by termination (a fall), 0.0 if truncated
    distance: jax.Array  # m, whole-body com displacement along +x
    work: jax.Array  # J, sum of |qfrc_actuator * qvel| * dt
    nonfinite: jax.Array  # 1.0 if a reward or the physics state became NaN/inf in the episode
    tracking: dict[str, jax.Array]  # 'tracking/<name>' -> mean tracking error over the episode


@struct.dataclass
class _Carry:
    env_state: Any  # batched EnvState (N,)
    active: jax.Array  # (N,) 1.0 while the episode runs
    stats: EpisodeStats


def make_episode_evaluator(
    env: Any, policy_fn: PolicyFn, num_episodes: int
) -> Callable[[Any, jax.Array], EpisodeStats]:
    """Builds `evaluate(params, key) -> EpisodeStats` (pure; jit it at the call site).

    Args:
      env: a `jaxhum.envs.Env`.
      policy_fn: `(params, obs (N, obs_size)) -> action (N, action_size)` in [-1, 1].
      num_episodes: N, the episodes (and parallel envs) to run.
    `key` only resets the N envs (one split each).
    """
    if num_episodes <= 0:
        raise ValueError(f"episodes: must be a positive integer, got {num_episodes}")

    def evaluate(params: Any, key: jax.Array) -> EpisodeStats:
        state = jax.vmap(env.reset)(jax.random.split(key, num_episodes))
        zeros = jnp.zeros((num_episodes,), jnp.float32)
        names = sorted(k for k in state.metrics if k.startswith(TRACKING_PREFIX))
        stats = EpisodeStats(zeros, zeros, zeros, zeros, zeros, zeros, {n: zeros for n in names})
        carry = _Carry(env_state=state, active=jnp.ones_like(zeros), stats=stats)
        body = functools.partial(_step, env, policy_fn, params)
        carry = jax.lax.while_loop(lambda c: jnp.any(c.active > 0.0), body, carry)
        s = carry.stats
        # Tracking errors were summed per step; report the per-episode mean.
        return s.replace(tracking={n: v / jnp.maximum(s.length, 1.0) for n, v in s.tracking.items()})

    return evaluate


def _step(env: Any, policy_fn: PolicyFn, params: Any, carry: _Carry) -> _Carry:
    """One control step of every env; results accumulate only while its episode runs."""
    state, active, s = carry.env_state, carry.active, carry.stats
    chex.assert_rank(active, 1)
    action = policy_fn(params, state.obs)
    nxt = jax.vmap(env.step_without_reset)(state, action)
    steps = nxt.step_count.astype(jnp.float32)
    truncated = (steps >= env.episode_length) & (nxt.done == 0.0)
    ended = (nxt.done > 0.0) | truncated
    data = nxt.data
    dx = data.subtree_com[:, 0, 0] - state.data.subtree_com[:, 0, 0]
    power = jnp.sum(jnp.abs(data.qfrc_actuator * data.qvel), axis=-1)
    finite = jnp.isfinite(nxt.reward) & jnp.all(jnp.isfinite(data.qpos), axis=-1)
    on = active > 0.0

    def add(total: jax.Array, value: jax.Array) -> jax.Array:
        # where, not a product with the mask: a fallen env stepped on may produce NaN.
        return jnp.where(on, total + value, total)

    s = EpisodeStats(
        episode_return=add(s.episode_return, nxt.reward),
        length=add(s.length, 1.0),
        terminated=jnp.where(on, nxt.done, s.terminated),
        distance=add(s.distance, dx),
        work=add(s.work, power * env.dt),
        nonfinite=jnp.where(on & ~finite, 1.0, s.nonfinite),
        tracking={n: add(v, nxt.metrics[n]) for n, v in s.tracking.items()},
    )
    active = jnp.where(ended | ~finite, 0.0, active)
    return _Carry(env_state=nxt, active=active, stats=s)


def total_mass(env: Any) -> float:
    """kg, the sum of the model's body masses."""
    return float(np.sum(env.sim.mj_model.body_mass))


def summarize(
    stats: EpisodeStats, *, dt: float, mass: float, tracking_bounds: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """The report's figures (plain floats) from per-episode stats.

    forward_velocity: total +x distance / total time (m/s), over all episodes; success_rate:
    share of episodes not terminated (and within every tracking bound); fall_rate: share of
    episodes that terminated (fell); work_per_metre: total
    work / total distance (J/m; None when the robot did not move forward); cost_of_transport:
    work / (m g d); episode_return / episode_length: mean and std; tracking/<name>: mean.
    """
    s = jax.device_get(stats)
    bounds = dict(tracking_bounds or {})
    success = np.asarray(s.terminated) == 0.0
    for name, value in s.tracking.items():
        key = name[len(TRACKING_PREFIX):]
        if key in bounds:
            success &= np.asarray(value) <= bounds[key]
    distance = float(np.sum(s.distance))
    time = float(np.sum(s.length)) * dt
    work = float(np.sum(s.work))
    moved = distance > 1e-6
    report: dict[str, Any] = {
        "episodes": int(np.size(s.length)),
        "forward_velocity": distance / time,
        "success_rate": float(np.mean(success)),
        "fall_rate": float(np.mean(np.asarray(s.terminated))),
        "work_per_metre": work / distance if moved else None,
        "cost_of_transport": work / (mass * GRAVITY * distance) if moved else None,
        "episode_return": float(np.mean(s.episode_return)),
        "episode_return_std": float(np.std(s.episode_return)),
        "episode_length": float(np.mean(s.length)),
        "episode_length_std": float(np.std(s.length)),
        "distance": distance,
        "work": work,
        "mass": mass,
        "nonfinite_episodes": int(np.sum(s.nonfinite)),
    }
    for name, value in s.tracking.items():
        report[name] = float(np.mean(value))
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in report.items()}


def make_recorder(env: Any, policy_fn: PolicyFn) -> Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]:
    """Builds `record(params, key) -> (qpos (T + 1, nq), ended (T,))` for one episode (jit it).

    T = `env.episode_length`; `qpos[0]` is the reset configuration and `qpos[t + 1]` the one
    after control step t; `ended[t]` is True from the step that ended the episode on (the
    steps after it are a fallen robot stepped on: cut them off, see `episode_frames`).
    """

    def record(params: Any, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        start = env.reset(key)

        def body(state: Any, _: None) -> tuple[Any, tuple[jax.Array, jax.Array]]:
            nxt = env.step_without_reset(state, policy_fn(params, state.obs[None])[0])
            return nxt, (nxt.data.qpos, nxt.done > 0.0)

        _, (qpos, done) = jax.lax.scan(body, start, None, length=env.episode_length)
        return jnp.concatenate([start.data.qpos[None], qpos]), jnp.cumsum(done) > 0

    return record


def episode_frames(qpos: np.ndarray, ended: np.ndarray) -> np.ndarray:
    """The configurations of one recorded episode up to and including the step that ended it."""
    stop = int(np.argmax(ended)) + 1 if np.any(ended) else len(ended)
    return np.asarray(qpos[: stop + 1])
