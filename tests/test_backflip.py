"""backflip (issue 33): the flip's terms against hand-derived numbers, the robot's floor contacts in
MJX, the task on jh1_flip (one compiled env shared by the file), and the chapter's request to the
job service, verbatim, in-process (a stand-in program: nothing trains)."""

from __future__ import annotations

import json

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import jaxhum.envs
from jaxhum import robots
from jaxhum.envs import backflip
from jaxhum.envs.terms import backflip as terms
from jaxhum.envs.terms.reach import telescoped
from jaxhum.sim.sensors import geoms_touching

N_ENVS = 2
RULES = terms.Rules(takeoff_steps=2, stand_steps=3, stand_tilt=0.3, success_rotation=np.radians(330.0))


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# ----------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("angle", [0.0, 0.4, -0.4, 1.2, -1.5, 2.8, -2.8])
@pytest.mark.parametrize("yaw", [0.0, 1.0, -2.5])
def test_pitch_angle_is_the_tilt_about_the_bodys_own_lateral_axis_whatever_its_heading(angle, yaw):
    """A body yawed by `yaw`, then pitched by `angle` about its own y axis (R = Rz Ry): phi = angle
    (forward positive), in numpy and jnp alike; its tilt from upright is |angle|."""
    rot = rot_z(yaw) @ rot_y(angle)
    assert terms.pitch_angle(rot) == pytest.approx(angle, abs=1e-9)
    assert float(terms.pitch_angle(jnp.asarray(rot, jnp.float32))) == pytest.approx(angle, abs=1e-5)
    assert terms.tilt_angle(rot) == pytest.approx(abs(angle), abs=1e-6)


def test_accumulated_rotation_unwraps_a_full_backward_turn_to_two_pi():
    """24 steps of -15 degrees of pitch (backward) from upright: the pitch wraps past +-pi on the
    way, the accumulated rotation reads 2 pi; the same steps forward read -2 pi."""
    for sign in (1.0, -1.0):
        rotation, phi = jnp.zeros(()), jnp.asarray(terms.pitch_angle(np.eye(3)))
        for k in range(1, 25):
            now = jnp.asarray(terms.pitch_angle(rot_y(-sign * np.radians(15.0) * k)))
            rotation, phi = terms.accumulate_rotation(rotation, phi, now), now
        assert float(rotation) == pytest.approx(sign * 2 * np.pi, abs=1e-5)


# ----------------------------------------------------------------------------- phases and figures


def _step(flip, *, phi=0.0, tilt=0.0, height=0.7, feet=(1.0, 1.0), body=False, torque=(0.1, 0.2)):
    return terms.advance_flip(flip, RULES, phi=jnp.float32(phi), tilt=jnp.float32(tilt), height=jnp.float32(height),
                              foot_contact=jnp.asarray(feet, jnp.float32), body_contact=jnp.asarray(body),
                              torque_fraction=jnp.asarray(torque, jnp.float32))


def _scripted_flip(stand_tilt: float = 0.1) -> list[terms.FlipState]:
    """1 step on the ground, 12 in the air turning 30 degrees each (360 in all) up to 1.2 m, a
    landing at 0.2 rad of tilt, then 3 steps standing at `stand_tilt`."""
    flip = terms.new_flip(jnp.float32(0.0), jnp.float32(0.7))
    seq = [_step(flip, torque=(0.5, 0.9))]
    for k in range(1, 13):
        seq.append(_step(seq[-1], phi=float(terms.pitch_angle(rot_y(-np.radians(30.0) * k))), height=0.7 + 0.05 * k,
                         feet=(0.0, 0.0), tilt=0.5))
    seq.append(_step(seq[-1], feet=(1.0, 0.0), tilt=0.2, height=0.6))
    for _ in range(3):
        seq.append(_step(seq[-1], tilt=stand_tilt))
    return seq


def test_advance_flip_goes_ground_flight_landed_standing_and_succeeds_after_the_stand():
    seq = _scripted_flip()
    ground, air1, air2, last_air, touch = seq[0], seq[1], seq[2], seq[12], seq[13]
    assert not ground.flown and int(air1.air) == 1 and not air1.flown  # takeoff_steps = 2
    assert bool(air2.flown) and not last_air.landed
    assert float(last_air.rotation) == pytest.approx(2 * np.pi, abs=1e-5)
    assert bool(touch.landed) and float(touch.landing_tilt) == pytest.approx(0.2)
    assert int(touch.stand) == 0  # one foot down is not standing
    assert [int(s.stand) for s in seq[14:]] == [1, 2, 3] and [bool(s.success) for s in seq[14:]] == [False, False, True]
    end = seq[-1]
    assert float(end.peak_height) == pytest.approx(1.3) and float(end.peak_torque) == pytest.approx(0.9)
    assert float(end.landing_tilt) == pytest.approx(0.2)  # kept from the landing step
    assert not _scripted_flip(stand_tilt=0.35)[-1].success  # tilted past stand_tilt: not standing


def test_no_success_without_the_rotation_and_a_body_contact_breaks_the_stand():
    flip = terms.new_flip(jnp.float32(0.0), jnp.float32(0.7))
    for _ in range(3):  # a hop without rotation
        flip = _step(flip, feet=(0.0, 0.0))
    for _ in range(5):
        flip = _step(flip)
    assert bool(flip.landed) and int(flip.stand) == 5 and not flip.success
    assert int(_step(flip, body=True).stand) == 0


def test_telescoped_figures_average_to_the_episodes_final_figures():
    """The per-step metrics `evaluate` writes (telescoped running figures): their mean over the
    episode equals each figure after the last step, which `jaxhum.evaluate` reports."""
    seq = _scripted_flip()
    before = [terms.new_flip(jnp.float32(0.0), jnp.float32(0.7))] + seq[:-1]
    final = terms.figures(seq[-1])
    for name in final:
        steps = [float(telescoped(terms.figures(s)[name], terms.figures(b)[name], s.steps))
                 for s, b in zip(seq, before)]
        assert np.mean(steps) == pytest.approx(float(final[name]), rel=1e-5, abs=1e-4), name
    assert float(final["flip_missed"]) == 0.0 and float(final["flip_rotation_deg"]) == pytest.approx(360.0, abs=1e-3)
    assert float(final["flip_landing_tilt_deg"]) == pytest.approx(np.degrees(0.2), rel=1e-5)
    never = terms.figures(terms.new_flip(jnp.float32(0.0), jnp.float32(0.7)))
    assert float(never["flip_missed"]) == 1.0 and float(never["flip_landing_tilt_deg"]) == pytest.approx(180.0)


# ----------------------------------------------------------------------------- reward terms


def test_reward_terms_against_hand_derived_values():
    f, t = jnp.asarray(False), jnp.asarray(True)
    assert float(terms.height_gain(height=jnp.float32(1.0), standing_height=0.7, flip_done=f)) == pytest.approx(0.3)
    assert float(terms.height_gain(height=jnp.float32(0.5), standing_height=0.7, flip_done=f)) == 0.0
    assert float(terms.height_gain(height=jnp.float32(1.0), standing_height=0.7, flip_done=t)) == 0.0
    # 0.2 rad in a 20 ms step: 10 rad/s; capped at one turn; nothing on the ground or for forward rotation.
    rate = terms.rotation_progress(rotation=jnp.float32(1.2), rotation_before=jnp.float32(1.0), airborne=t, dt=0.02)
    assert float(rate) == pytest.approx(10.0, rel=1e-5)
    capped = terms.rotation_progress(rotation=jnp.float32(6.5), rotation_before=jnp.float32(6.2), airborne=t, dt=0.02)
    assert float(capped) == pytest.approx((2 * np.pi - 6.2) / 0.02, rel=1e-4)
    assert float(terms.rotation_progress(rotation=jnp.float32(1.2), rotation_before=jnp.float32(1.0), airborne=f,
                                         dt=0.02)) == 0.0
    assert float(terms.rotation_progress(rotation=jnp.float32(0.8), rotation_before=jnp.float32(1.0), airborne=t,
                                         dt=0.02)) == 0.0
    land = dict(success_rotation=np.radians(330.0), tilt_sigma=0.25)
    assert float(terms.landing_bonus(touchdown=t, rotation=jnp.float32(6.0), tilt=jnp.float32(0.5), **land)) == \
        pytest.approx(np.exp(-1.0), rel=1e-6)
    assert float(terms.landing_bonus(touchdown=t, rotation=jnp.float32(5.0), tilt=jnp.float32(0.0), **land)) == 0.0
    assert float(terms.landing_bonus(touchdown=f, rotation=jnp.float32(6.0), tilt=jnp.float32(0.0), **land)) == 0.0
    assert float(terms.upright_after_landing(after_flip=t, tilt=jnp.float32(0.5), tilt_sigma=0.25)) == \
        pytest.approx(np.exp(-1.0), rel=1e-6)
    assert float(terms.upright_after_landing(after_flip=f, tilt=jnp.float32(0.0), tilt_sigma=0.25)) == 0.0
    dq = jnp.asarray([0.3, -0.4, 0.0])
    assert float(terms.pose_after_landing(after_flip=t, joint_pos_error=dq, pose_sigma=0.25)) == \
        pytest.approx(np.exp(-1.0), rel=1e-6)
    assert float(terms.still_after_landing(after_flip=t, root_linvel=jnp.asarray([1.0, 2.0, 2.0]))) == 9.0
    assert float(terms.still_after_landing(after_flip=f, root_linvel=jnp.asarray([1.0, 2.0, 2.0]))) == 0.0
    assert float(terms.late_takeoff(time=jnp.float32(1.2), takeoff_seconds=1.0, flown=f)) == 1.0
    assert float(terms.late_takeoff(time=jnp.float32(1.2), takeoff_seconds=1.0, flown=t)) == 0.0
    assert float(terms.late_takeoff(time=jnp.float32(0.5), takeoff_seconds=1.0, flown=f)) == 0.0
    assert float(terms.body_contact(touching=t)) == 1.0


def test_clock_term_runs_on_mjx_and_native_data():
    class Native:
        time = 1.5

    assert terms.time_since_start(data=Native(), episode_seconds=3.0).tolist() == [0.5]

    class Traced:
        time = jnp.float32(0.75)

    assert terms.time_since_start(data=Traced(), episode_seconds=3.0).shape == (1,)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize("override, field", [
    ({"fall_tilt": 0.8}, "fall_tilt"),
    ({"takeoff_steps": 0}, "takeoff_steps"),
    ({"success_rotation_deg": 0.0}, "success_rotation_deg"),
    ({"episode_seconds": 1.0}, "episode_seconds"),
    ({"stand_tilt": -0.1}, "stand_tilt"),
    ({"reward_weights": {"flips": 1.0}}, "reward_weights"),
    ({"robot": "atlas"}, "robot"),
])
def test_bad_config_is_one_line_naming_the_field(override, field):
    with pytest.raises(ValueError) as err:
        jaxhum.envs.make_config("backflip", **override)
    assert str(err.value).startswith(f"{field}:") and "\n" not in str(err.value)


def test_gpu_preset_turns_on_the_randomization_a_flip_needs():
    from experiments import humanoid_backflip

    config = humanoid_backflip.get_config("gpu")
    env_config = jaxhum.envs.make_config(config.env_name, **config.env)
    r = env_config.randomization
    for name in ("mass_scale", "torso_mass", "com_offset", "motor_strength", "friction"):
        assert getattr(r, name) is not None, name
    assert r.action_latency >= 1 and not r.pushes_on and env_config.critic_randomization
    assert config.ppo.num_envs == 8192
    hours = config.num_timesteps / humanoid_backflip.STEPS_PER_SECOND["gpu"] / 3600
    assert hours + humanoid_backflip.START_SECONDS["gpu"] / 3600 <= 0.5  # the <= 30 min budget


# ----------------------------------------------------------------------------- the robot's contacts


def _lowest_point(m: mujoco.MjModel, d: mujoco.MjData, g: int) -> float:
    """z of geom g's lowest point (a sphere or a capsule)."""
    z, radius = d.geom_xpos[g, 2], m.geom_size[g, 0]
    if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_CAPSULE:
        z = z - abs(d.geom_xmat[g].reshape(3, 3)[2, 2]) * m.geom_size[g, 1]
    return float(z - radius)


def test_jh1_flip_knees_and_hands_touch_the_floor_in_mjx_and_jh1_only_its_soles():
    """jh1_flip's shank (knee), hand and forearm collide with the floor: the robot lowered until
    that geom is 5 mm in the floor makes an MJX contact of it with the floor (native MuJoCo agrees);
    standing at home, none touches. jh1 itself still collides with its soles alone."""
    from mujoco import mjx

    robot = robots.get_robot("jh1_flip")
    sim = robot.load()
    idx = robot.index(sim)
    m = sim.mj_model
    d = mujoco.MjData(m)
    ids = {n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, n) for n in ("left_shank", "right_hand", "left_forearm")}
    body = backflip.body_geoms(m, idx)
    assert set(ids.values()) <= set(body.tolist()) and len(body) == 9

    @jax.jit
    def touching(qpos):
        data = mjx.forward(sim.mjx_model, mjx.make_data(sim.mjx_model).replace(qpos=qpos))
        return jnp.stack([geoms_touching(data, jnp.asarray([g]), idx.floor_geom_id) for g in ids.values()])

    home = idx.home_qpos.copy()
    assert not np.any(np.asarray(touching(jnp.asarray(home, jnp.float32))))
    for k, g in enumerate(ids.values()):
        d.qpos[:] = home
        mujoco.mj_forward(m, d)
        qpos = home.copy()
        qpos[idx.root_qpos_adr + 2] -= _lowest_point(m, d, g) + 0.005
        d.qpos[:] = qpos
        mujoco.mj_forward(m, d)
        native = any({int(c.geom[0]), int(c.geom[1])} == {g, idx.floor_geom_id} and c.dist < 0
                     for c in d.contact[:d.ncon])
        assert native and bool(touching(jnp.asarray(qpos, jnp.float32))[k]), list(ids)[k]
    plain = robots.get_robot("jh1").native_model()
    colliding = [mujoco.mj_id2name(plain, mujoco.mjtObj.mjOBJ_GEOM, g) for g in range(plain.ngeom)
                 if plain.geom_contype[g] or plain.geom_conaffinity[g]]
    feet = [g for side in robots.get_robot("jh1").foot_geoms for g in side]
    assert sorted(colliding) == sorted(["floor", *feet])


# ----------------------------------------------------------------------------- the task on jh1_flip


@pytest.fixture(scope="module")
def compiled():
    """backflip on jh1_flip: reset and step of N_ENVS envs, jitted once for the file."""
    env = jaxhum.envs.make("backflip")
    reset = jax.jit(jax.vmap(env.reset))
    step = jax.jit(jax.vmap(chex.assert_max_traces(env.step, n=1)))
    return env, reset, step


def test_env_shapes_metrics_and_a_quiet_standing_start(compiled):
    env, reset, step = compiled
    names = [n for n, _ in env.observation_layout]
    assert names[0] == "time_since_start" and env.action_size == 21
    assert env.critic_observation_size == env.observation_size + backflip.CRITIC_EXTRA_SIZE
    assert env.tracking_bounds == {"flip_missed": 0.0}
    state = reset(jax.random.split(jax.random.PRNGKey(0), N_ENVS))
    for _ in range(3):
        state = step(state, jnp.zeros((N_ENVS, env.action_size)))
    chex.assert_tree_all_finite((state.obs, state.reward, state.critic_obs))
    for name in ("flip_missed", "flip_rotation_deg", "flip_landing_tilt_deg", "flip_peak_height", "flip_peak_torque"):
        assert state.metrics[f"tracking/{name}"].shape == (N_ENVS,)
    np.testing.assert_allclose(state.metrics["tracking/flip_missed"], 1.0)
    assert np.all(np.abs(state.info["flip"].rotation) < 0.05) and not np.any(state.done)
    np.testing.assert_allclose(state.obs[:, 0], 3 * env.dt / env.config.episode_seconds, rtol=1e-5)
    peak = np.asarray(state.metrics["tracking/flip_peak_torque"])
    assert np.all((peak > 0) & (peak < 1))


def test_a_robot_spinning_backward_in_the_air_accumulates_its_rotation_and_is_paid(compiled):
    """The standing robot lifted 1.5 m and given -4 rad/s about its lateral axis (backward): after
    10 control steps in the air the accumulated rotation is about 4 x 10 x dt (the PD holds the
    pose, so the body turns nearly rigidly) and the rotation and height terms pay."""
    env, reset, step = compiled
    state = reset(jax.random.split(jax.random.PRNGKey(1), N_ENVS))
    adr = env.robot.index(env.sim).root_qpos_adr
    qpos = state.data.qpos.at[:, adr + 2].add(1.5)
    qvel = state.data.qvel.at[:, 4].set(-4.0)  # the free joint's angular velocity about the pelvis y axis
    state = state.replace(data=state.data.replace(qpos=qpos, qvel=qvel))
    for _ in range(10):
        state = step(state, jnp.zeros((N_ENVS, env.action_size)))
    rotation = np.asarray(state.info["flip"].rotation)
    np.testing.assert_allclose(rotation, 4.0 * 10 * env.dt, rtol=0.15)
    assert np.all(np.asarray(state.metrics["reward/rotation"]) > 0.1 * 2.0)
    assert np.all(np.asarray(state.metrics["reward/height"]) > 0) and np.all(state.info["flip"].flown)


# ----------------------------------------------------------------------------- the chapter's request

CURL_BODY = '{ "task": "humanoid_backflip", "policy_type": "PPO", "num_iterations": 10000 }'


def test_the_chapters_request_verbatim_gets_201_with_an_honest_estimate(tmp_path):
    """`curl -X POST .../reinforcement-learning -d '<CURL_BODY>'` on a server with a bearer token:
    201 with job_id, status, estimated_completion (ISO UTC), estimated_completion_hours =
    (START_SECONDS + 10000 x env steps per iteration / STEPS_PER_SECOND) / 3600 for the preset the
    job runs, and log_link; the job's command line trains humanoid_backflip for those steps."""
    pytest.importorskip("fastapi")
    schemathesis = pytest.importorskip("schemathesis")
    from experiments import humanoid_backflip
    from jaxhum.jobs.app import create_app
    from jaxhum.run import config as run_config

    token = "backflip-test-token"
    started = []
    app = create_app(tmp_path / "data", token=token, poll_interval=0.05,
                     program=lambda task, args: started.append((task, list(args))) or ["true"])
    api = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Authorization": f"Bearer {token}"})
    submit = api["/reinforcement-learning"]["POST"]
    # The first check of a task builds it (robot load and shapes: ~10 s on a shared 2-core CPU).
    response = submit.Case(body=json.loads(CURL_BODY), media_type="application/json",
                           headers={"Authorization": f"Bearer {token}"}).call(timeout=300)
    assert response.status_code == 201, response.text
    reply = response.json()
    assert {"job_id", "status", "estimated_completion", "estimated_completion_hours", "log_link"} <= set(reply)
    assert reply["log_link"].endswith(f"/logs/{reply['job_id']}.log")
    import datetime
    eta = datetime.datetime.fromisoformat(reply["estimated_completion"])
    job = app.state.manager.store.get(reply["job_id"])
    preset = job.preset
    per_iteration = run_config.steps_per_iteration(humanoid_backflip.get_config(preset))
    assert job.num_timesteps == 10000 * per_iteration
    expected = (humanoid_backflip.START_SECONDS[preset] + job.num_timesteps
                / humanoid_backflip.STEPS_PER_SECOND[preset]) / 3600
    assert reply["estimated_completion_hours"] == pytest.approx(expected, abs=1e-3)
    ahead = (eta - datetime.datetime.now(datetime.UTC)).total_seconds() / 3600
    assert ahead == pytest.approx(expected, abs=0.05)
    assert job.task == "humanoid_backflip" and "--num-timesteps" in job.argv
    unauthorized = submit.Case(body=json.loads(CURL_BODY), media_type="application/json",
                               headers={"Authorization": "Bearer wrong"}).call(timeout=300)
    assert unauthorized.status_code == 401
