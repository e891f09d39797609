"""Policy and value networks (Flax linen MLPs) and the tanh-squashed Gaussian policy.

Two separate MLPs, no shared torso: the value net is usually much wider than the policy net
and sharing would couple their learning rates and gradient scales.

Policy distribution: tanh-squashed diagonal Gaussian (the one brax PPO used to reach return
~8000 on the MuJoCo humanoid).

* The policy net outputs ``2 * action_size`` numbers per observation: the Gaussian ``loc`` and a
  pre-softplus scale ``s``; ``std = softplus(s) + MIN_STD``. Softplus keeps std positive with a
  gradient that never explodes (unlike ``exp``), the floor keeps log-probs finite when the policy
  collapses, and making std state-dependent lets the policy be precise where it matters.
* A raw sample ``u ~ N(loc, std)`` is squashed, ``a = tanh(u)``, so every action lies in the env's
  ``[-1, 1]`` box. Clipping a Gaussian instead would put the mass beyond the box on the boundary,
  where the gradient of the log-prob says nothing useful about the clipped action.
* Log-probabilities are taken of the raw ``u`` (stored in the rollout), with the change-of-variables
  term ``log p(a) = log N(u; loc, std) - sum_i log(1 - tanh(u_i)^2)``. Working with ``u`` avoids
  ``atanh(a)``, which is infinite at ``a = +-1`` in float32.
* The squashed distribution has no closed-form entropy. ``H[a] = H[u] + E_u[sum_i log(1 - tanh(u_i)^2)]``
  exactly, so we use the Gaussian entropy plus a one-sample estimate of the log-det term (unbiased,
  and averaged over a minibatch its variance is small). Dropping the log-det term would let the
  entropy bonus grow ``std`` without bound and drive the actions into saturation at +-1; with it,
  saturation is penalised.
* The deterministic (evaluation) action is ``tanh(loc)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

Params = Any

MIN_STD = 1e-3
_LOG_2PI = math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "swish": nn.swish,
    "tanh": nn.tanh,
}

# Compute dtypes of the hidden layers. Parameters, the output layer and everything downstream
# (log-probs, losses, optimiser) stay float32; 'bfloat16' runs the hidden matmuls and activations
# in bfloat16 (mixed precision).
COMPUTE_DTYPES: dict[str, Any] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def get_compute_dtype(name: str) -> Any:
    """Returns the dtype called ``name`` (one of ``COMPUTE_DTYPES``)."""
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype: must be one of {sorted(COMPUTE_DTYPES)}, got {name!r}")
    return COMPUTE_DTYPES[name]


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Returns the activation function called ``name`` (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Fully connected net: Dense -> activation for each hidden layer, then a linear output layer.

    Kernels use LeCun-uniform init and zero biases (brax's choice for these nets). Parameters
    are float32; the hidden layers compute in ``dtype`` and the output layer in float32.
    """

    hidden_sizes: Sequence[int]
    output_size: int
    activation: Callable[[jax.Array], jax.Array] = nn.swish
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = nn.initializers.lecun_uniform()
        for i, size in enumerate(self.hidden_sizes):
            x = self.activation(nn.Dense(size, kernel_init=init, dtype=self.dtype, name=f"hidden_{i}")(x))
        return nn.Dense(self.output_size, kernel_init=init, dtype=jnp.float32, name="output")(x)


class Network(NamedTuple):
    """A network as two pure functions.

    init(key) -> params.
    apply(params, obs (..., obs_size)) -> output (..., output_size) for the policy
      (``2 * action_size`` distribution parameters) or (...,) for the value.
    """

    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]


def make_policy_network(
    obs_size: int,
    action_size: int,
    hidden_sizes: Sequence[int] = (32, 32, 32, 32),
    activation: str = "swish",
    compute_dtype: str = "float32",
) -> Network:
    """Policy MLP: obs (..., obs_size) -> distribution parameters (..., 2 * action_size), float32.

    The output is ``concat([loc, pre_softplus_scale], -1)``; see the module docstring.
    ``compute_dtype``: the hidden layers' dtype (``COMPUTE_DTYPES``).
    """
    module = MLP(tuple(hidden_sizes), 2 * action_size, get_activation(activation),
                 get_compute_dtype(compute_dtype))

    def init(key: jax.Array) -> Params:
        return module.init(key, jnp.zeros((1, obs_size), jnp.float32))

    def apply(params: Params, obs: jax.Array) -> jax.Array:
        chex.assert_axis_dimension(obs, -1, obs_size)
        return module.apply(params, obs)

    return Network(init=init, apply=apply)


def make_value_network(
    obs_size: int,
    hidden_sizes: Sequence[int] = (256, 256, 256, 256, 256),
    activation: str = "swish",
    compute_dtype: str = "float32",
) -> Network:
    """Value MLP: obs (..., obs_size) -> V(obs) (...,), float32; hidden layers in ``compute_dtype``."""
    module = MLP(tuple(hidden_sizes), 1, get_activation(activation), get_compute_dtype(compute_dtype))

    def init(key: jax.Array) -> Params:
        return module.init(key, jnp.zeros((1, obs_size), jnp.float32))

    def apply(params: Params, obs: jax.Array) -> jax.Array:
        chex.assert_axis_dimension(obs, -1, obs_size)
        return jnp.squeeze(module.apply(params, obs), axis=-1)

    return Network(init=init, apply=apply)


# ---------------------------------------------------------------------------------------------
# Tanh-squashed Gaussian over distribution parameters ``dist`` of shape (..., 2 * action_size).


def loc_and_std(dist: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Splits dist (..., 2A) into loc (..., A) and std = softplus(scale) + MIN_STD (..., A)."""
    chex.assert_equal(dist.shape[-1] % 2, 0)
    loc, scale = jnp.split(dist, 2, axis=-1)
    return loc, jax.nn.softplus(scale) + MIN_STD


def tanh_log_det_jacobian(raw_action: jax.Array) -> jax.Array:
    """sum_i log(d tanh(u_i) / d u_i) = sum_i log(1 - tanh(u_i)^2), over the last axis.

    Uses the stable identity log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)).
    raw_action (..., A) -> (...,).
    """
    return jnp.sum(2.0 * (_LOG_2 - raw_action - jax.nn.softplus(-2.0 * raw_action)), axis=-1)


def sample_raw(dist: jax.Array, key: jax.Array) -> jax.Array:
    """Draws the pre-tanh action u ~ N(loc, std): dist (..., 2A) -> u (..., A)."""
    loc, std = loc_and_std(dist)
    return loc + std * jax.random.normal(key, loc.shape, loc.dtype)


def squash(raw_action: jax.Array) -> jax.Array:
    """Maps a raw action u (..., A) to the env action tanh(u) in (-1, 1)."""
    return jnp.tanh(raw_action)


def sample(dist: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Samples an action: dist (..., 2A) -> (action = tanh(u) (..., A), raw action u (..., A))."""
    raw = sample_raw(dist, key)
    return squash(raw), raw


def log_prob(dist: jax.Array, raw_action: jax.Array) -> jax.Array:
    """Log-density of the squashed action a = tanh(u), given the raw action u.

    log p(a) = sum_i [log N(u_i; loc_i, std_i)] - sum_i log(1 - tanh(u_i)^2).
    dist (..., 2A), raw_action (..., A) -> (...,).
    """
    loc, std = loc_and_std(dist)
    chex.assert_equal_shape([loc, raw_action])
    z = (raw_action - loc) / std
    gaussian = jnp.sum(-0.5 * jnp.square(z) - jnp.log(std) - 0.5 * _LOG_2PI, axis=-1)
    return gaussian - tanh_log_det_jacobian(raw_action)


def gaussian_entropy(dist: jax.Array) -> jax.Array:
    """Entropy of the pre-tanh Gaussian: sum_i (0.5 + 0.5 log(2 pi) + log std_i). (..., 2A) -> (...,)."""
    _, std = loc_and_std(dist)
    return jnp.sum(0.5 + 0.5 * _LOG_2PI + jnp.log(std), axis=-1)


def entropy(dist: jax.Array, key: jax.Array) -> jax.Array:
    """One-sample estimate of the squashed-action entropy (see module docstring).

    H[tanh(u)] = H[u] + E_u[sum_i log(1 - tanh(u_i)^2)], the expectation estimated with one fresh
    sample per distribution. dist (..., 2A) -> (...,). Gradients flow through the
    reparameterised sample.
    """
    return gaussian_entropy(dist) + tanh_log_det_jacobian(sample_raw(dist, key))


def deterministic(dist: jax.Array) -> jax.Array:
    """The deterministic (mode-of-u) action tanh(loc): dist (..., 2A) -> (..., A)."""
    loc, _ = loc_and_std(dist)
    return squash(loc)
