"""sim2sim on a randomized run: each native episode lives in its MJX episode's world
(`jaxhum.tools.native_randomization`): physics parameters, action latency, kicks, noise and lag.

Layers: the host appliers by hand; the replay of a randomized joystick's episodes against its MJX
episodes, exactly for the bookkeeping (parameters, lag and latency draws, kick steps and vectors,
noise, the applied actions) and approximately for the observations of the native physics over a
short horizon, where leaving out any one part of the world moves the native episode away from
MJX's; the report; a nominal run's native episodes unchanged.

One MJX compile set for the module: the randomized joystick's reset and a 10-step rollout.
"""

from __future__ import annotations

import dataclasses
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhum
from jaxhum.envs.terms import randomization as R
from jaxhum.tools import native_randomization as NR
from jaxhum.tools import sim2sim

EPISODES = 3
SEED = 0
EPISODE_SECONDS = 0.2  # 10 control steps of 20 ms
# Every randomization on, physics ranges wide enough that leaving the parameters out shows within
# the horizon; pushes every 2 to 4 steps; lag and latency drawn in [0, 2].
WORLD = R.RandomizationConfig(
    friction=(0.3, 1.2), mass_scale=(0.7, 1.3), torso_mass=(1.0, 3.0), com_offset=(-0.05, 0.05),
    joint_damping=(0.5, 3.0), armature=(1.0, 1.5), frictionloss=(0.1, 0.5), kp_scale=(0.6, 1.4),
    kd_scale=(0.6, 1.4), motor_strength=(0.5, 1.0),
    obs_noise={"joint_vel": 0.5, "gravity_in_imu": 0.05, "imu_angular_velocity": 0.2}, obs_lag=2,
    action_latency=2, push_interval=(0.04, 0.08), push_velocity=(0.3, 0.6))
# Native MuJoCo (float64) against MJX (float32) on MJX's actions, observations 0..HORIZON-1: the
# engines' contacts drift apart (jh1 trains with 2 solver iterations, which do not converge on a
# contact step), so the comparison is short and on the slow quantities. Measured with the world
# applied: joint angles within 0.004 rad, gravity direction within 0.0004; leaving one part out
# (parameters, kicks, latency or lag) gives 0.013 to 0.12 rad, 3.3 to 80 times the world's.
HORIZON = 6
JOINT_ATOL = 0.01  # rad
GRAVITY_ATOL = 0.002  # of the unit gravity direction in the IMU frame
PART_FACTOR = 2.0  # leaving a part out moves the joint angles at least this many times further
# Noise then lag on MJX's own true observations against MJX's observations: the same float32
# numbers up to one rounding. XLA on the CPU computes obs + scale * u as one fused multiply-add
# (rounded once), the native side adds the rounded product: they differ by at most an ulp of the
# result plus an ulp of the noise (measured: 1 ulp, in 1 of 836 entries).


class Linear:
    """A small numpy policy tanh(obs W), with `Policy`'s ctrl mapping; records what it saw."""

    def __init__(self, w: np.ndarray, spec):
        self.w, self.spec, self.seen, self.applied = w, spec, [], []

    def action(self, obs: np.ndarray) -> np.ndarray:
        return np.tanh(np.asarray(obs, np.float32) @ self.w)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        self.seen.append(np.array(obs))
        return self.action(obs)

    def ctrl(self, action: np.ndarray) -> np.ndarray:
        self.applied.append(np.array(action))
        s = self.spec
        return np.clip(s.ctrl_offset + s.ctrl_scale * np.clip(action, -1.0, 1.0), s.ctrl_min, s.ctrl_max)


class Replay(Linear):
    """Plays given actions (T, A) in turn, whatever it sees."""

    def __init__(self, actions: np.ndarray, spec):
        super().__init__(None, spec)
        self.actions = actions

    def action(self, obs: np.ndarray) -> np.ndarray:
        return self.actions[len(self.seen) - 1]


def _weights(env) -> np.ndarray:
    frame = sum(size for _, size in env.observation_layout)
    return np.random.default_rng(0).normal(0.0, 0.3 / np.sqrt(frame), (frame, env.action_size)).astype(np.float32)


@pytest.fixture(scope="module")
def env():
    return jaxhum.envs.make("joystick", episode_seconds=EPISODE_SECONDS, randomization=WORLD)


@pytest.fixture(scope="module")
def starts(env):
    return sim2sim.episode_starts(env, EPISODES, SEED)


@pytest.fixture(scope="module")
def mjx(env):
    """The MJX episodes sim2sim's native ones are matched to, under the linear policy: the reset
    state and, per step (T, N, ...): obs, true obs (the critic's first O), push_magnitude, chosen
    and applied action, and the kick the step adds, recomputed from the MJX state's own info."""
    rand = NR.randomizer(env)
    w = jnp.asarray(_weights(env))
    frame, d0 = w.shape[0], rand.nominal.root_dof

    def one_step(state, action):
        zero = state.data.replace(qvel=jnp.zeros_like(state.data.qvel))
        kick = rand.push(zero, state.info)[0].qvel[d0 : d0 + 2]
        nxt = env.step_without_reset(state, action)
        r = nxt.info["randomization"]
        return nxt, (nxt.obs, nxt.critic_obs[:frame], nxt.metrics["push_magnitude"], action,
                     r["action_buffer"][r["action_latency"]], kick)

    @jax.jit
    def run(keys):
        state = jax.vmap(env.reset)(keys)

        def body(s, _):
            return jax.vmap(one_step)(s, jnp.tanh(s.obs @ w))

        _, out = jax.lax.scan(body, state, None, length=env.episode_length)
        return state, out

    state, out = jax.device_get(run(jax.random.split(jax.random.key(SEED), EPISODES)))
    names = ("obs", "true_obs", "push", "action", "applied", "kick")
    return types.SimpleNamespace(reset=state, **dict(zip(names, out)))


def _observations(mjx, i: int) -> np.ndarray:
    """(T + 1, O) MJX episode i's observations, the reset's first."""
    return np.concatenate([mjx.reset.obs[i][None], mjx.obs[:, i]])


# ----------------------------------------------------------------------------- by hand


def test_action_delay_and_observation_path_by_hand():
    delay = NR.ActionDelay(2, 1)
    assert [float(delay(np.float32([t]))[0]) for t in (1, 2, 3, 4)] == [0.0, 0.0, 1.0, 2.0]
    a = np.float32([0.3])
    assert NR.ActionDelay(0, 1)(a) is a
    world = NR.NativeWorld(params={}, kicks=np.zeros((3, 2), np.float32),
                           noise=np.float32([[0.5], [0.0], [-1.0], [0.0]]), obs_lag=1, action_latency=0, root_dof=0)
    path = NR.ObservationPath(world)
    # noisy: 1.5, 2, 2, 4; lag 1: the first fills the step before it
    assert [float(path(np.float32([t]), t - 1)[0]) for t in (1, 2, 3, 4)] == [1.5, 1.5, 2.0, 2.0]
    frame = np.float32([7.0])
    assert NR.ObservationPath(None)(frame, 0) is frame
    qvel = np.zeros(4)
    dataclasses.replace(world, kicks=np.float32([[0.0, 0.0], [0.3, -0.4], [0.0, 0.0]]), root_dof=1).kick(qvel, 1)
    np.testing.assert_array_equal(qvel, np.float32([0.0, 0.3, -0.4, 0.0]))


def test_native_names_every_randomization_field():
    """A field added to RandomizationConfig shows in the report as MJX-only until it is applied natively."""
    fields = {f.name for f in dataclasses.fields(R.RandomizationConfig)} - {"obs_noise_type"}
    assert set(NR.NATIVE) == fields
    env = types.SimpleNamespace(config=types.SimpleNamespace(randomization=WORLD))
    assert NR.report(env) == {"applied_natively": sorted(fields, key=NR.NATIVE.index), "mjx_only": []}
    assert NR.report(types.SimpleNamespace(config=types.SimpleNamespace())) == {"applied_natively": [],
                                                                               "mjx_only": []}


def test_the_reset_noise_is_redrawn_by_the_tasks_split(env):
    rand = NR.randomizer(env)
    frame, a = rand.scales.shape[0], rand.nominal.actuator_ids.shape[0]
    key = jax.random.key(7)
    foreign = jax.random.split(key, 2)[0]
    for i, start_key in enumerate([split(key)[2] for split in NR.RESET_SPLITS] + [foreign]):
        start = rand.episode_start(jax.random.fold_in(start_key, 1), frame, a)
        drawn, info = rand.observe(jnp.zeros((frame,), jnp.float32), start)  # at reset: lag shows the noisy first
        noises, matches = jax.device_get(NR.reset_noise(rand, key, info))
        assert matches.tolist() == [j == i for j in range(len(NR.RESET_SPLITS))]
        if i < len(NR.RESET_SPLITS):
            np.testing.assert_array_equal(noises[i], drawn)


# ----------------------------------------------------------------------------- the replay, exactly


def test_worlds_hold_each_episodes_draws(env, starts, mjx):
    info = mjx.reset.info
    assert len(starts.worlds) == EPISODES
    for i, world in enumerate(starts.worlds):
        assert world.params.keys() == info["params"].keys()
        for name, value in world.params.items():
            np.testing.assert_array_equal(value, info["params"][name][i], err_msg=name)
        assert world.obs_lag == int(info["randomization"]["obs_lag"][i])
        assert world.action_latency == int(info["randomization"]["action_latency"][i])
        assert world.kicks.shape == (env.episode_length, 2)
        assert world.noise.shape == (env.episode_length + 1, mjx.true_obs.shape[-1])
    assert len({(w.obs_lag, w.action_latency) for w in starts.worlds}) > 1, "the episodes must differ"
    nominal = env.sim.mj_model
    mass = nominal.body_mass.copy()
    model = starts.worlds[0].model(nominal)
    np.testing.assert_array_equal(nominal.body_mass, mass)  # a copy is edited, never the host model
    np.testing.assert_allclose(model.body_mass, info["params"]["body_mass"][0], rtol=1e-7)
    np.testing.assert_allclose(model.dof_frictionloss, info["params"]["dof_frictionloss"][0], rtol=1e-7)


def test_kicks_are_mjx_kicks_at_the_same_steps(starts, mjx):
    for i, world in enumerate(starts.worlds):
        np.testing.assert_array_equal(world.kicks, mjx.kick[:, i])
        steps = np.flatnonzero(np.any(world.kicks != 0.0, axis=1))
        np.testing.assert_array_equal(steps, np.flatnonzero(mjx.push[:, i]))  # the env's own metric
        np.testing.assert_allclose(np.hypot(*world.kicks.T), mjx.push[:, i], rtol=1e-6)
        assert len(steps) >= 2


def test_noise_then_lag_on_mjx_true_observations_are_mjx_observations(env, starts, mjx):
    quiet = NR.randomizer(env).scales == 0  # the terms without noise
    for i, world in enumerate(starts.worlds):
        true = np.concatenate([mjx.reset.critic_obs[i][None, : mjx.true_obs.shape[-1]], mjx.true_obs[:, i]])
        path = NR.ObservationPath(world)
        seen = np.stack([path(frame, t) for t, frame in enumerate(true)])
        want = _observations(mjx, i)
        rounding = np.spacing(np.abs(want)) + np.spacing(np.abs(world.noise))
        assert np.all(np.abs(seen - want) <= rounding), np.max(np.abs(seen - want) / rounding)
        assert np.all(world.noise[:, quiet] == 0.0) and np.all(np.any(world.noise[:, ~quiet] != 0.0, axis=1))


def test_native_applies_the_actions_mjx_applies(env, starts, mjx):
    for i, world in enumerate(starts.worlds):
        policy = Replay(mjx.action[:, i], env.deploy)
        sim2sim.native_episode(env, policy, starts.qpos[i], starts.qvel[i], starts.commands[i], world)
        np.testing.assert_array_equal(np.stack(policy.applied), mjx.applied[: len(policy.applied), i])


# ----------------------------------------------------------------------------- the physics, approximately


def test_native_observations_follow_mjx_and_every_part_of_the_world_counts(env, starts, mjx):
    offsets = np.cumsum([0] + [size for _, size in env.observation_layout])
    part = {name: slice(offsets[k], offsets[k + 1]) for k, (name, _) in enumerate(env.observation_layout)}

    def distance(i, world, name="joint_pos_from_home"):
        policy = Replay(mjx.action[:, i], env.deploy)
        sim2sim.native_episode(env, policy, starts.qpos[i], starts.qvel[i], starts.commands[i], world)
        seen = np.stack(policy.seen)[:HORIZON, part[name]]
        return float(np.max(np.abs(seen - _observations(mjx, i)[:HORIZON, part[name]])))

    for i, world in enumerate(starts.worlds):
        near = distance(i, world)
        assert near < JOINT_ATOL, (i, near)
        assert distance(i, world, "gravity_in_imu") < GRAVITY_ATOL, i
        without = {"params": dataclasses.replace(world, params={})}
        if np.any(world.kicks[: HORIZON - 1]):
            without["kicks"] = dataclasses.replace(world, kicks=np.zeros_like(world.kicks))
        if world.action_latency:
            without["latency"] = dataclasses.replace(world, action_latency=0)
        if world.obs_lag:
            without["lag"] = dataclasses.replace(world, obs_lag=0)
        for name, ablated in without.items():
            far = distance(i, ablated)
            assert far > PART_FACTOR * near, (i, name, far, near)


# ----------------------------------------------------------------------------- the report


def test_compare_reports_what_was_applied_natively(env):
    run = types.SimpleNamespace(env=env, config=types.SimpleNamespace(env_name="joystick"), run_dir="run", step=0)
    mjx_report = {"success_rate": 1.0, "fall_rate": 0.0, "forward_velocity": 0.0, "episode_length": 10.0,
                  "tracking/vx": 0.1, "tracking/yaw": 0.1}
    report = sim2sim.compare(run, Linear(_weights(env), env.deploy), EPISODES, SEED,
                             mjx_report=mjx_report)
    assert report["randomization"] == {"applied_natively": list(NR.NATIVE), "mjx_only": []}
    assert set(report["mujoco"]) == set(mjx_report)
    json.dumps(report)
    last = sim2sim.format_table(report).splitlines()[-1]
    assert last.startswith("  randomization in both engines: friction, mass_scale,") and last.endswith("MJX only: none")


# ----------------------------------------------------------------------------- nominal: unchanged


def _native_episode_before(env, policy, qpos, qvel, commands=None):
    """sim2sim.native_episode as it was before native randomization (the reference)."""
    import mujoco

    model, spec = env.sim.mj_model, env.deploy
    n_substeps = int(round(env.dt / model.opt.timestep))
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = qpos, qvel
    mujoco.mj_forward(model, data)

    def observe(last_action, t):
        extra = {} if commands is None else {"command": commands[t]}
        return spec.host_observation(model=model, data=data, last_action=last_action, **extra)

    obs = observe(np.zeros(env.action_size, np.float32), 0)
    x0, terminated, steps, tracking = float(data.subtree_com[0, 0]), False, 0, {}
    while steps < env.episode_length and not terminated:
        action = policy(obs)
        data.ctrl[spec.actuator_ids] = policy.ctrl(action)
        mujoco.mj_step(model, data, nstep=n_substeps)
        if commands is not None:
            for name, error in spec.host_tracking(model=model, data=data, command=commands[steps]).items():
                tracking[name] = tracking.get(name, 0.0) + error
        steps += 1
        obs = observe(action, steps)
        terminated = spec.host_terminated(model=model, data=data)
        if not np.all(np.isfinite(data.qpos)):
            terminated = True
    return {"length": steps, "terminated": float(terminated), "distance": float(data.subtree_com[0, 0]) - x0,
            **{name: total / steps for name, total in tracking.items()}}


def test_a_nominal_run_is_unchanged():
    """No randomization: no world, and the native episode is the one before, bit for bit; a world
    with nothing drawn (nominal parameters, no kicks, zero noise, lag and latency) is the same."""
    env = jaxhum.envs.make("joystick", episode_seconds=EPISODE_SECONDS)  # built, never compiled
    assert NR.randomizer(env) is None
    assert NR.episode_worlds(env, jax.random.split(jax.random.key(0), 2), {}) is None
    assert NR.report(env) == {"applied_natively": [], "mjx_only": []}
    idx = env.robot.index(env.sim)
    rng = np.random.default_rng(1)
    qpos = np.asarray(idx.home_qpos, np.float64).copy()
    qpos[idx.qpos_adr] += rng.uniform(-0.05, 0.05, len(idx.qpos_adr))
    qvel = np.zeros(env.sim.mj_model.nv)
    commands = np.tile(np.float32([0.5, 0.0, 0.2]), (env.episode_length + 1, 1))
    w = _weights(env)
    frame = w.shape[0]
    nothing = NR.NativeWorld(params={}, kicks=np.zeros((env.episode_length, 2), np.float32),
                             noise=np.zeros((env.episode_length + 1, frame), np.float32), obs_lag=0, action_latency=0,
                             root_dof=0)
    runs = {}
    for name, world in (("before", "before"), ("none", None), ("nothing", nothing)):
        policy = Linear(w, env.deploy)
        if world == "before":
            out = _native_episode_before(env, policy, qpos, qvel, commands)
        else:
            out = sim2sim.native_episode(env, policy, qpos, qvel, commands, world)
        runs[name] = (out, np.stack(policy.seen))
    for name in ("none", "nothing"):
        assert runs[name][0] == runs["before"][0], name
        np.testing.assert_array_equal(runs[name][1], runs["before"][1], err_msg=name)
    table = sim2sim.format_table({"task": "joystick", "checkpoint_step": 0, "episodes": 1, "seed": 0,
                                  "mjx": {"success_rate": 1.0}, "mujoco": {"success_rate": 1.0},
                                  "randomization": NR.report(env)})
    assert table.splitlines()[-1] == "  randomization: none (the nominal model in both engines)"


def test_a_reset_with_an_unknown_key_split_is_refused(env, mjx, monkeypatch):
    """Rather than a wrong first noise draw: one line naming the cause."""
    from jaxhum.envs import robot_task

    monkeypatch.setattr(NR, "RESET_SPLITS", (robot_task.split_reset_keeping_key,))  # joystick uses split_reset
    with pytest.raises(ValueError, match=r"^randomization: the reset's observation noise cannot be replayed"):
        NR.episode_worlds(env, jax.random.split(jax.random.key(SEED), EPISODES), mjx.reset.info)
