"""Per-episode randomization: sampling, applying to MJX against native MuJoCo, noise, lag,
latency, pushes, episode boundaries in walk, and bad settings.

Two MJX compiles in all: one physics rollout shared by the bit-exact and the native-MuJoCo
checks (same params structure), one walk rollout for the episode-boundary check.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from experiments import walk as walk_experiment
from jaxhum import config as config_lib
from jaxhum import envs, robots
from jaxhum.envs.base import refresh_starts
from jaxhum.envs.terms import randomization as R
from jaxhum.run import config as run_config

SUBSTEPS = 10  # physics steps compared with native MuJoCo

# Every physics range on, wide enough that the randomized trajectory differs from the nominal one.
WIDE = R.RandomizationConfig(
    friction=(0.3, 1.2), mass_scale=(0.7, 1.3), torso_mass=(1.0, 3.0), com_offset=(-0.05, 0.05),
    joint_damping=(0.5, 3.0), armature=(1.0, 1.5), frictionloss=(0.1, 0.5), kp_scale=(0.6, 1.4),
    kd_scale=(0.6, 1.4), motor_strength=(0.5, 1.0))
# Zero-width ranges at the nominal values (not frictionloss: its range must be > 0, jh1's is 0).
AT_NOMINAL = R.RandomizationConfig(
    friction=(1.0, 1.0), mass_scale=(1.0, 1.0), torso_mass=(0.0, 0.0), com_offset=(0.0, 0.0),
    joint_damping=(1.0, 1.0), armature=(1.0, 1.0), kp_scale=(1.0, 1.0),
    kd_scale=(1.0, 1.0), motor_strength=(1.0, 1.0))


# jh1 trains with 2 Newton iterations, which do not converge on a contact-heavy step: the two
# engines then stop at different iterates whenever their constraint rows differ (MJX keeps a row
# per sampled friction-loss dof). A converged solver makes the comparison about the parameters.
SOLVER_ITERATIONS = 20


@pytest.fixture(scope="module")
def robot_sim():
    robot = robots.get_robot("jh1")
    robot = dataclasses.replace(robot, physics=dataclasses.replace(robot.physics, iterations=SOLVER_ITERATIONS))
    sim = robot.load()
    return robot, sim, robot.index(sim)


@pytest.fixture(scope="module")
def nom(robot_sim):
    _, sim, idx = robot_sim
    return R.nominal(sim, idx)


@pytest.fixture(scope="module")
def start(robot_sim):
    """qpos, qvel, ctrl: the home pose with targets away from it, so gains and masses matter."""
    _, sim, idx = robot_sim
    ctrl = np.array(idx.home_ctrl)
    ctrl[idx.actuator_ids] += 0.3 * np.sin(np.arange(len(idx.actuator_ids)))
    return idx.home_qpos, np.zeros(sim.mj_model.nv), ctrl


@pytest.fixture(scope="module")
def rollout(robot_sim, start, nom):
    """params -> (qpos, qvel) after SUBSTEPS MJX steps from `start` on the model with `params`."""
    _, sim, _ = robot_sim
    qpos, qvel, ctrl = start

    @jax.jit
    def run(params):
        m = R.apply(sim.mjx_model, params, nom.dof_ids)
        d = mjx.make_data(m).replace(qpos=jnp.asarray(qpos, jnp.float32), qvel=jnp.asarray(qvel, jnp.float32),
                                     ctrl=jnp.asarray(ctrl, jnp.float32))
        d, _ = jax.lax.scan(lambda d, _: (mjx.step(m, d), None), d, None, length=SUBSTEPS)
        return d.qpos, d.qvel

    return run


def _native(robot_sim, start, params):
    robot, _, _ = robot_sim
    mj = robot.load().mj_model  # a fresh host model to edit
    R.set_native(mj, params)
    d = mujoco.MjData(mj)
    qpos, qvel, ctrl = start
    d.qpos[:], d.qvel[:], d.ctrl[:] = qpos, qvel, ctrl
    for _ in range(SUBSTEPS):
        mujoco.mj_step(mj, d)
    return d.qpos.copy(), d.qvel.copy()


# ----------------------------------------------------------------------------- off / zero width


def test_everything_off_is_empty_and_the_identity(robot_sim, nom):
    _, sim, _ = robot_sim
    config = R.RandomizationConfig()
    assert not config.any_on
    assert R.sample(jax.random.key(0), config, nom) == {}
    assert R.apply(sim.mjx_model, {}) is sim.mjx_model
    rand = R.Randomizer(config, nom, np.zeros(4, np.float32), 0.02)
    assert rand.episode_start(jax.random.key(0), 4, 3) == {}
    obs, action = jnp.arange(4.0), jnp.ones(3)
    assert rand.observe(obs, {})[0] is obs and rand.delayed_action(action, {})[0] is action


def test_default_walk_has_no_randomization():
    env = envs.make("walk")
    assert env.config.randomization == R.RandomizationConfig() and not env.fresh_starts


def test_zero_width_ranges_reproduce_the_nominal_model_bit_for_bit(nom, rollout):
    params = R.sample(jax.random.key(3), AT_NOMINAL, nom)
    for name, value in params.items():
        if name != "body_subtreemass":  # recomputed by summation on the device
            np.testing.assert_array_equal(value, getattr(nom.model, name), err_msg=name)
    np.testing.assert_allclose(params["body_subtreemass"], nom.model.body_subtreemass, rtol=1e-6)
    nominal_values = {name: getattr(nom.model, name) for name in params}
    for got, want in zip(rollout(params), rollout(nominal_values)):
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- sampling


def test_samples_lie_in_their_ranges_and_follow_the_key(nom):
    a = R.sample(jax.random.key(1), WIDE, nom)
    b = R.sample(jax.random.key(1), WIDE, nom)
    c = R.sample(jax.random.key(2), WIDE, nom)
    assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.all(x == y)), a, b))
    assert not np.array_equal(a["body_mass"], c["body_mass"])
    m = nom.model
    friction = np.asarray(a["geom_friction"])[nom.friction_geom_ids, 0]
    assert np.all(friction == friction[0]) and 0.3 <= friction[0] <= 1.2
    others = np.setdiff1d(np.arange(m.ngeom), nom.friction_geom_ids)
    np.testing.assert_array_equal(np.asarray(a["geom_friction"])[others], np.asarray(m.geom_friction)[others])
    t = nom.torso_body_id
    nonzero = np.asarray(m.body_mass) > 0
    ratio = np.where(nonzero, np.asarray(a["body_mass"]) / np.where(nonzero, np.asarray(m.body_mass), 1.0), 1.0)
    body = np.arange(m.nbody) != t
    assert np.all((ratio[body & nonzero] >= 0.7 - 1e-6) & (ratio[body & nonzero] <= 1.3 + 1e-6))
    added = float(a["body_mass"][t]) - float(m.body_mass[t]) * 1.3
    assert float(a["body_mass"][t]) >= float(m.body_mass[t]) * 0.7 + 1.0 - 1e-4 and added <= 3.0 + 1e-4
    # Inertia scales with mass (same shape), subtree masses add up.
    np.testing.assert_allclose(np.asarray(a["body_inertia"])[nonzero],
                               (np.asarray(m.body_inertia) * ratio[:, None])[nonzero], rtol=1e-5)
    assert float(a["body_subtreemass"][0]) == pytest.approx(float(jnp.sum(a["body_mass"])), rel=1e-5)
    off = np.asarray(a["body_ipos"])[t] - np.asarray(m.body_ipos)[t]
    assert np.all(np.abs(off) <= 0.05 + 1e-6)
    kp = np.asarray(a["actuator_gainprm"])[nom.actuator_ids, 0] / np.asarray(m.actuator_gainprm)[nom.actuator_ids, 0]
    assert np.all((kp >= 0.6 - 1e-6) & (kp <= 1.4 + 1e-6))
    np.testing.assert_allclose(np.asarray(a["actuator_biasprm"])[nom.actuator_ids, 1],
                               -np.asarray(a["actuator_gainprm"])[nom.actuator_ids, 0], rtol=1e-6)
    fl = np.asarray(a["dof_frictionloss"])[nom.dof_ids]
    assert np.all((fl >= 0.1) & (fl <= 0.5))


def test_apply_matches_native_mujoco(robot_sim, start, nom, rollout):
    params = R.sample(jax.random.key(5), WIDE, nom)
    qpos, qvel = rollout(params)
    want_qpos, want_qvel = _native(robot_sim, start, params)
    nominal_qpos, _ = _native(robot_sim, start, {})
    gap = np.max(np.abs(want_qpos - nominal_qpos))
    err = np.max(np.abs(np.asarray(qpos) - want_qpos))
    assert gap > 1e-3, "the sample must change the trajectory for this test to mean anything"
    assert err < 0.05 * gap, (err, gap)
    np.testing.assert_allclose(qvel, want_qvel, atol=0.05 * np.max(np.abs(want_qvel)) + 1e-3)


# ----------------------------------------------------------------------------- noise, lag, latency, pushes


def _rand(nom, **kw):
    layout = (("a", 2), ("b", 3))
    config = R.RandomizationConfig(**kw)
    config.validate(["a", "b"])
    return R.Randomizer(config, nom, R.noise_scales(config, layout), dt=0.02)


def test_noise_is_per_term_and_bounded(nom):
    rand = _rand(nom, obs_noise={"b": 0.5})
    info = rand.episode_start(jax.random.key(0), 5, 2)
    obs = jnp.zeros(5)
    seen, info2 = rand.observe(obs, info)
    assert np.all(np.asarray(seen[:2]) == 0.0)
    assert np.all(np.abs(np.asarray(seen[2:])) <= 0.5) and np.any(np.asarray(seen[2:]) != 0.0)
    again, _ = rand.observe(obs, info)
    np.testing.assert_array_equal(seen, again)  # same key, same noise
    nxt, _ = rand.observe(obs, info2)
    assert not np.array_equal(seen, nxt)  # a fresh draw each step


def test_gaussian_noise_has_the_given_std(nom):
    rand = R.Randomizer(R.RandomizationConfig(obs_noise={"a": 0.1}, obs_noise_type="gaussian"), nom,
                        np.full((10_000,), 0.1, np.float32), dt=0.02)
    seen, _ = rand.observe(jnp.zeros(10_000), rand.episode_start(jax.random.key(0), 10_000, 1))
    assert float(jnp.std(seen)) == pytest.approx(0.1, rel=0.05)


@pytest.mark.parametrize("lag, expected", [(0, [1, 2, 3, 4]), (1, [1, 1, 2, 3]), (2, [1, 1, 1, 2])])
def test_observation_lag(nom, lag, expected):
    rand = _rand(nom, obs_lag=2)
    info = rand.episode_start(jax.random.key(0), 5, 2)
    info["randomization"]["obs_lag"] = jnp.int32(lag)
    seen = []
    for t in (1, 2, 3, 4):
        obs, info = rand.observe(jnp.full((5,), float(t)), info)
        seen.append(float(obs[0]))
    assert seen == expected


def test_lag_is_drawn_per_episode_in_range(nom):
    rand = _rand(nom, obs_lag=3, action_latency=2)
    lags = {int(rand.episode_start(jax.random.key(i), 5, 2)["randomization"]["obs_lag"]) for i in range(40)}
    lat = {int(rand.episode_start(jax.random.key(i), 5, 2)["randomization"]["action_latency"]) for i in range(40)}
    assert lags == {0, 1, 2, 3} and lat == {0, 1, 2}


@pytest.mark.parametrize("k, expected", [(0, [1, 2, 3]), (1, [0, 1, 2]), (2, [0, 0, 1])])
def test_action_latency(nom, k, expected):
    rand = _rand(nom, action_latency=2)
    info = rand.episode_start(jax.random.key(0), 5, 2)
    info["randomization"]["action_latency"] = jnp.int32(k)
    applied = []
    for t in (1, 2, 3):
        a, info = rand.delayed_action(jnp.full((2,), float(t)), info)
        applied.append(float(a[0]))
    assert applied == expected


def test_push_kicks_the_root_by_the_drawn_velocity(robot_sim, nom):
    _, sim, _ = robot_sim
    rand = _rand(nom, push_interval=(0.04, 0.04), push_velocity=(0.7, 0.7))  # every 2 control steps
    info = rand.episode_start(jax.random.key(0), 5, 2)
    assert int(info["randomization"]["push_countdown"]) == 2
    data = mjx.make_data(sim.mjx_model)
    data = data.replace(qvel=jnp.arange(data.qvel.shape[0], dtype=jnp.float32))
    d1, m1, info = rand.push(data, info)
    np.testing.assert_array_equal(d1.qvel, data.qvel)
    assert float(m1) == 0.0
    d2, m2, info = rand.push(d1, info)
    delta = np.asarray(d2.qvel - d1.qvel)
    r = nom.root_dof
    assert float(m2) == pytest.approx(0.7) and np.hypot(*delta[r:r + 2]) == pytest.approx(0.7, rel=1e-5)
    assert np.all(np.delete(delta, [r, r + 1]) == 0.0)
    assert int(info["randomization"]["push_countdown"]) == 2


# ----------------------------------------------------------------------------- episodes in walk


@pytest.fixture(scope="module")
def walk_episodes():
    """Two walk envs with randomization on: reset, refresh the next starts, run past one episode."""
    dt = 0.02
    config = R.RandomizationConfig(mass_scale=(0.5, 1.5), obs_lag=1, action_latency=1,
                                   push_interval=(0.04, 0.04), push_velocity=(0.2, 0.2))
    env = envs.make("walk", episode_seconds=3 * dt, randomization=config)
    assert env.fresh_starts and env.dt == pytest.approx(dt) and env.episode_length == 3

    @jax.jit
    def run(key):
        k_reset, k_refresh = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(k_reset, 2))
        first = state.params["body_mass"]
        state = refresh_starts(env, state, k_refresh)

        def body(s, _):
            s = jax.vmap(env.step)(s, jnp.zeros((2, env.action_size)))
            return s, (s.params["body_mass"], s.done, s.metrics["push_magnitude"])

        _, (mass, done, push) = jax.lax.scan(body, state, None, length=4)
        return first, state.first_info["params"]["body_mass"], mass, done, push

    return jax.device_get(run(jax.random.key(0)))


# Full tier: the same property on joystick (test_balance.py::test_joystick_draws_physics_per_episode_
# and_holds_it) runs in every suite, through the same robot-task skeleton; this walk run adds ~47 s.
@pytest.mark.full
def test_params_hold_within_an_episode_and_are_redrawn_at_its_start(walk_episodes):
    first, refreshed, mass, done, push = walk_episodes
    np.testing.assert_array_equal(done[:, 0], [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(mass[0], first)
    np.testing.assert_array_equal(mass[1], first)
    np.testing.assert_array_equal(mass[2], refreshed)  # after the autoreset: the refreshed start
    np.testing.assert_array_equal(mass[3], refreshed)
    assert not np.array_equal(first, refreshed)
    np.testing.assert_allclose(push[:, 0], [0.0, 0.2, 0.0, 0.0], atol=1e-6)  # every 2 steps from each start


# ----------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    "override, field",
    [
        ({"friction": (1.0, 0.5)}, "friction"),
        ({"mass_scale": (0.0, 1.0)}, "mass_scale"),
        ({"friction": (-0.1, 1.0)}, "friction"),
        ({"frictionloss": (0.0, 0.3)}, "frictionloss"),
        ({"obs_lag": -1}, "obs_lag"),
        ({"obs_noise_type": "laplace"}, "obs_noise_type"),
        ({"obs_noise": {"nope": 0.1}}, "obs_noise.nope"),
        ({"obs_noise": {"joint_vel": -1.0}}, "obs_noise.joint_vel"),
        ({"push_velocity": (0.1, 0.5)}, "push_velocity"),
        ({"action_latency": 1.5}, "action_latency"),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_field(override, field):
    with pytest.raises(ValueError) as err:
        envs.make("walk", randomization=override)
    text = str(err.value)
    assert text.startswith(f"randomization.{field}") and "\n" not in text, text


def test_dotted_overrides_reach_the_randomization_config():
    config = config_lib.apply_overrides(walk_experiment.get_config("cpu"),
                                        ["env.randomization.friction=0.5,1.0", "env.randomization.obs_lag=2"])
    config = run_config.validate(config, build=False)
    rand = envs.make_config("walk", **config.env).randomization
    assert rand.friction == (0.5, 1.0) and rand.obs_lag == 2 and rand.mass_scale is None
    hash(config)  # runs memoize on the config
    again = run_config.validate(config_lib.from_json(type(config), config_lib.to_json(config)), build=False)
    assert envs.make_config("walk", **again.env).randomization == rand  # as a run dir stores it
    bad = config_lib.apply_overrides(walk_experiment.get_config("cpu"), ["env.randomization.friction=2,1"])
    with pytest.raises(config_lib.ConfigError, match=r"^env\.randomization\.friction: "):
        run_config.validate(bad, build=False)


def test_gpu_preset_ranges_are_valid_for_walk():
    env_config = envs.make_config("walk", randomization=R.GPU_PRESET)
    assert dataclasses.replace(env_config.randomization) == R.GPU_PRESET


# ----------------------------------------------------------------------------- evaluation of pushes


def test_eval_reports_the_largest_push_survived():
    """Hand case: env 0 is kicked 0.2, 0.4, 0.6 and falls on step 3; env 1 is kicked 0.1, 0.2,
    0.3, 0.4 and reaches the time limit (4 steps): the largest push survived is 0.4, not 0.6."""
    from flax import struct

    from jaxhum.rl.evaluation import make_evaluator

    @struct.dataclass
    class S:
        obs: jax.Array
        reward: jax.Array
        done: jax.Array
        truncated: jax.Array
        metrics: dict
        t: jax.Array
        i: jax.Array

    # The evaluator resets env n from split(key, 2)[n]; tell the two apart by a draw from it.
    draws = [float(jax.random.uniform(k)) for k in jax.random.split(jax.random.key(0), 2)]
    cut = sum(draws) / 2

    class Env:
        observation_size, action_size, episode_length = 1, 1, 4

        def reset(self, key):
            z = jnp.zeros(())
            i = (jax.random.uniform(key) > cut).astype(jnp.int32)
            return S(jnp.zeros(1), z, z, z, {"push_magnitude": z}, jnp.int32(0), i)

        def step(self, s, a):
            t = s.t + 1
            push = 0.1 * t * (2 - s.i)
            fell = (s.i == 0) & (t == 3)
            trunc = (t >= 4) & ~fell
            return S(s.obs, jnp.ones(()), (fell | trunc).astype(jnp.float32), trunc.astype(jnp.float32),
                     {"push_magnitude": push.astype(jnp.float32)}, jnp.where(fell | trunc, 0, t), s.i)

    evaluate = make_evaluator(Env(), lambda params, obs, key: jnp.zeros((obs.shape[0], 1)), 2)
    metrics = jax.jit(evaluate)(None, jax.random.key(0))
    assert float(metrics["eval/fall_rate"]) == 0.5
    assert float(metrics["eval/max_push_survived"]) == pytest.approx(0.4)
