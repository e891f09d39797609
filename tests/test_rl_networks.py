"""Network shapes and the tanh-squashed Gaussian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as scipy_stats

from jaxhum.rl import networks

OBS, ACT = 5, 3


@pytest.fixture(scope="module")
def nets():
    policy = networks.make_policy_network(OBS, ACT, (16, 16), "swish")
    value = networks.make_value_network(OBS, (16,), "tanh")
    kp, kv = jax.random.split(jax.random.key(0))
    return policy, value, policy.init(kp), value.init(kv)


def test_shapes(nets):
    policy, value, pp, vp = nets
    obs = jnp.ones((4, 2, OBS))
    dist = policy.apply(pp, obs)
    assert dist.shape == (4, 2, 2 * ACT)
    assert value.apply(vp, obs).shape == (4, 2)
    action, raw = networks.sample(dist, jax.random.key(1))
    assert action.shape == raw.shape == (4, 2, ACT)
    assert np.all(np.abs(action) <= 1.0)
    assert networks.log_prob(dist, raw).shape == (4, 2)
    assert networks.entropy(dist, jax.random.key(2)).shape == (4, 2)
    assert networks.deterministic(dist).shape == (4, 2, ACT)
    with pytest.raises(ValueError):
        networks.get_activation("relu6")


def test_log_prob_matches_manual_change_of_variables():
    loc = np.array([0.3, -1.2], np.float32)
    scale = np.array([0.1, -2.0], np.float32)
    dist = jnp.asarray(np.concatenate([loc, scale]))
    std = np.log1p(np.exp(scale)) + networks.MIN_STD
    for raw in (loc, np.array([2.5, -0.7], np.float32)):  # the deterministic raw action, and another
        a = np.tanh(raw.astype(np.float64))
        expected = np.sum(scipy_stats.norm.logpdf(raw, loc, std) - np.log(1 - a**2))
        np.testing.assert_allclose(networks.log_prob(dist, jnp.asarray(raw)), expected, rtol=1e-5)
    np.testing.assert_allclose(networks.deterministic(dist), np.tanh(loc), rtol=1e-6)


def test_log_prob_finite_in_saturation_and_sampling_consistent():
    dist = jnp.array([0.0, 0.0])
    assert np.isfinite(networks.log_prob(dist, jnp.array([30.0])))
    # Monte Carlo: mean of -log p over samples estimates the entropy of the squashed action.
    keys = jax.random.split(jax.random.key(3), 2)
    dist = jnp.array([0.5, 0.2])
    dists = jnp.broadcast_to(dist, (20000, 2))
    _, raw = networks.sample(dists, keys[0])
    mc_entropy = -jnp.mean(networks.log_prob(dists, raw))
    est = jnp.mean(networks.entropy(dists, keys[1]))
    np.testing.assert_allclose(est, mc_entropy, atol=0.02)
    assert est < networks.gaussian_entropy(dist)  # squashing can only shrink entropy
