"""GAE and the clipped PPO objective against hand-derived numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhum.rl import losses

GAMMA = 0.9
LAM = 0.5


def test_gae_hand_derived_with_truncation_and_termination():
    # Steps: 0 ordinary, 1 truncated (bootstraps from v_next, stops the recursion),
    # 2 ordinary, 3 terminated (no bootstrap), 4 last step of the horizon (bootstraps, A_T = 0).
    r = jnp.array([1.0, 2.0, 0.5, 1.0, 3.0])
    v = jnp.array([0.5, 1.0, 2.0, 1.5, 0.0])
    v_next = jnp.array([1.0, 4.0, 1.5, 7.0, 2.0])  # v_next[0] == v[1] etc. where not done
    terminated = jnp.array([0.0, 0.0, 0.0, 1.0, 0.0])
    done = jnp.array([0.0, 1.0, 0.0, 1.0, 0.0])

    # delta_t = r_t + g (1 - term_t) v_next_t - v_t
    d0 = 1.0 + 0.9 * 1.0 - 0.5  # 1.4
    d1 = 2.0 + 0.9 * 4.0 - 1.0  # 4.6  (truncated: bootstraps from v_next)
    d2 = 0.5 + 0.9 * 1.5 - 2.0  # -0.15
    d3 = 1.0 + 0.0 - 1.5  # -0.5  (terminated: v_next = 7 ignored)
    d4 = 3.0 + 0.9 * 2.0 - 0.0  # 4.8
    a4 = d4
    a3 = d3  # done: recursion cut
    a2 = d2 + 0.45 * a3
    a1 = d1  # done: recursion cut
    a0 = d0 + 0.45 * a1
    expected = np.array([a0, a1, a2, a3, a4])

    adv, target = jax.jit(losses.gae, static_argnames=("gamma", "lam"))(
        r, v, v_next, terminated, done, gamma=GAMMA, lam=LAM
    )
    np.testing.assert_allclose(adv, expected, rtol=1e-6)
    np.testing.assert_allclose(target, expected + np.asarray(v), rtol=1e-6)
    np.testing.assert_allclose(adv, [3.47, 4.6, -0.375, -0.5, 4.8], rtol=1e-6)


def test_gae_lambda_one_is_discounted_return_minus_value():
    r = jnp.array([1.0, 2.0, 3.0])
    v = jnp.array([0.3, 0.2, 0.1])
    v_next = jnp.array([0.2, 0.1, 10.0])
    zeros = jnp.zeros(3)
    adv, target = losses.gae(r, v, v_next, zeros, zeros, gamma=GAMMA, lam=1.0)
    returns = np.array([
        1 + 0.9 * 2 + 0.81 * 3 + 0.729 * 10,
        2 + 0.9 * 3 + 0.81 * 10,
        3 + 0.9 * 10,
    ])
    np.testing.assert_allclose(target, returns, rtol=1e-6)
    np.testing.assert_allclose(adv, returns - np.asarray(v), rtol=1e-6)


def test_gae_vmaps_over_envs_time_major():
    key = jax.random.key(0)
    r, v, vn = jax.random.normal(key, (3, 6, 4))
    done = (jax.random.uniform(jax.random.key(1), (6, 4)) < 0.3).astype(jnp.float32)
    term = done * (jax.random.uniform(jax.random.key(2), (6, 4)) < 0.5)
    f = lambda *a: losses.gae(*a, gamma=GAMMA, lam=LAM)  # noqa: E731
    adv, _ = jax.vmap(f, in_axes=1, out_axes=1)(r, v, vn, term, done)
    for env in range(4):
        single, _ = f(r[:, env], v[:, env], vn[:, env], term[:, env], done[:, env])
        np.testing.assert_allclose(adv[:, env], single, rtol=1e-6)


def test_ppo_objective_hand_derived():
    eps = 0.2
    log_ratio = np.log(np.array([1.5, 0.5, 1.1, 0.9]))
    old = np.array([-1.0, -2.0, -0.5, -1.5])
    new = old + log_ratio
    adv = np.array([1.0, 1.0, -2.0, -1.0])
    values = np.array([0.0, 1.0, 2.0, 3.0])
    targets = np.array([1.0, 1.0, 0.0, 3.0])
    ent = np.array([0.4, 0.6, 0.8, 1.0])

    total, m = losses.ppo_objective(
        log_prob=jnp.asarray(new, jnp.float32),
        old_log_prob=jnp.asarray(old, jnp.float32),
        advantages=jnp.asarray(adv, jnp.float32),
        values=jnp.asarray(values, jnp.float32),
        value_targets=jnp.asarray(targets, jnp.float32),
        entropy=jnp.asarray(ent, jnp.float32),
        clip_epsilon=eps,
        entropy_cost=0.01,
        value_loss_coef=0.5,
        normalize_advantage=False,
    )
    # min(r A, clip(r) A): 1.5*1 -> 1.2; 0.5*1 -> 0.5 (unclipped is smaller); 1.1*-2 -> -2.2;
    # 0.9*-1 -> -0.9.
    policy_loss = -np.mean([1.2, 0.5, -2.2, -0.9])  # 0.35
    value_loss = 0.5 * np.mean([1.0, 0.0, 4.0, 0.0])  # 0.625
    entropy = 0.7
    np.testing.assert_allclose(m["policy_loss"], policy_loss, rtol=1e-5)
    np.testing.assert_allclose(m["value_loss"], value_loss, rtol=1e-6)
    np.testing.assert_allclose(m["entropy"], entropy, rtol=1e-6)
    np.testing.assert_allclose(total, policy_loss + 0.5 * value_loss - 0.01 * entropy, rtol=1e-5)
    np.testing.assert_allclose(m["total_loss"], total)
    ratio = np.exp(log_ratio)
    np.testing.assert_allclose(m["approx_kl"], np.mean(ratio - 1 - log_ratio), rtol=1e-4)
    np.testing.assert_allclose(m["clip_fraction"], 0.5)  # 1.5 and 0.5 are outside [0.8, 1.2]


def test_ppo_objective_normalized_advantage_and_gradient():
    adv = jnp.array([1.0, 3.0])  # standardised: [-1, 1]
    zeros = jnp.zeros(2)

    def loss(lp):
        total, _ = losses.ppo_objective(
            log_prob=lp, old_log_prob=zeros, advantages=adv, values=zeros,
            value_targets=zeros, entropy=zeros, clip_epsilon=0.2, entropy_cost=0.0,
            value_loss_coef=1.0, normalize_advantage=True,
        )
        return total

    # At ratio 1 (inside the clip range) d loss / d log_prob_i = -A_i / B.
    grad = jax.grad(loss)(zeros)
    np.testing.assert_allclose(grad, [0.5, -0.5], rtol=1e-5)
    # Far above the clip range with positive advantage the gradient vanishes.
    grad = jax.grad(loss)(jnp.array([0.0, 1.0]))
    assert grad[1] == pytest.approx(0.0)
