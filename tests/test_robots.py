"""Robot records and the jh1 robot: resolution by name, proportions, physics sanity, contacts.

One jitted MJX rollout (model, data and a control sequence as arguments) is compiled once per
module and shared by every physics test; actuators-off runs pass a model with zeroed gains.
"""

import copy
import dataclasses
import types

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from jaxhum import sim as jsim
from jaxhum.robots import (
    ROBOTS,
    ActuatorGroup,
    Robot,
    action_to_ctrl,
    foot_contacts,
    foot_contacts_np,
    get_robot,
)
from jaxhum.sim import NameLookupError
from jaxhum.sim.sensors import geoms_touching

JH1_JOINTS = (
    "left_hip_pitch", "left_hip_roll", "left_hip_yaw", "left_knee", "left_ankle_pitch", "left_ankle_roll",
    "right_hip_pitch", "right_hip_roll", "right_hip_yaw", "right_knee", "right_ankle_pitch", "right_ankle_roll",
    "waist_yaw",
    "left_shoulder_pitch", "left_shoulder_roll", "left_shoulder_yaw", "left_elbow",
    "right_shoulder_pitch", "right_shoulder_roll", "right_shoulder_yaw", "right_elbow",
)  # fmt: skip
HORIZON = 250  # control steps of every MJX rollout: 5 s at 20 ms


@pytest.fixture(scope="module")
def robot():
    return get_robot("jh1")


@pytest.fixture(scope="module")
def sim(robot):
    return robot.load()


@pytest.fixture(scope="module")
def idx(robot, sim):
    return robot.index(sim)


@pytest.fixture(scope="module")
def rollout(robot, idx):
    """Jitted (mjx model, mjx data, ctrls (HORIZON, nu)) -> qpos (HORIZON, nq), qvel, sensordata,
    contacts (HORIZON, 2)."""

    def run(model, data, ctrls):
        def control_step(d, ctrl):
            d = jsim.step(model, d, ctrl, robot.n_substeps)
            return d, (d.qpos, d.qvel, d.sensordata, foot_contacts(idx, d))

        return jax.lax.scan(control_step, data, ctrls)[1]

    return jax.jit(run)


def _native_data(sim, qpos):
    data = mujoco.MjData(sim.mj_model)
    data.qpos[:] = qpos
    mujoco.mj_forward(sim.mj_model, data)
    return data


def _mjx_run(rollout, sim, qpos, ctrls, model=None):
    """Starts MJX from the native state at `qpos` (put_data: no forward pass to compile)."""
    data = mjx.put_data(sim.mj_model, _native_data(sim, qpos))
    out = rollout(sim.mjx_model if model is None else model, data, jnp.asarray(ctrls, jnp.float32))
    return [np.asarray(x) for x in out]


def _native_run(sim, robot, qpos, ctrls, disableflags=None):
    m = sim.mj_model
    if disableflags is not None:
        m = copy.copy(m)
        m.opt.disableflags |= disableflags
    data = mujoco.MjData(m)
    data.qpos[:] = qpos
    mujoco.mj_forward(m, data)
    qpos_t, qvel_t = [], []
    for ctrl in ctrls:
        data.ctrl[:] = ctrl
        for _ in range(robot.n_substeps):
            mujoco.mj_step(m, data)
        qpos_t.append(data.qpos.copy())
        qvel_t.append(data.qvel.copy())
    return np.array(qpos_t), np.array(qvel_t)


def _home_ctrls(idx, n=HORIZON):
    return np.tile(idx.home_ctrl, (n, 1))


# --- records and resolution by name -------------------------------------------------------------


def test_registry_lists_robots_and_rejects_unknown():
    assert get_robot("jh1") is ROBOTS["jh1"]
    with pytest.raises(ValueError, match=r"unknown robot 'nope'; known robots: jh1"):
        get_robot("nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_robot("jh1").n_substeps = 3


def test_index_resolves_names_in_action_order(robot, sim, idx):
    m = sim.mj_model
    assert robot.joint_names == JH1_JOINTS
    assert (m.nq, m.nv, m.nu) == (7 + 21, 6 + 21, 21)
    for name, qadr, dadr, aid in zip(JH1_JOINTS, idx.qpos_adr, idx.dof_adr, idx.actuator_ids):
        joint = m.joint(name)
        assert m.jnt_type[joint.id] == mujoco.mjtJoint.mjJNT_HINGE
        assert (qadr, dadr) == (m.jnt_qposadr[joint.id], m.jnt_dofadr[joint.id])
        assert m.actuator(int(aid)).name == name and m.actuator_trnid[aid, 0] == joint.id
    assert m.joint(0).name == "root" and m.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE
    assert m.body(idx.root_body_id).name == "pelvis" and m.body(idx.torso_body_id).name == "torso"
    assert m.jnt_bodyid[0] == idx.root_body_id and idx.root_qpos_adr == 0
    assert [m.site(int(i)).name for i in idx.foot_site_ids] == ["left_foot_site", "right_foot_site"]
    assert [[m.geom(int(g)).name for g in side] for side in idx.foot_geom_ids] == [
        [f"{s}_foot_{p}" for p in ("toe_in", "toe_out", "heel_in", "heel_out")] for s in ("left", "right")
    ]
    assert m.geom(idx.floor_geom_id).name == "floor"
    # IMU sensors: gyro, accelerometer, framequat of the site, velocimeter, in sensordata order.
    sensors = {"imu_gyro": idx.gyro, "imu_acc": idx.acc, "imu_quat": idx.quat, "imu_linvel": idx.linvel}
    for name, sl in sensors.items():
        s = m.sensor(name)
        assert (sl.start, sl.stop) == (m.sensor_adr[s.id], m.sensor_adr[s.id] + m.sensor_dim[s.id])
        assert (
            m.site(int(m.sensor_objid[s.id])).name == "imu" and m.site_bodyid[m.sensor_objid[s.id]] == idx.root_body_id
        )
    assert idx.control_dt == pytest.approx(0.02) and m.opt.timestep == pytest.approx(0.004)


def test_gains_equal_the_mjcf_actuators(robot, sim, idx):
    m = sim.mj_model
    a = idx.actuator_ids
    np.testing.assert_array_equal(m.actuator_gaintype[a], mujoco.mjtGain.mjGAIN_FIXED)
    np.testing.assert_allclose(m.actuator_gainprm[a, 0], idx.kp)
    np.testing.assert_allclose(m.actuator_biasprm[a, :3], np.stack([0 * idx.kp, -idx.kp, -idx.kd], axis=1))
    np.testing.assert_allclose(m.actuator_forcerange[a], np.stack([-idx.torque_limit, idx.torque_limit], axis=1))
    assert m.actuator_forcelimited[a].all() and m.actuator_ctrllimited[a].all()
    np.testing.assert_allclose(m.actuator_ctrlrange[a], idx.joint_range)  # ctrl range = joint range
    np.testing.assert_allclose(m.dof_armature[idx.dof_adr], robot.group_values("armature"))
    # Spot values by hand from the groups: knee 300/6/139, ankle 200/2/50, elbow 40/1/25.
    knee, ankle, elbow = (JH1_JOINTS.index(j) for j in ("left_knee", "right_ankle_roll", "left_elbow"))
    assert (idx.kp[knee], idx.kd[knee], idx.torque_limit[knee]) == (300.0, 6.0, 139.0)
    assert (idx.kp[ankle], idx.kd[ankle], idx.torque_limit[ankle], idx.action_scale[ankle]) == (200.0, 2.0, 50.0, 0.25)
    assert (idx.kp[elbow], idx.kd[elbow], idx.torque_limit[elbow]) == (40.0, 1.0, 25.0)
    # Home: ctrl = the joint positions, inside the joint ranges; knees bent.
    np.testing.assert_array_equal(idx.home_ctrl[a], idx.home_joint_pos)
    assert ((idx.joint_range[:, 0] <= idx.home_joint_pos) & (idx.home_joint_pos <= idx.joint_range[:, 1])).all()
    assert idx.home_joint_pos[knee] > 0.1


def test_index_errors_name_the_problem(robot, sim):
    with pytest.raises(NameLookupError, match=r"no joint named 'left_toe'; known joint names: .*left_ankle_pitch"):
        dataclasses.replace(robot, joint_names=robot.joint_names[:-1] + ("left_toe",)).index(sim)
    with pytest.raises(NameLookupError, match=r"no site named 'imu2'"):
        dataclasses.replace(robot, imu_site="imu2").index(sim)
    stiff_knee = tuple(dataclasses.replace(g, kp=123.0) if g.matches("left_knee") else g for g in robot.groups)
    with pytest.raises(ValueError, match=r"'left_knee': MJCF kp .* differs from the robot's actuator group \(123.0\)"):
        dataclasses.replace(robot, groups=stiff_knee).index(sim)
    no_arms = tuple(g for g in robot.groups if not g.matches("left_elbow"))
    with pytest.raises(ValueError, match=r"'left_shoulder_pitch' must match exactly one actuator group, matches 0"):
        dataclasses.replace(robot, groups=no_arms).index(sim)
    twice = robot.groups + (ActuatorGroup((r"waist_.*",), 1.0, 1.0, 1.0, 1.0, 1.0),)
    with pytest.raises(ValueError, match=r"'waist_yaw' must match exactly one actuator group, matches 2"):
        dataclasses.replace(robot, groups=twice).index(sim)
    with pytest.raises(ValueError, match=r"no keyframe named 'crouch'; known keyframes: \['home'\]"):
        dataclasses.replace(robot, home_keyframe="crouch").index(sim)


def test_mass_and_height_are_g1_class(sim, idx):
    m = sim.mj_model
    assert 30.0 <= idx.total_mass <= 40.0
    assert idx.total_mass == pytest.approx(mujoco.mj_getTotalmass(m))
    # Height at the zero pose (legs straight): top of the highest geom above the lowest, from each
    # geom's bounding box turned into the world frame.
    data = _native_data(sim, m.qpos0)
    center, half = m.geom_aabb[:, :3], m.geom_aabb[:, 3:]
    rz = data.geom_xmat.reshape(-1, 3, 3)[:, 2, :]  # world z row of each geom's rotation
    zc = data.geom_xpos[:, 2] + (rz * center).sum(1)
    reach = (np.abs(rz) * half).sum(1)
    body = m.geom_bodyid > 0
    height = (zc + reach)[body].max() - (zc - reach)[body].min()
    assert height == pytest.approx(1.32, abs=0.03)
    assert 0.6 < idx.standing_height < 0.75  # pelvis at home, knees bent


def test_only_soles_collide_and_only_with_the_floor(sim, idx):
    m = sim.mj_model
    colliding = {int(i) for i in np.nonzero((m.geom_contype != 0) | (m.geom_conaffinity != 0))[0]}
    assert colliding == set(idx.foot_geom_ids.ravel().tolist()) | {idx.floor_geom_id}
    # MJX keeps one contact slot per candidate: 8 sole spheres against the floor, nothing else;
    # at home native MuJoCo finds exactly those 8 pairs.
    assert mjx.make_data(sim.mjx_model)._impl.contact.dist.shape == (8,)
    data = _native_data(sim, idx.home_qpos)
    pairs = {tuple(sorted(map(int, data.contact.geom[i]))) for i in range(data.ncon)}
    assert data.ncon == 8 and pairs == {(idx.floor_geom_id, int(g)) for g in idx.foot_geom_ids.ravel()}


# --- contacts --------------------------------------------------------------------------------


def test_geoms_touching_by_hand_under_vmap():
    # Two envs, three contact slots each; geoms 5 and 6 are a foot, 0 the floor.
    pair = jnp.array([[[0, 5], [3, 0], [6, 0]], [[0, 5], [0, 6], [3, 4]]])
    dist = jnp.array([[0.01, -0.01, 0.002], [0.0, 0.03, -0.2]])

    def touching(pair, dist):
        data = types.SimpleNamespace(_impl=types.SimpleNamespace(contact=types.SimpleNamespace(geom=pair, dist=dist)))
        return geoms_touching(data, jnp.array([5, 6]), 0)

    # Env 0: 3-0 penetrates but 3 is not a foot geom, feet are apart -> False.
    # Env 1: 5-0 at exactly 0 is not touching, 3-4 penetrates but is not the floor -> False.
    np.testing.assert_array_equal(jax.jit(jax.vmap(touching))(pair, dist), [False, False])
    dist = dist.at[0, 2].set(-1e-4).at[1, 0].set(-1e-3)  # 6-0 (either order) and 0-5 penetrate
    np.testing.assert_array_equal(jax.vmap(touching)(pair, dist), [True, True])


def test_native_foot_contacts_home_and_lifted(sim, idx):
    np.testing.assert_array_equal(foot_contacts_np(idx, _native_data(sim, idx.home_qpos)), [1.0, 1.0])
    lifted = idx.home_qpos.copy()
    lifted[idx.root_qpos_adr + 2] += 0.2
    np.testing.assert_array_equal(foot_contacts_np(idx, _native_data(sim, lifted)), [0.0, 0.0])
    one_foot = idx.home_qpos.copy()  # right leg swung out 0.3 rad: its sole rises about 2 cm
    one_foot[idx.qpos_adr[JH1_JOINTS.index("right_hip_roll")]] = -0.3
    np.testing.assert_array_equal(foot_contacts_np(idx, _native_data(sim, one_foot)), [1.0, 0.0])


def test_mjx_foot_contacts_lifted_then_landing(rollout, sim, idx):
    lifted = idx.home_qpos.copy()
    lifted[idx.root_qpos_adr + 2] += 0.2
    qpos, _, _, contacts = _mjx_run(rollout, sim, lifted, _home_ctrls(idx))
    np.testing.assert_array_equal(contacts[0], [0.0, 0.0])  # 2 mm of free fall after one step
    landed = int(np.argmax(contacts.min(axis=1) == 1.0))
    assert landed > 0 and qpos[landed, 2] < qpos[0, 2] - 0.15  # both soles touch once it has fallen 0.2 m


# --- physics sanity --------------------------------------------------------------------------


def test_stands_in_mjx_for_5_s(rollout, sim, idx):
    qpos, qvel, sensordata, contacts = _mjx_run(rollout, sim, idx.home_qpos, _home_ctrls(idx))
    assert np.isfinite(qpos).all() and np.isfinite(qvel).all()
    z = qpos[:, idx.root_qpos_adr + 2]
    assert np.abs(z / idx.standing_height - 1).max() < 0.05
    np.testing.assert_array_equal(contacts, 1.0)  # both feet down throughout
    # At rest the IMU reads: no rotation, no velocity, specific force g pointing up (pelvis nearly level).
    last = sensordata[-1]
    np.testing.assert_allclose(last[idx.gyro], 0.0, atol=0.02)
    np.testing.assert_allclose(last[idx.linvel], 0.0, atol=0.02)
    assert np.linalg.norm(last[idx.acc]) == pytest.approx(9.81, abs=0.05) and last[idx.acc][2] > 9.7
    np.testing.assert_allclose(np.abs(last[idx.quat]), [1, 0, 0, 0], atol=0.05)
    # Same inputs, same compiled function: bit-identical trajectory.
    again = _mjx_run(rollout, sim, idx.home_qpos, _home_ctrls(idx))[0]
    np.testing.assert_array_equal(again, qpos)


def test_stands_in_native_mujoco_for_5_s(robot, sim, idx):
    qpos, _ = _native_run(sim, robot, idx.home_qpos, _home_ctrls(idx))
    z = qpos[:, idx.root_qpos_adr + 2]
    assert np.abs(z / idx.standing_height - 1).max() < 0.05


def test_mjx_matches_native_mujoco_over_50_steps(rollout, robot, sim, idx):
    # A swaying motion (1.5 Hz, 0.2 of each joint's action scale) so the comparison exercises the
    # actuators, joint motion and changing contact forces, not a robot at rest.
    t = np.arange(HORIZON) * idx.control_dt
    ctrls = _home_ctrls(idx).copy()
    ctrls[:, idx.actuator_ids] += 0.2 * idx.action_scale * np.sin(2 * np.pi * 1.5 * t)[:, None]
    qpos, qvel, _, _ = _mjx_run(rollout, sim, idx.home_qpos, ctrls)
    ref_qpos, ref_qvel = _native_run(sim, robot, idx.home_qpos, ctrls[:50])
    assert np.abs(ref_qpos[:, idx.qpos_adr] - idx.home_joint_pos).max() > 0.05  # it does move
    # Measured on CPU (float32 MJX vs float64 MuJoCo): max |qpos diff| 4e-6, max |qvel diff| 7e-4.
    np.testing.assert_allclose(qpos[:50], ref_qpos, atol=1e-4)
    np.testing.assert_allclose(qvel[:50], ref_qvel, atol=5e-3)


def test_falls_with_actuators_off(rollout, robot, sim, idx):
    m = sim.mjx_model
    # Zeroed gains keep the compiled rollout (same shapes); native MuJoCo disables actuation instead.
    limp = m.replace(
        actuator_gainprm=jnp.zeros_like(m.actuator_gainprm), actuator_biasprm=jnp.zeros_like(m.actuator_biasprm)
    )
    qpos = _mjx_run(rollout, sim, idx.home_qpos, _home_ctrls(idx), model=limp)[0]
    steps_3s = int(round(3.0 / idx.control_dt))
    assert qpos[:steps_3s, idx.root_qpos_adr + 2].min() < 0.5 * idx.standing_height
    off = mujoco.mjtDisableBit.mjDSBL_ACTUATION
    native, _ = _native_run(sim, robot, idx.home_qpos, _home_ctrls(idx, steps_3s), disableflags=off)
    assert native[:, idx.root_qpos_adr + 2].min() < 0.5 * idx.standing_height


def test_mjcf_ships_with_the_package(robot):
    assert robot.mjcf.is_file() and robot.mjcf.parent.name == "assets"
    assert robot.mjcf.read_text().lstrip().startswith("<!--")
    assert isinstance(robot, Robot)


def test_action_to_ctrl_by_hand(idx):
    a = np.zeros(21)
    knee, ankle, elbow = (JH1_JOINTS.index(j) for j in ("left_knee", "left_ankle_roll", "right_elbow"))
    a[knee], a[ankle], a[elbow] = 0.5, -3.0, 1.0  # -3 is clipped to -1
    ctrl = np.asarray(jax.jit(lambda a: action_to_ctrl(idx, a))(jnp.asarray(a, jnp.float32)))
    expected = idx.home_ctrl.copy()
    expected[idx.actuator_ids[knee]] = 0.3 + 0.5 * 0.5  # home knee 0.3, scale 0.5
    expected[idx.actuator_ids[ankle]] = 0.0 - 0.25  # home 0, scale 0.25
    expected[idx.actuator_ids[elbow]] = 0.3 + 0.5
    np.testing.assert_allclose(ctrl, expected, atol=1e-6)
    # Targets stay inside the joint range: ankle roll range is +-0.2618, home 0, scale 0.25 -> 0.25 fits;
    # knee lower limit -0.0873 is reached from home 0.3 with scale 0.5 at a = -1 -> -0.2, clipped.
    a = np.zeros(21)
    a[knee] = -1.0
    ctrl = np.asarray(action_to_ctrl(idx, jnp.asarray(a, jnp.float32)))
    assert ctrl[idx.actuator_ids[knee]] == pytest.approx(-0.087267)
