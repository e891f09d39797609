"""Running observation statistics against numpy."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxhum.rl import normalization


def test_running_stats_match_numpy_over_batches():
    rng = np.random.default_rng(0)
    batches = [
        rng.normal(3.0, 2.0, size=(5, 7, 3)).astype(np.float32),
        rng.normal(-1.0, 0.5, size=(11, 3)).astype(np.float32),
        rng.normal(0.0, 4.0, size=(2, 2, 2, 3)).astype(np.float32),
    ]
    stats = normalization.init(3)
    update = jax.jit(normalization.update)
    for b in batches:
        stats = update(stats, jnp.asarray(b))
    all_obs = np.concatenate([b.reshape(-1, 3) for b in batches])
    np.testing.assert_allclose(stats.count, all_obs.shape[0])
    np.testing.assert_allclose(stats.mean, all_obs.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.std, all_obs.std(0), rtol=1e-5)
    np.testing.assert_allclose(stats.summed_variance / stats.count, all_obs.var(0), rtol=1e-5)

    obs = all_obs[:4]
    expected = np.clip((obs - all_obs.mean(0)) / all_obs.std(0), -5, 5)
    np.testing.assert_allclose(normalization.normalize(stats, jnp.asarray(obs)), expected,
                               rtol=1e-4, atol=1e-5)


def test_init_is_identity_and_constant_feature_is_safe():
    stats = normalization.init(2)
    x = jnp.array([[0.5, -2.0]])
    np.testing.assert_allclose(normalization.normalize(stats, x), x)
    stats = normalization.update(stats, jnp.ones((4, 2)))
    np.testing.assert_allclose(stats.std, normalization.STD_MIN)
    z = normalization.normalize(stats, jnp.array([[1.0, 100.0]]))
    assert np.all(np.isfinite(z))
    np.testing.assert_allclose(z, [[0.0, normalization.CLIP]])
    np.testing.assert_allclose(
        normalization.denormalize(stats, normalization.normalize(stats, jnp.ones((1, 2)))),
        jnp.ones((1, 2)),
    )
