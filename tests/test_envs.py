"""humanoid_run: smoke under jit(vmap), brax parity, reset_to, autoreset, truncation, errors.

Compiles dominate on CPU, so every compiled function is built once per module.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TraceCounter

import jaxhum
from jaxhum.envs import humanoid_run

NUM_ENVS = 4
EPISODE_LENGTH = 6  # short, so truncation is reached in a few steps
PARITY_STEPS = 25


@pytest.fixture(scope="module")
def env():
    return jaxhum.envs.make("humanoid_run", episode_length=EPISODE_LENGTH)


@pytest.fixture(scope="module")
def batched(env):
    reset = TraceCounter(jax.vmap(env.reset))
    step = TraceCounter(jax.vmap(env.step))
    return reset, jax.jit(reset), step, jax.jit(step)


@pytest.fixture(scope="module")
def first_batch(batched):
    _, reset, _, _ = batched
    return reset(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))


def test_sizes(env):
    assert env.action_size == 17
    assert env.observation_size == 22 + 23 + 11 * 6 + 11 * 3 + 23
    assert env.dt == pytest.approx(0.015)
    assert env.episode_length == EPISODE_LENGTH
    assert env.sim.mj_model.nbody == 12  # fused as brax loads it, not the 14 of plain MuJoCo


def test_smoke_jit_vmap_finite_no_retrace(env, batched, first_batch):
    _, _, step_count, step = batched
    state = first_batch
    chex.assert_shape(state.obs, (NUM_ENVS, env.observation_size))
    chex.assert_tree_all_finite(state.obs)
    actions = jax.random.uniform(jax.random.PRNGKey(1), (3, NUM_ENVS, env.action_size), minval=-1, maxval=1)
    for a in actions:
        state = step(state, a)
        chex.assert_shape([state.reward, state.done, state.truncated], (NUM_ENVS,))
        chex.assert_tree_all_finite((state.obs, state.reward, state.final_obs, state.metrics))
    assert step_count.count == 1, "step retraced after its first call"
    assert {"reward/forward_velocity", "reward/alive", "reward/ctrl_l2"} <= set(state.metrics)
    # zero-weight terms are skipped, so they do not appear
    assert "reward/healthy" not in state.metrics and "reward/action_rate_l2" not in state.metrics


def test_reset_is_deterministic_and_noisy(env, batched):
    _, reset, _, _ = batched
    keys = jax.random.split(jax.random.PRNGKey(5), NUM_ENVS)
    a, b = reset(keys), reset(keys)
    np.testing.assert_array_equal(a.data.qpos, b.data.qpos)
    noise = np.asarray(a.data.qpos) - np.asarray(env.sim.mj_model.qpos0)
    assert np.all(np.abs(noise) <= 0.01) and np.any(noise != 0)
    assert not np.array_equal(a.data.qpos[0], a.data.qpos[1])


def test_reward_matches_brax_formula(env, batched, first_batch):
    """r = 1.25 vx_com + 5 - 0.1 |ctrl|^2 with ctrl = 0.4 a (brax scales a onto [-0.4, 0.4])."""
    _, _, _, step = batched
    # float32 as the other tests' actions (a bare 0.5 would make it weakly typed: a second compile)
    action = jnp.full((NUM_ENVS, env.action_size), 0.5, jnp.float32)
    state = step(first_batch, action)
    ctrl_cost = 0.1 * env.action_size * (0.5 * 0.4) ** 2
    expected = 1.25 * np.asarray(state.metrics["x_velocity"]) + 5.0 - ctrl_cost
    np.testing.assert_allclose(state.reward, expected, rtol=1e-5)
    np.testing.assert_allclose(state.metrics["reward/ctrl_l2"], -ctrl_cost, rtol=1e-5)
    total = sum(v for k, v in state.metrics.items() if k.startswith("reward/"))
    np.testing.assert_allclose(total, state.reward, rtol=1e-6)


def test_truncation_then_autoreset(env, batched, first_batch):
    _, _, _, step = batched
    state = first_batch
    zero = jnp.zeros((NUM_ENVS, env.action_size))
    for t in range(EPISODE_LENGTH):
        prev = state
        state = step(state, zero)
        if t < EPISODE_LENGTH - 1:
            assert not np.any(state.done), f"ended early at step {t}"
            np.testing.assert_array_equal(state.step_count, t + 1)
    np.testing.assert_array_equal(state.done, 1.0)
    np.testing.assert_array_equal(state.truncated, 1.0)
    np.testing.assert_array_equal(state.terminated, 0.0)
    np.testing.assert_array_equal(state.step_count, 0)
    # the new episode starts where this env's first episode started
    np.testing.assert_array_equal(state.obs, first_batch.obs)
    np.testing.assert_array_equal(state.data.qpos, first_batch.data.qpos)
    # final_obs is the observation the old episode reached, for bootstrapping
    assert not np.allclose(state.final_obs, state.obs)
    assert np.all(np.isfinite(prev.obs))


def test_termination_is_not_truncation(env, batched, first_batch):
    _, _, _, step = batched
    # drop env 0's torso far below the healthy range; the others stay healthy
    qpos = first_batch.data.qpos.at[0, 2].set(0.5)
    state = first_batch.replace(data=first_batch.data.replace(qpos=qpos))
    state = step(state, jnp.zeros((NUM_ENVS, env.action_size)))
    np.testing.assert_array_equal(state.done, [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(state.truncated, 0.0)
    np.testing.assert_array_equal(state.terminated, [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(state.step_count, [0, 1, 1, 1])
    np.testing.assert_array_equal(state.obs[0], first_batch.obs[0])
    assert float(state.final_obs[0, 0]) < 1.0  # torso height is the first observation entry


def test_reset_to_is_exact(env):
    reset_to = jax.jit(env.reset_to)
    qpos = np.asarray(env.sim.mj_model.qpos0, np.float32).copy()
    qpos[2] = 1.3
    qpos[7:] = np.linspace(-0.3, 0.3, qpos.size - 7)
    qvel = np.linspace(-1.0, 1.0, env.sim.mj_model.nv).astype(np.float32)
    a = reset_to(jax.random.PRNGKey(0), qpos, qvel)
    b = reset_to(jax.random.PRNGKey(1), qpos, qvel)
    np.testing.assert_array_equal(a.data.qpos, qpos)
    np.testing.assert_array_equal(a.data.qvel, qvel)
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.obs[: qpos.size - 2], qpos[2:])
    assert float(a.done) == 0.0 and int(a.step_count) == 0


def test_parity_with_brax_humanoid(env):
    """From brax's own reset (same key) and identical actions, reward and done match step for step."""
    from brax.envs.humanoid import Humanoid

    ref = Humanoid(backend="mjx")
    actions = jax.random.uniform(jax.random.PRNGKey(7), (PARITY_STEPS, env.action_size), minval=-1, maxval=1)
    # small actions keep the humanoid up for most of the horizon, so both done values occur
    actions = actions * 0.3

    @jax.jit
    def ours(key):
        def body(s, a):
            s = env.step_without_reset(s, a)
            return s, (s.reward, s.done)

        return jax.lax.scan(body, env.reset(key), actions)[1]

    @jax.jit
    def theirs(key):
        def body(s, a):
            s = ref.step(s, a)
            return s, (s.reward, s.done)

        return jax.lax.scan(body, ref.reset(key), actions)[1]

    key = jax.random.PRNGKey(11)
    (r_ours, d_ours), (r_ref, d_ref) = ours(key), theirs(key)
    np.testing.assert_allclose(r_ours, r_ref, rtol=1e-4)
    np.testing.assert_array_equal(d_ours, d_ref)
    rel = np.max(np.abs(np.asarray(r_ours) - np.asarray(r_ref)) / np.abs(np.asarray(r_ref)))
    print(f"parity over {PARITY_STEPS} steps: max relative reward difference {rel:.2e}")


def test_to_brax_runs_under_brax_training_wrappers(env):
    from brax.envs.base import Env as BraxEnv
    from brax.envs.wrappers import training

    benv = jaxhum.envs.to_brax(env)
    assert isinstance(benv, BraxEnv)
    # the wrappers brax's PPO puts around an env for training and for evaluation
    wrapped = training.EvalWrapper(training.wrap(benv, episode_length=3, action_repeat=1))
    state = jax.jit(wrapped.reset)(jax.random.split(jax.random.PRNGKey(0), 2))
    step = jax.jit(wrapped.step)
    for _ in range(3):
        state = step(state, jnp.zeros((2, env.action_size)))
    np.testing.assert_array_equal(state.done, 1.0)  # brax's EpisodeWrapper truncated at 3 steps
    np.testing.assert_array_equal(state.info["truncation"], 1.0)
    chex.assert_tree_all_finite(state.obs)
    assert state.info["eval_metrics"].episode_metrics["reward"].shape == (2,)


# ---- reward terms against hand-derived numbers ------------------------------------------------


def test_reward_terms_by_hand():
    from jaxhum.envs.terms import rewards

    v = rewards.forward_velocity(com_before=jnp.array([1.0, 0.0, 1.0]), com_after=jnp.array([1.03, 5.0, 0.0]), dt=0.015)
    assert float(v) == pytest.approx(2.0, rel=1e-5)
    assert float(rewards.ctrl_l2(ctrl=jnp.array([0.1, -0.2, 0.3]))) == pytest.approx(0.14, rel=1e-6)
    assert float(rewards.alive()) == 1.0
    assert float(rewards.healthy(is_healthy=jnp.array(False))) == 0.0
    assert float(rewards.action_rate_l2(action=jnp.array([1.0, 0.0]), last_action=jnp.array([0.5, 1.0]))) == 1.25


def test_weighted_sum_skips_zero_weights():
    from jaxhum.envs.terms import rewards

    def exploding(*, ctrl):
        raise AssertionError("a zero-weight term was evaluated")

    terms = {"forward_velocity": rewards.forward_velocity, "alive": rewards.alive, "ctrl_l2": rewards.ctrl_l2,
             "off": exploding}
    context = {
        "com_before": jnp.zeros(3),
        "com_after": jnp.array([0.03, 0.0, 0.0]),
        "dt": 0.015,
        "ctrl": jnp.array([0.1, -0.2, 0.3]),
    }
    total, metrics = rewards.weighted_sum(
        terms, {"forward_velocity": 1.25, "alive": 5.0, "ctrl_l2": -0.1, "off": 0.0}, context
    )
    assert float(total) == pytest.approx(1.25 * 2.0 + 5.0 - 0.014, rel=1e-5)
    assert set(metrics) == {"reward/forward_velocity", "reward/alive", "reward/ctrl_l2"}
    assert float(metrics["reward/ctrl_l2"]) == pytest.approx(-0.014, rel=1e-5)


def test_reward_weight_override_merges_into_defaults():
    config = jaxhum.envs.make_config("humanoid_run", reward_weights={"ctrl_l2": 0.0, "healthy": 2.0})
    assert config.reward_weights["ctrl_l2"] == 0.0
    assert config.reward_weights["healthy"] == 2.0
    assert config.reward_weights["forward_velocity"] == 1.25
    assert dict(humanoid_run.DEFAULT_REWARD_WEIGHTS)["ctrl_l2"] == -0.1  # defaults untouched


# ---- errors -----------------------------------------------------------------------------------


def test_unknown_env_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown environment 'humanoid_fly'.*humanoid_run"):
        jaxhum.envs.make("humanoid_fly")


def test_unknown_override_names_field():
    with pytest.raises(ValueError, match=r"unknown override\(s\) \['episode_len'\].*episode_length"):
        jaxhum.envs.make_config("humanoid_run", episode_len=5)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"episode_length": 0}, "episode_length: must be a positive integer"),
        ({"episode_length": 2.5}, "episode_length: expected int"),
        ({"n_substeps": -1}, "n_substeps: must be a positive integer"),
        ({"healthy_z_min": 3.0}, "healthy_z_min: must be below healthy_z_max"),
        ({"reset_noise_scale": -0.1}, "reset_noise_scale: must be >= 0"),
        ({"reward_weights": {"speed": 1.0}}, r"reward_weights: unknown reward term\(s\) \['speed'\].*forward_velocity"),
        ({"reward_weights": {"alive": "high"}}, "reward_weights.alive: weight must be a number"),
    ],
)
def test_bad_override_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        jaxhum.envs.make_config("humanoid_run", **overrides)


def test_missing_model_file_names_it(tmp_path):
    missing = tmp_path / "nope.xml"
    with pytest.raises(jaxhum.sim.ModelLoadError, match=f"{missing}: MJCF file not found"):
        jaxhum.envs.make("humanoid_run", model_path=str(missing))


def test_malformed_mjcf_names_file(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body><geom type='sphere'></body></mujoco>")
    with pytest.raises(jaxhum.sim.ModelLoadError, match=f"{bad}: malformed MJCF"):
        jaxhum.sim.load_model(bad)
    with pytest.raises(jaxhum.sim.ModelLoadError, match=f"{bad}: malformed MJCF"):
        jaxhum.sim.load_model(bad, fuse_bodies=True)


def test_missing_name_lists_known(env):
    with pytest.raises(jaxhum.sim.NameLookupError, match=r"no body named 'head'.*torso"):
        env.sim.id("body", "head")
    with pytest.raises(jaxhum.sim.NameLookupError, match=r"unknown object kind 'tendon'"):
        env.sim.id("tendon", "x")
    assert env.sim.id("body", "torso") == 1
    assert env.sim.id("joint", "right_knee") > 0


def test_sim_model_on_plain_mjcf(tmp_path):
    xml = tmp_path / "box.xml"
    xml.write_text(
        "<mujoco><worldbody><body name='box' pos='0 0 1'><freejoint/><geom size='0.1'/>"
        "<site name='tip'/></body></worldbody>"
        "<sensor><framepos name='p' objtype='site' objname='tip'/></sensor></mujoco>"
    )
    model = jaxhum.sim.load_model(xml)
    assert model.id("body", "box") == 1 and model.id("site", "tip") == 0
    assert model.sensor_slice("p") == slice(0, 3)
    # Jitted: one compile each (run eagerly, MJX's forward pass compiled op by op, 3x slower).
    data = jax.jit(jaxhum.sim.init)(model.mjx_model, jnp.asarray(model.mj_model.qpos0), jnp.zeros(6))
    data = jax.jit(jaxhum.sim.step, static_argnums=3)(model.mjx_model, data, jnp.zeros(0), 10)
    # free fall for 10 steps of 2 ms from rest: z drops by about g t^2 / 2 (semi-implicit Euler)
    t = 10 * model.mj_model.opt.timestep
    assert float(data.qpos[2]) == pytest.approx(1.0 - 0.5 * 9.81 * t * t, abs=2e-3)
    np.testing.assert_allclose(data.sensordata[model.sensor_slice("p")], data.site_xpos[0], atol=1e-6)


def test_config_is_frozen():
    config = jaxhum.envs.make_config("humanoid_run")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.episode_length = 3  # type: ignore[misc]
