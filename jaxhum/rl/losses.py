"""Generalised advantage estimation with truncation bootstrap, and the clipped PPO objective.

Both are written for one trajectory / one flat batch; vmap at the call site.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class _GAECarry:
    advantage: jax.Array  # () A_{t+1}, the advantage of the step after the current one


def gae(
    r_t: jax.Array,
    v_t: jax.Array,
    v_next_t: jax.Array,
    terminated_t: jax.Array,
    done_t: jax.Array,
    *,
    gamma: float,
    lam: float,
) -> tuple[jax.Array, jax.Array]:
    """GAE(gamma, lambda) for one time-major trajectory of T steps that may span episodes.

    delta_t = r_t + gamma * (1 - terminated_t) * v_next_t - v_t
    A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},   A_T = 0
    target_t = A_t + v_t

    ``v_next_t`` is V of the observation reached after step t *before* any autoreset
    (``EnvState.final_obs``), so a step that ended by the time limit (truncated: done, not
    terminated) still bootstraps from the state it reached, while a terminated step does not.
    ``done_t`` cuts the recursion at every episode boundary, so advantages never leak across
    an autoreset. Past the horizon, A_T = 0 leaves the last step with its one-step TD error,
    which bootstraps from v_next.

    Args:
      r_t: (T,) rewards.
      v_t: (T,) V(obs_t).
      v_next_t: (T,) V(final_obs_t).
      terminated_t: (T,) 1.0 where the episode ended by termination at step t.
      done_t: (T,) 1.0 where the episode ended (terminated or truncated) at step t.
      gamma: discount.
      lam: GAE lambda.

    Returns:
      (advantages (T,), value targets (T,)), both with stopped gradients.
    """
    chex.assert_rank([r_t, v_t, v_next_t, terminated_t, done_t], 1)
    chex.assert_equal_shape([r_t, v_t, v_next_t, terminated_t, done_t])
    delta_t = r_t + gamma * (1.0 - terminated_t) * v_next_t - v_t
    continue_t = gamma * lam * (1.0 - done_t)

    def step(carry: _GAECarry, xs: tuple[jax.Array, jax.Array]) -> tuple[_GAECarry, jax.Array]:
        delta, cont = xs
        advantage = delta + cont * carry.advantage
        return _GAECarry(advantage=advantage), advantage

    init = _GAECarry(advantage=jnp.zeros((), delta_t.dtype))
    _, advantages = jax.lax.scan(step, init, (delta_t, continue_t), reverse=True)
    advantages = jax.lax.stop_gradient(advantages)
    targets = jax.lax.stop_gradient(advantages + v_t)
    return advantages, targets


def ppo_objective(
    *,
    log_prob: jax.Array,
    old_log_prob: jax.Array,
    advantages: jax.Array,
    values: jax.Array,
    value_targets: jax.Array,
    entropy: jax.Array,
    clip_epsilon: float,
    entropy_cost: float,
    value_loss_coef: float,
    normalize_advantage: bool = True,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped PPO loss over a flat batch of B samples.

    ratio_i       = exp(log_prob_i - old_log_prob_i)
    A_i           = advantages_i, or (A_i - mean A) / (std A + 1e-8) if normalize_advantage
    policy_loss   = -mean_i min(ratio_i A_i, clip(ratio_i, 1 - eps, 1 + eps) A_i)
    value_loss    = 0.5 * mean_i (values_i - value_targets_i)^2
    entropy       = mean_i entropy_i
    total         = policy_loss + value_loss_coef * value_loss - entropy_cost * entropy

    Args:
      log_prob: (B,) log pi(a_i | s_i) under the parameters being optimised.
      old_log_prob: (B,) log-prob under the behaviour policy that produced the data.
      advantages: (B,) advantage estimates (treated as constants).
      values: (B,) V(s_i) under the parameters being optimised.
      value_targets: (B,) regression targets (treated as constants).
      entropy: (B,) per-sample policy entropy (estimate).
      clip_epsilon, entropy_cost, value_loss_coef: scalars as in the equations.
      normalize_advantage: standardise advantages over this batch.

    Returns:
      (total loss (), metrics) with metrics policy_loss, value_loss, entropy, approx_kl
      (mean of (ratio - 1) - log ratio, an unbiased, non-negative estimator of KL(old || new)),
      clip_fraction (share of samples with |ratio - 1| > eps) and total_loss.
    """
    chex.assert_rank([log_prob, old_log_prob, advantages, values, value_targets, entropy], 1)
    chex.assert_equal_shape([log_prob, old_log_prob, advantages, values, value_targets, entropy])
    advantages = jax.lax.stop_gradient(advantages)
    value_targets = jax.lax.stop_gradient(value_targets)
    old_log_prob = jax.lax.stop_gradient(old_log_prob)
    if normalize_advantage:
        advantages = (advantages - jnp.mean(advantages)) / (jnp.std(advantages) + 1e-8)

    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon) * advantages
    policy_loss = -jnp.mean(jnp.minimum(unclipped, clipped))
    value_loss = 0.5 * jnp.mean(jnp.square(values - value_targets))
    mean_entropy = jnp.mean(entropy)
    total = policy_loss + value_loss_coef * value_loss - entropy_cost * mean_entropy

    metrics = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": mean_entropy,
        "approx_kl": jax.lax.stop_gradient(jnp.mean((ratio - 1.0) - log_ratio)),
        "clip_fraction": jax.lax.stop_gradient(
            jnp.mean((jnp.abs(ratio - 1.0) > clip_epsilon).astype(jnp.float32))
        ),
        "total_loss": total,
    }
    return total, metrics
