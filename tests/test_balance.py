"""balance (joystick with the command zero, under pushes), and joystick's randomization and
curriculum: the command stays zero, kicks happen and scale with the push level, physics is drawn
per episode, the command level scales the followed command, presets fit `init_from`.

Two MJX compiles: one jitted rollout (reset, curriculum levels, a few steps) per env, each called
at two levels with the same key (same shapes: no recompile).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mujoco import mjx

from experiments import balance as balance_experiment
from experiments import joystick as joystick_experiment
from jaxhum import config as config_lib
from jaxhum import envs, robots
from jaxhum.envs import balance, joystick
from jaxhum.envs.terms import randomization as R
from jaxhum.rl import curriculum
from jaxhum.run import config as run_config

DT = 0.02
N, STEPS = 4, 4
KICKS = (0.2, 1.0)  # push_velocity of the balance env under test (m/s)
JOYSTICK_RANDOMIZATION = {"friction": (0.4, 1.25), "mass_scale": (0.9, 1.1)}


def _rollout(env, record):
    """jit(key, levels) -> (the starts' command, obs and params, stacked `record(state)` after each
    of STEPS zero-action steps); the levels are written into every env (as the trainer does) before
    the first step."""

    @jax.jit
    def run(key, levels):
        start = jax.vmap(env.reset)(jax.random.split(key, N))
        state = curriculum.apply(start, curriculum.CurriculumState(levels=levels))

        def body(s, _):
            s = jax.vmap(env.step)(s, jnp.zeros((N, env.action_size)))
            return s, record(s)

        _, out = jax.lax.scan(body, state, None, length=STEPS)
        return {"command": start.info["command"], "obs": start.obs, "params": start.params}, out

    def at(**levels):
        return jax.device_get(run(jax.random.key(0), {k: jnp.float32(v) for k, v in levels.items()}))

    return at


def _command_slice(env) -> slice:
    offset = joystick._command_offset(env)
    return slice(offset, offset + joystick.COMMAND_SIZE)


# ----------------------------------------------------------------------------- balance


@pytest.fixture(scope="module")
def balance_env():
    pushes = {"push_interval": (DT, 2 * DT), "push_velocity": KICKS}  # a kick every 1-2 control steps
    return envs.make("balance", episode_seconds=10 * DT, resample_seconds=DT, curriculum=True, randomization=pushes)


@pytest.fixture(scope="module")
def balance_runs(balance_env):
    record = lambda s: {"command": s.info["command"], "obs": s.obs, "push": s.metrics["push_magnitude"],  # noqa: E731
                        "done": s.done}
    at = _rollout(balance_env, record)
    return at(command=1.0, push=1.0), at(command=0.5, push=0.5)


def test_balance_is_joystick_with_zero_commands_and_pushes():
    config = envs.make_config("balance")
    assert isinstance(config, joystick.JoystickConfig)
    assert (config.vx_range, config.vy_range, config.yaw_rate_range) == ((0.0, 0.0),) * 3
    assert (config.randomization.push_interval, config.randomization.push_velocity) == (
        R.GPU_PRESET.push_interval, R.GPU_PRESET.push_velocity)
    assert not config.randomization.physics_on and not config.curriculum
    # A partial override of the group keeps balance's other settings (its pushes stay on).
    stronger = envs.make_config("balance", randomization={"push_velocity": (0.5, 1.5)}).randomization
    assert (stronger.push_interval, stronger.push_velocity) == (R.GPU_PRESET.push_interval, (0.5, 1.5))
    with pytest.raises(ValueError, match=r"^vx_range: balance commands zero, must be \(0, 0\), got \(0.0, 1.0\)"):
        envs.make_config("balance", vx_range=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"^config: expected a BalanceConfig"):
        balance.make(envs.make_config("joystick"))


def test_balance_declares_levels_and_keeps_joystick_shapes(balance_env):
    jenv = envs.make("joystick")
    assert balance_env.name == "balance" and balance_env.fresh_starts
    assert curriculum.check_env(balance_env) == ("command", "push")
    assert balance_env.observation_layout == jenv.observation_layout
    assert (balance_env.observation_size, balance_env.critic_observation_size, balance_env.action_size) == (
        jenv.observation_size, jenv.critic_observation_size, jenv.action_size)


def test_balance_command_is_always_zero(balance_env, balance_runs):
    cmd = _command_slice(balance_env)
    for start, out in balance_runs:  # a new command is drawn at every step (resample_seconds = dt)
        assert np.all(start["command"] == 0.0) and np.all(start["obs"][:, cmd] == 0.0)
        assert np.all(out["command"] == 0.0) and np.all(out["obs"][..., cmd] == 0.0)


def test_balance_pushes_happen_and_scale_with_the_push_level(balance_runs):
    (_, full), (_, half) = balance_runs
    assert not np.any(full["done"]) and not np.any(half["done"])
    # Every 1-2 control steps: every env is kicked within the first two steps.
    assert np.all(full["push"][:2].max(axis=0) > 0.0)
    kicked = full["push"] > 0.0
    assert np.all((full["push"][kicked] >= KICKS[0]) & (full["push"][kicked] <= KICKS[1]))
    # The kicks' timing and draws come from the episode's key, not from the physics: at level 0.5
    # the same kicks come at half their magnitude, within [0.1, 0.5] m/s.
    np.testing.assert_array_equal(half["push"], 0.5 * full["push"])
    assert np.all(half["push"] <= 0.5 * KICKS[1])


def test_push_scale_multiplies_the_drawn_magnitude():
    robot = robots.get_robot("jh1")
    sim = robot.load()
    rand = R.build(R.RandomizationConfig(push_interval=(DT, DT), push_velocity=(0.7, 0.7)), sim, robot.index(sim),
                   (), DT)
    info = rand.episode_start(jax.random.key(0), 0, 2)
    data = mjx.make_data(sim.mjx_model)
    d, magnitude, _ = rand.push(data, info, jnp.float32(0.25))
    r = rand.nominal.root_dof
    assert float(magnitude) == pytest.approx(0.175)
    assert np.hypot(*np.asarray(d.qvel[r:r + 2])) == pytest.approx(0.175, rel=1e-5)


# ----------------------------------------------------------------------------- joystick


@pytest.fixture(scope="module")
def joystick_env():
    return envs.make("joystick", episode_seconds=10 * DT, resample_seconds=DT, curriculum=True,
                     randomization=JOYSTICK_RANDOMIZATION)


@pytest.fixture(scope="module")
def joystick_runs(joystick_env):
    idx = joystick_env.robot.index(joystick_env.sim)
    record = lambda s: {"command": s.info["command"], "obs": s.obs, "done": s.done,  # noqa: E731
                        "tracking_vx": s.metrics["tracking/vx"], "vx": s.data.sensordata[:, idx.linvel][:, 0],
                        "friction": s.params["geom_friction"], "mass": s.params["body_mass"]}
    at = _rollout(joystick_env, record)
    return at(command=1.0), at(command=0.5)


def test_default_joystick_is_nominal_without_levels():
    env = envs.make("joystick")
    assert env.curriculum == () and env.fresh_starts
    state = jax.eval_shape(env.reset, jax.random.key(0))
    assert state.params == {} and set(state.info) == {"command", "key", "resample_in", "feet_air_time", "last_contact"}
    assert "push_magnitude" not in state.metrics
    assert envs.make_config("joystick", curriculum=True).curriculum_names == ("command",)  # no pushes, no push level
    # The recommended ranges fit joystick's observation terms (GPU_PRESET also names a velocimeter).
    joystick.GPU_RANDOMIZATION.validate([name for name, _ in env.observation_layout])
    with pytest.raises(ValueError, match=r"^randomization\.obs_noise\.imu_linear_velocity: "):
        R.GPU_PRESET.validate([name for name, _ in env.observation_layout])


def test_joystick_draws_physics_per_episode_and_holds_it(joystick_env, joystick_runs):
    start, out = joystick_runs[0]
    floor = joystick_env.robot.index(joystick_env.sim).floor_geom_id
    friction = start["params"]["geom_friction"][:, floor, 0]
    assert len(set(friction.tolist())) == N and np.all((friction >= 0.4) & (friction <= 1.25))
    mass = start["params"]["body_mass"]
    assert not np.allclose(mass[0], mass[1])
    assert not np.any(out["done"])  # one episode: its parameters never change
    np.testing.assert_array_equal(out["friction"], np.broadcast_to(start["params"]["geom_friction"],
                                                                   out["friction"].shape))
    np.testing.assert_array_equal(out["mass"], np.broadcast_to(mass, out["mass"].shape))


def test_command_level_scales_the_followed_command(joystick_env, joystick_runs):
    cmd = _command_slice(joystick_env)
    (start, full), (_, half) = joystick_runs
    assert not np.any(full["done"]) and not np.any(half["done"])
    # The drawn commands follow the episode's key alone: the same at both levels, in the full ranges.
    np.testing.assert_array_equal(half["command"], full["command"])
    np.testing.assert_array_equal(full["obs"][..., cmd], full["command"])  # level 1: the drawn command
    np.testing.assert_array_equal(half["obs"][..., cmd], 0.5 * half["command"])
    # Level 0.5 on vx (-0.5, 1.0), vy (-0.3, 0.3), yaw (-0.5, 0.5): |vx| <= 0.5, |vy| <= 0.15, |yaw| <= 0.25,
    # though some draws lie outside that (so the bound is the level's doing).
    assert np.all(np.abs(half["obs"][..., cmd]) <= np.array([0.5, 0.15, 0.25]))
    assert np.any(np.abs(half["command"][..., 0]) > 0.5)
    # The reward follows the scaled command: step t tracks the command observed before it.
    followed_vx = 0.5 * np.concatenate([start["command"][None, :, 0], half["command"][:-1, :, 0]])
    np.testing.assert_allclose(half["tracking_vx"], np.abs(followed_vx - half["vx"]), rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- experiment presets


@pytest.mark.parametrize("preset", joystick_experiment.PRESETS)
def test_balance_presets_fine_tune_from_joystick_presets(preset):
    """Same networks and normalizer as joystick's preset (the shapes `init_from` compares)."""
    b, j = balance_experiment.get_config(preset), joystick_experiment.get_config(preset)
    assert b.env_name == "balance" and balance_experiment.PRESETS == joystick_experiment.PRESETS
    for field in ("policy_hidden_sizes", "value_hidden_sizes", "normalize_observations"):
        assert getattr(b.ppo, field) == getattr(j.ppo, field)
    assert b.num_timesteps == (60_000_000 if preset.startswith("gpu") else j.num_timesteps)
    if preset.startswith("gpu"):  # the observation and critic of joystick's robust preset
        robust = joystick_experiment.get_config("gpu_randomized").env
        for field in ("observation_history", "critic_randomization"):
            assert b.env[field] == robust[field]


@pytest.mark.parametrize("preset", ["gpu", "gpu_randomized"])
def test_balance_gpu_presets_train_under_the_full_randomization_stack(preset):
    config = run_config.validate(balance_experiment.get_config(preset), build=False)
    env_config = envs.make_config("balance", **config.env)
    rand = env_config.randomization
    assert rand == dataclasses.replace(joystick.GPU_RANDOMIZATION, push_velocity=(0.1, 1.5))
    assert rand.obs_noise and rand.obs_lag > 0 and rand.action_latency > 0 and rand.push_velocity[1] > 0
    # Judged under the same kicks (joystick's gpu_randomized judges under 0.1-1.0 m/s; balance must not).
    judged = config_lib.merge(env_config, config.eval_env)
    assert judged.randomization.push_velocity == (0.1, 1.5)


def test_command_line_overrides_part_of_balance_randomization():
    overrides = ["env.randomization.push_velocity=0.5,1.5", "env.curriculum=true"]
    config = config_lib.apply_overrides(balance_experiment.get_config("cpu"), overrides)
    config = run_config.validate(config, build=False)
    env_config = envs.make_config("balance", **config.env)
    assert env_config.curriculum is True
    assert env_config.randomization == R.RandomizationConfig(
        push_interval=R.GPU_PRESET.push_interval, push_velocity=(0.5, 1.5)
    )
