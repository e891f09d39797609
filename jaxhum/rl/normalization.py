"""Running observation normalisation as pure functions (after brax/acme ``running_statistics``).

The statistics are part of the learner state (``TrainState.normalizer``) and of the policy
parameters handed to evaluation and export: a policy is meaningless without them.

Update rule (Chan et al.'s parallel algorithm, exact for any batch split): for a batch x_1..x_m
  count'   = count + m
  mean'    = mean + sum_j (x_j - mean) / count'
  summed'  = summed + sum_j (x_j - mean) * (x_j - mean')
  std'     = clip(sqrt(summed' / count'), std_min, std_max)
so ``summed / count`` is the (population) variance of every observation seen so far.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from flax import struct

STD_MIN = 1e-6
STD_MAX = 1e6
CLIP = 5.0


@struct.dataclass
class RunningStats:
    """Running mean and variance of observations.

    ``count`` is float32: an int32 count would overflow after 2^31 observations, and float32 only
    loses relative precision ~1e-7 in the mean update.
    """

    count: jax.Array  # () float32, observations seen so far
    mean: jax.Array  # (size,) float32
    summed_variance: jax.Array  # (size,) float32, sum of squared deviations (M2)
    std: jax.Array  # (size,) float32, clipped sqrt(summed_variance / count); 1 before any update


def init(size: int) -> RunningStats:
    """Empty statistics for observations of shape (size,): normalize() is then (obs - 0) / 1."""
    return RunningStats(
        count=jnp.zeros((), jnp.float32),
        mean=jnp.zeros((size,), jnp.float32),
        summed_variance=jnp.zeros((size,), jnp.float32),
        std=jnp.ones((size,), jnp.float32),
    )


def update(
    stats: RunningStats,
    batch: jax.Array,
    *,
    std_min: float = STD_MIN,
    std_max: float = STD_MAX,
) -> RunningStats:
    """Folds a batch of observations (..., size) (any number of leading batch dims) into stats."""
    size = stats.mean.shape[-1]
    chex.assert_axis_dimension(batch, -1, size)
    x = jnp.reshape(batch, (-1, size)).astype(jnp.float32)
    count = stats.count + x.shape[0]
    diff_to_old_mean = x - stats.mean
    mean = stats.mean + jnp.sum(diff_to_old_mean, axis=0) / count
    diff_to_new_mean = x - mean
    summed_variance = stats.summed_variance + jnp.sum(diff_to_old_mean * diff_to_new_mean, axis=0)
    # Rounding can make summed_variance a hair negative when a feature is constant.
    summed_variance = jnp.maximum(summed_variance, 0.0)
    std = jnp.clip(jnp.sqrt(summed_variance / count), std_min, std_max)
    return RunningStats(count=count, mean=mean, summed_variance=summed_variance, std=std)


def normalize(stats: RunningStats, obs: jax.Array, *, clip: float | None = CLIP) -> jax.Array:
    """(obs - mean) / std, clipped to [-clip, clip] (no clipping when clip is None).

    obs (..., size) -> (..., size). Clipping bounds the input the networks see when a rare state
    lies far outside the statistics gathered so far.
    """
    chex.assert_axis_dimension(obs, -1, stats.mean.shape[-1])
    z = (obs - stats.mean) / stats.std
    if clip is not None:
        z = jnp.clip(z, -clip, clip)
    return z


def denormalize(stats: RunningStats, z: jax.Array) -> jax.Array:
    """Inverse of normalize without clipping: z * std + mean. (..., size) -> (..., size)."""
    return z * stats.std + stats.mean
