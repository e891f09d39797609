"""On-device evaluation of a deterministic policy on separate evaluation environments.

``num_eval_envs`` envs are reset from their own keys and stepped in one ``lax.while_loop`` until
each has finished its first episode (at most ``env.episode_length`` steps, when truncation ends
it). The envs autoreset, so each env's first episode is the one that counts: a mask switches off
after its first ``done``; every env contributes exactly one complete episode.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import struct

REWARD_PREFIX = "reward/"
TRACKING_PREFIX = "tracking/"  # a command task's per-step tracking error ('tracking/vx', ...)
# A step metric whose largest value in an episode the robot survived is reported as a max over
# the eval envs: the push a task applied (jaxhum.envs.terms.randomization) -> eval/max_push_survived.
SURVIVED_MAX = {"push_magnitude": "max_push_survived"}


class Env(Protocol):
    """The env interface rl/ relies on (see jaxhum.envs)."""

    observation_size: int
    action_size: int
    episode_length: int

    def reset(self, key: jax.Array) -> Any: ...

    def step(self, state: Any, action: jax.Array) -> Any: ...


PolicyFn = Callable[[Any, jax.Array, "jax.Array | None"], jax.Array]


@struct.dataclass
class _EvalCarry:
    env_state: Any  # batched EnvState, leading dim num_eval_envs
    active: jax.Array  # (N,) float32, 1.0 until the env's first episode has ended
    episode_return: jax.Array  # (N,) float32, sum of rewards of the first episode
    episode_length: jax.Array  # (N,) float32, steps of the first episode
    reward_terms: dict[str, jax.Array]  # 'reward/<term>' -> (N,) episode sum of that term
    task_metrics: dict[str, jax.Array]  # other env metrics (e.g. 'x_velocity') -> (N,) episode sum
    fell: jax.Array  # (N,) float32, 1.0 if the first episode ended by termination (not the time limit)
    peaks: dict[str, jax.Array]  # metric in SURVIVED_MAX -> (N,) its largest value in the first episode


def make_evaluator(
    env: Env,
    policy_fn: PolicyFn,
    num_eval_envs: int,
) -> Callable[[Any, jax.Array], dict[str, jax.Array]]:
    """Builds ``evaluate(policy_params, key) -> metrics`` (pure; jit it at the call site).

    Args:
      env: the environment (reset/step/episode_length).
      policy_fn: ``policy_fn(policy_params, obs (N, obs_size), None) -> action (N, action_size)``;
        a ``None`` key asks for the deterministic action.
      num_eval_envs: number N of evaluation environments.

    The returned function takes ``key``, used only to reset the N envs (one split per env); it
    never touches a training key. Metrics (scalars): eval/episode_reward (mean over envs of the
    first-episode return), eval/episode_reward_std, eval/episode_length (mean), eval/fall_rate
    (share of episodes that ended by termination rather than the time limit), for every
    ``reward/<term>`` in the env metrics ``eval/reward/<term>`` (mean over envs of the episode sum)
    and for every other env metric ``m`` (e.g. ``x_velocity``) ``eval/m`` (mean over envs of the
    per-step average over the episode, e.g. the average forward velocity); a command task's
    per-step tracking error ``tracking/<x>`` is reported that way as ``eval/tracking_error_<x>``
    (e.g. eval/tracking_error_vx, the mean absolute forward-velocity error in m/s); for a metric
    in ``SURVIVED_MAX`` (``push_magnitude``) also its largest value in an episode that did not
    fall, max over envs (``eval/max_push_survived``; 0 when every pushed episode fell).
    """

    def evaluate(policy_params: Any, key: jax.Array) -> dict[str, jax.Array]:
        env_state = jax.vmap(env.reset)(jax.random.split(key, num_eval_envs))
        zeros = jnp.zeros((num_eval_envs,), jnp.float32)
        names = [k for k in env_state.metrics if k.startswith(REWARD_PREFIX)]
        others = [k for k in env_state.metrics if not k.startswith(REWARD_PREFIX)]
        carry = _EvalCarry(
            env_state=env_state,
            active=jnp.ones((num_eval_envs,), jnp.float32),
            episode_return=zeros,
            episode_length=zeros,
            reward_terms={name: zeros for name in names},
            task_metrics={name: zeros for name in others},
            fell=zeros,
            peaks={name: zeros for name in others if name in SURVIVED_MAX},
        )
        step = functools.partial(_eval_step, env, policy_fn, policy_params)
        # Stop as soon as every env's first episode has ended: early in training, when episodes
        # are short, an evaluation then costs a fraction of episode_length steps.
        carry = jax.lax.while_loop(lambda c: jnp.any(c.active > 0.0), step, carry)
        metrics = {
            "eval/episode_reward": jnp.mean(carry.episode_return),
            "eval/episode_reward_std": jnp.std(carry.episode_return),
            "eval/episode_length": jnp.mean(carry.episode_length),
            "eval/fall_rate": jnp.mean(carry.fell),
        }
        for name, total in carry.reward_terms.items():
            metrics[f"eval/{name}"] = jnp.mean(total)
        for name, total in carry.task_metrics.items():
            metrics[f"eval/{_eval_name(name)}"] = jnp.mean(total / jnp.maximum(carry.episode_length, 1.0))
        for name, peak in carry.peaks.items():
            metrics[f"eval/{SURVIVED_MAX[name]}"] = jnp.max(peak * (1.0 - carry.fell))
        return metrics

    return evaluate


def _eval_name(metric: str) -> str:
    """'tracking/vx' -> 'tracking_error_vx'; other metric names are kept."""
    if metric.startswith(TRACKING_PREFIX):
        return "tracking_error_" + metric[len(TRACKING_PREFIX):]
    return metric


def _eval_step(env: Env, policy_fn: PolicyFn, policy_params: Any, carry: _EvalCarry) -> _EvalCarry:
    """One deterministic step of all eval envs; accumulates only while the first episode runs."""
    action = policy_fn(policy_params, carry.env_state.obs, None)
    env_state = jax.vmap(env.step)(carry.env_state, action)
    active = carry.active
    terms = {
        name: total + active * env_state.metrics[name] for name, total in carry.reward_terms.items()
    }
    task_metrics = {
        name: total + active * env_state.metrics[name] for name, total in carry.task_metrics.items()
    }
    new = _EvalCarry(
        env_state=env_state,
        # done marks the step that ended the episode; that step's reward still counts.
        active=active * (1.0 - env_state.done),
        episode_return=carry.episode_return + active * env_state.reward,
        episode_length=carry.episode_length + active,
        reward_terms=terms,
        task_metrics=task_metrics,
        # done and truncated, not EnvState.terminated: any env state with those two fields works here.
        fell=carry.fell + active * env_state.done * (1.0 - env_state.truncated),
        peaks={name: jnp.where(active > 0.0, jnp.maximum(peak, env_state.metrics[name]), peak)
               for name, peak in carry.peaks.items()},
    )
    return new
