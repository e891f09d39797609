"""Reward and cost terms, one small pure function each, and their weighted sum.

Every term takes keyword-only arguments named after quantities a task computes in its step
(`com_before`, `ctrl`, `dt`, ...) and returns a scalar. A task declares which terms it uses
and their default weights; `weighted_sum` calls each term with the quantities it names,
skips zero-weight terms at trace time and reports every active term, already multiplied by
its weight, as `reward/<name>` so the logged terms add up to the reward.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp

RewardTerm = Callable[..., jax.Array]


def forward_velocity(*, com_before: jax.Array, com_after: jax.Array, dt: float) -> jax.Array:
    """x-velocity of the whole-body centre of mass over one control step.

    Args:
      com_before: (3,) centre of mass at the start of the step.
      com_after: (3,) centre of mass at the end of the step.
      dt: control step (s).
    Returns:
      () (com_after.x - com_before.x) / dt, in m/s.
    """
    chex.assert_shape([com_before, com_after], (3,))
    return (com_after[0] - com_before[0]) / dt


def alive() -> jax.Array:
    """1 on every step, terminating ones included (brax's `healthy_reward` with termination on)."""
    return jnp.ones((), jnp.float32)


def healthy(*, is_healthy: jax.Array) -> jax.Array:
    """1 while the robot is healthy, else 0 (for tasks that do not terminate when unhealthy)."""
    chex.assert_rank(is_healthy, 0)
    return is_healthy.astype(jnp.float32)


def ctrl_l2(*, ctrl: jax.Array) -> jax.Array:
    """Squared norm of the actuator controls, sum_i ctrl_i^2, for ctrl (nu,). Weight it negatively."""
    chex.assert_rank(ctrl, 1)
    return jnp.sum(jnp.square(ctrl))


def action_rate_l2(*, action: jax.Array, last_action: jax.Array) -> jax.Array:
    """Squared change of the policy action between steps, sum_i (a_i - a_prev_i)^2 (both (nu,))."""
    chex.assert_equal_shape([action, last_action])
    return jnp.sum(jnp.square(action - last_action))


def check_weights(terms: Mapping[str, RewardTerm], weights: Mapping[str, float], *, field: str = "reward_weights") -> None:
    """Raises ValueError naming `field` if `weights` names a term that is not in `terms`."""
    unknown = sorted(set(weights) - set(terms))
    if unknown:
        raise ValueError(f"{field}: unknown reward term(s) {unknown}; known terms: {sorted(terms)}")
    for name, w in weights.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool):
            raise ValueError(f"{field}.{name}: weight must be a number, got {w!r}")


def _needed_kwargs(fn: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(
        name
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    )


def call_term(fn: Callable[..., jax.Array], context: Mapping[str, Any]) -> jax.Array:
    """Calls `fn` with the entries of `context` it names as keyword-only arguments."""
    names = _needed_kwargs(fn)
    missing = [n for n in names if n not in context]
    if missing:
        raise ValueError(f"term {fn.__name__} needs {missing}, which the task does not provide; it provides {sorted(context)}")
    return fn(**{n: context[n] for n in names})


def weighted_sum(
    terms: Mapping[str, RewardTerm], weights: Mapping[str, float], context: Mapping[str, Any]
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Returns (sum_k w_k * term_k(context), {'reward/<k>': w_k * term_k}) over non-zero weights.

    Terms with a zero (or absent) weight are never called, so they cost nothing in the trace.
    """
    total = jnp.zeros((), jnp.float32)
    metrics = {}
    for name, fn in terms.items():
        w = float(weights.get(name, 0.0))
        if w == 0.0:
            continue
        value = w * call_term(fn, context).astype(jnp.float32)
        chex.assert_rank(value, 0)
        metrics[f"reward/{name}"] = value
        total = total + value
    return total, metrics


# ----------------------------------------------------------------------------- robot terms


def torso_x_velocity(*, root_linvel: jax.Array) -> jax.Array:
    """World-frame x-velocity of the robot's root body (the pelvis), m/s, for root_linvel (3,)."""
    chex.assert_shape(root_linvel, (3,))
    return root_linvel[0]


def upright_bonus(*, torso_height: jax.Array, upright_height: float) -> jax.Array:
    """+1 while the torso (root) is above `upright_height` (m), -10 when at or below it."""
    chex.assert_rank(torso_height, 0)
    return jnp.where(torso_height > upright_height, 1.0, -10.0).astype(jnp.float32)


def action_l2(*, action: jax.Array) -> jax.Array:
    """Squared norm of the policy action, sum_i a_i^2 for a (A,) in [-1, 1]. Weight it negatively."""
    chex.assert_rank(action, 1)
    return jnp.sum(jnp.square(action))


def tilt(*, roll: jax.Array, pitch: jax.Array) -> jax.Array:
    """-(|roll| + |pitch|) of the torso, in radians: 0 when level, negative when tilted."""
    chex.assert_rank([roll, pitch], 0)
    return -(jnp.abs(roll) + jnp.abs(pitch))
