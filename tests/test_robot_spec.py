"""Robots as data (`jaxhum.robots.load`): jh1's spec file equals JH1, `robot=` takes a spec path
(Python and command line), jh_mini (the second robot, a spec file) under every robot task, a
user's MJCF edited into shape, and every MJX readiness refusal.

Everything but the task smoke is native MuJoCo, mostly on tiny MJCFs written to tmp_path; the
smoke compiles each task's reset and step once on jh_mini (joystick's inside navigate's, as its
low level) and joystick's on jh1 from its spec file (test_joystick's programs, from the
persistent compilation cache).
"""

import dataclasses
import importlib.resources
import pathlib
import re
import warnings

import chex
import jax
import mujoco
import numpy as np
import pytest

import jaxhum
from jaxhum import config as config_lib
from jaxhum import robots
from jaxhum.robots import JH1, NotReadyError, SpecError, readiness
from jaxhum.robots.edits import MjcfEdits
from jaxhum.run import config as run_config

JH1_TOML = pathlib.Path(str(importlib.resources.files("jaxhum.robots") / "assets" / "jh1.toml"))

# A tiny biped, ready for MJX as written: hip and knee per leg, two sole spheres per foot that
# alone collide (with the floor), position actuators equal to SPEC's group, an IMU site.
LEG = """
      <body name="{side}_thigh" pos="0 {y} -0.05">
        <joint name="{side}_hip" axis="0 1 0" range="-1 1"/>
        <geom name="{side}_thigh" type="capsule" fromto="0 0 0 0 0 -0.2" size="0.03" mass="1"/>
        <body name="{side}_shank" pos="0 0 -0.2">
          <joint name="{side}_knee" axis="0 1 0" range="0 2"/>
          <geom name="{side}_shank" type="capsule" fromto="0 0 0 0 0 -0.2" size="0.03" mass="1"/>
          <body name="{side}_foot" pos="0 0 -0.2">
            <geom name="{side}_toe" class="sole" pos="0.06 0 -0.02"/>
            <geom name="{side}_heel" class="sole" pos="-0.05 0 -0.02"/>
          </body>
        </body>
      </body>"""
MJCF = """<mujoco model="tiny">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.005"/>
  <default>
    <geom contype="0" conaffinity="0"/>
    <joint damping="0.5" armature="0.01"/>
    <position kp="60" kv="2" forcerange="-20 20" inheritrange="1"/>
    <default class="sole"><geom type="sphere" size="0.02" mass="0.1" contype="1" conaffinity="0"/></default>
  </default>
  <asset>ASSETS</asset>
  <worldbody>
    FLOOR
    <body name="pelvis" pos="0 0 0.5">
      <freejoint/>
      <geom name="pelvis" type="box" size="0.1 0.12 0.05" mass="5"/>
      EXTRA
      <site name="imu"/>
      <body name="torso" pos="0 0 0.1"><geom type="sphere" size="0.05" mass="1"/></body>
      LEGS
    </body>
  </worldbody>
  <contact>PAIRS</contact>
  <actuator>ACTUATORS</actuator>
</mujoco>
"""
FLOOR = '<geom name="floor" type="plane" size="0 0 0.05" contype="0" conaffinity="1"/>'
POSITION = '<position name="{j}" joint="{j}"/>'
JOINTS = ("left_hip", "left_knee", "right_hip", "right_knee")
SPEC = """mjcf = "tiny.xml"
joints = ["left_.*", "right_.*"]
[[groups]]
joints = [".*"]
kp = 60.0
kd = 2.0
torque_limit = 20.0
action_scale = 0.5
armature = 0.01
[home]
joints = {}
[feet]
left_geoms = ["left_(toe|heel)"]
right_geoms = ["right_(toe|heel)"]
[imu]
site = "imu"
[actuators]
on_mismatch = "stop"
"""


def write_robot(tmp_path, *, spec=SPEC, actuators=POSITION, floor=FLOOR, extra="", assets="", pairs="",
                xml_option='<option timestep="0.005"/>'):
    """Writes tiny.xml (MJCF with the given pieces) and robot.toml; returns the spec path."""
    legs = "".join(LEG.format(side=s, y=y) for s, y in (("left", 0.08), ("right", -0.08)))
    text = (MJCF.replace('<option timestep="0.005"/>', xml_option)
            .replace("LEGS", legs).replace("FLOOR", floor).replace("EXTRA", extra)
                   .replace("ASSETS", assets).replace("PAIRS", pairs)
                   .replace("ACTUATORS", "".join(actuators.format(j=j) for j in JOINTS)))
    (tmp_path / "tiny.xml").write_text(text)
    (tmp_path / "robot.toml").write_text(spec)
    return tmp_path / "robot.toml"


def load_quietly(path):
    """(robot, [warning messages])."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        robot = robots.load(path)
    return robot, [str(w.message) for w in caught]


def one_line_refusal(path, *, error=NotReadyError):
    with pytest.raises(error) as info:
        load_quietly(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


# ----------------------------------------------------------------------------- jh1 and robot=


def test_jh1_from_its_spec_equals_the_registered_record():
    robot, caught = load_quietly(JH1_TOML)
    for field in dataclasses.fields(JH1):
        assert getattr(robot, field.name) == getattr(JH1, field.name), field.name
    assert robot == JH1 and robot.edits == MjcfEdits() and not caught  # nothing edited, and it stands
    assert robots.get_robot(str(JH1_TOML)) == JH1


def test_robot_field_takes_a_name_or_an_existing_spec_path(tmp_path):
    with pytest.raises(ValueError, match=r"^robot: unknown robot 'atlas'; known robots: jh1, jh1_flip, jh_mini, "
                                         r"or the path of an existing \.toml robot spec file$"):
        robots.get_robot("atlas")
    with pytest.raises(ValueError,
                       match=r"^robot: robot spec file '.*nope\.toml' not found; .*: jh1, jh1_flip, jh_mini$"):
        jaxhum.envs.make("joystick", robot=str(tmp_path / "nope.toml"))
    bad = write_robot(tmp_path, spec=SPEC.replace("kp = 60.0", "kp = -1.0"))
    with pytest.raises(ValueError, match=r"^robot: .*robot\.toml: groups\[0\]\.kp: must be a number > 0, got -1\.0$"):
        jaxhum.envs.make("walk", robot=str(bad))
    cli = config_lib.apply_overrides(run_config.RunConfig(env_name="joystick"), [f"env.robot={tmp_path}/no.toml"])
    with pytest.raises(config_lib.ConfigError, match=r"env\.robot: robot spec file"):
        run_config.validate(cli, build=False)


def test_command_line_spec_path_is_validated_and_recorded():
    cli = config_lib.apply_overrides(run_config.RunConfig(env_name="joystick"), [f"env.robot={JH1_TOML}"])
    validated = run_config.validate(cli, build=False)
    saved = config_lib.to_json(validated)  # what config.json holds
    assert saved["env"]["robot"] == str(JH1_TOML)
    restored = run_config.validate(config_lib.from_json(run_config.RunConfig, saved), build=False)
    assert robots.get_robot(restored.env["robot"]) == JH1  # evaluate, export, sim2sim rebuild the same robot


# Each robot task at its smallest settings (3 steps fit in an episode). jh1 runs every task in the
# task's own test file; here joystick also runs on jh1 from its spec file (test_joystick's
# settings: the same programs), and every task on jh_mini. navigate's low level is the untrained
# joystick actor on the robot given, one low-level step per high-level step: its steps are
# joystick's smoke on jh_mini (a separate joystick case would compile the same work again).
# reach needs arms: test_reach_on_a_robot_without_arms_is_refused_in_one_line_before_compiling.
SMOKE = {
    "walk": dict(episode_seconds=0.1),
    "balance": dict(episode_seconds=0.1, resample_seconds=0.04),
    "navigate": dict(low_level="untrained", high_level_period=0.02, episode_seconds=0.1),
    "backflip": dict(episode_seconds=0.1, stand_seconds=0.05),
}
ON_JH_MINI = ("walk", "balance", "navigate", "backflip")


# jh1 runs each task's smoke harness in the task's own test file; from its spec file it is the
# same record (test_jh1_from_its_spec_equals_the_registered_record), so the same env.
# balance is joystick with the command zero and kicks on: joystick on jh_mini steps as navigate's
# low level, so balance's own compile (~50 s on 2 cores) is left to the full tier.
@pytest.mark.parametrize("task", [pytest.param(t, marks=pytest.mark.full) if t == "balance" else t
                                  for t in ON_JH_MINI])
def test_every_robot_task_steps_on_jh_mini(task):
    robot = "jh_mini"
    env = jaxhum.envs.make(task, robot=robot, **SMOKE[task])
    assert env.robot == robots.get_robot(robot)
    action_size = 12
    if task == "navigate":  # the robot is its low level's: a joystick env on jh_mini
        assert env.low_level.env.robot == env.robot and env.low_level.env.action_size == action_size
        action_size = 3  # a velocity command
    assert env.action_size == action_size
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 3))
    step = jax.jit(jax.vmap(env.step))
    for i in range(3):
        action = jax.random.uniform(jax.random.PRNGKey(i), (3, env.action_size), minval=-1.0, maxval=1.0)
        state = step(state, action)
    chex.assert_tree_all_finite((state.obs, state.reward, state.critic_obs))
    assert state.obs.shape == (3, env.observation_size)
    assert state.critic_obs.shape == (3, env.critic_observation_size)
    assert float(state.metrics["fall"].max()) == 0.0  # 3 steps of random actions do not make it fall
    if task == "navigate":  # joystick on jh_mini: its low level stepped 3 times under random commands
        low = state.info["low"]
        chex.assert_tree_all_finite((low.obs, low.reward, low.critic_obs))
        assert low.obs.shape == (3, env.low_level.env.observation_size) and float(low.step_count.max()) == 3
        assert float(low.metrics["fall"].max()) == 0.0


def test_reach_on_a_robot_without_arms_is_refused_in_one_line_before_compiling():
    with pytest.raises(ValueError) as info:
        jaxhum.envs.make("reach", robot="jh_mini")
    message = str(info.value)
    assert "\n" not in message and re.fullmatch(
        r"robot: reach needs a robot with hands, and 'jh_mini' has neither hand body \('left_forearm', "
        r"'right_forearm'\) \(no arms\?\); pick a robot with arms, or name its hand bodies in hand_bodies",
        message), message


def test_navigate_robot_must_be_the_low_level_runs(tmp_path):
    (tmp_path / "config.json").write_text('{"env_name": "joystick", "env": {"robot": "jh_mini"}}')
    jaxhum.envs.make_config("navigate", low_level=str(tmp_path), robot="jh_mini")
    with pytest.raises(ValueError, match=r"^robot: the low-level run .* trained robot 'jh_mini', not 'jh1' "
                                         r"\(leave robot empty to use the run's\)$"):
        jaxhum.envs.make_config("navigate", low_level=str(tmp_path), robot="jh1")
    with pytest.raises(ValueError, match=r"^robot: unknown robot 'atlas'"):
        jaxhum.envs.make_config("navigate", low_level="untrained", robot="atlas")


def test_jh_mini_is_a_small_legs_focused_humanoid_shipped_as_a_spec_file():
    robot, caught = load_quietly(robots.SPEC_FILES["jh_mini"])
    assert not caught and robot == robots.get_robot("jh_mini")  # it stands with zero action: no warning
    assert len(robot.joint_names) == 12 and all(j.startswith(("left_", "right_")) for j in robot.joint_names)
    m = robot.native_model()
    data = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, data, 0)
    mujoco.mj_forward(m, data)
    top = max(data.geom_xpos[g, 2] + m.geom_rbound[g] for g in range(m.ngeom) if m.geom_type[g] != 0)
    assert 0.9 <= top <= 1.2 and 12.0 <= m.body_mass.sum() <= 16.0
    pairs = readiness.contact_pairs(m)
    assert len(pairs) == 10 and all(m.geom("floor").id in p for p in pairs)  # 8 sole spheres, 2 knee pads
    # What the MJCF leaves to its spec file: the IMU sensors and the home pose, nothing else.
    assert robot.edits == MjcfEdits(sensors=robot.edits.sensors, keyframe=robot.edits.keyframe)
    assert len(robot.edits.sensors) == 4  # every robot task steps on it: the smoke above


# ----------------------------------------------------------------------------- a user's MJCF, edited


def test_a_ready_mjcf_gets_imu_sensors_foot_sites_and_home_pose(tmp_path):
    robot, caught = load_quietly(write_robot(tmp_path))
    assert not caught  # stands on its straight legs
    assert robot.name == "robot" and robot.joint_names == JOINTS and robot.root_body == "pelvis"
    assert {s.kind for s in robot.edits.sensors} == {"gyro", "accelerometer", "framequat", "velocimeter"}
    assert robot.foot_sites == ("left_foot_site", "right_foot_site")
    assert robot.foot_geoms == (("left_toe", "left_heel"), ("right_toe", "right_heel"))
    sim = robot.load()  # MJX model of the edited MJCF
    idx = robot.index(sim)
    assert sim.mj_model.nsensor == 4 and idx.linvel.stop - idx.linvel.start == 3
    # Feet on the floor at home: the soles' bottoms, 0.49 m below the pelvis, sink 0.5 mm.
    np.testing.assert_allclose(idx.standing_height, 0.49 - 0.0005, atol=1e-9)
    np.testing.assert_array_equal(idx.home_ctrl, np.zeros(4))
    data = mujoco.MjData(sim.mj_model)
    mujoco.mj_resetDataKeyframe(sim.mj_model, data, 0)
    mujoco.mj_forward(sim.mj_model, data)
    np.testing.assert_array_equal(robots.foot_contacts_np(idx, data), [1.0, 1.0])
    np.testing.assert_allclose(data.sensordata[idx.quat], [1.0, 0.0, 0.0, 0.0], atol=1e-12)  # the added IMU reads
    np.testing.assert_allclose(data.sensordata[idx.gyro], np.zeros(3), atol=1e-12)


def test_a_menagerie_style_mjcf_is_filtered_and_given_the_specs_actuators(tmp_path):
    """Everything collides, motors instead of position actuators, no floor, a visual mesh whose
    file is missing: with contacts.filter and on_mismatch = "overwrite" it loads, with a warning."""
    spec = SPEC.replace('"stop"', '"overwrite"') + '[contacts]\nfilter = true\n'
    xml_extra = '<geom class="visual" type="mesh" mesh="pelvis_shell"/>'
    path = write_robot(tmp_path, spec=spec, actuators='<motor name="{j}_motor" joint="{j}" gear="2"/>', floor="",
                       extra=xml_extra, assets='<mesh name="pelvis_shell" file="meshes/pelvis.stl"/>'
                                               '<texture name="skin" type="2d" file="skin.png"/>'
                                               '<material name="painted" texture="skin"/>')
    text = (tmp_path / "tiny.xml").read_text().replace(
        '<geom contype="0" conaffinity="0"/>', '<geom contype="1" conaffinity="1"/>').replace(
        '<default class="sole">', '<default class="visual"><geom contype="0" conaffinity="0"/></default>'
                                  '<default class="sole">')
    (tmp_path / "tiny.xml").write_text(text)
    robot, caught = load_quietly(path)
    assert len(caught) == 2 and "1 mesh file(s) missing on disk, dropped" in caught[0] and "pelvis_shell" in caught[0]
    assert "1 texture file(s) missing on disk, dropped (materials keep their colour): 'skin'" in caught[1]
    m = robot.native_model()
    assert m.nmesh == 0 and m.ntex == 0 and m.nmat == 1 and robot.edits.add_floor == "floor"
    pairs = {tuple(sorted(readiness.geom_label(m, g) for g in p)) for p in readiness.contact_pairs(m)}
    assert len(pairs) == 4 and all(any("floor" in g for g in p) for p in pairs)  # 4 soles x the floor
    for j in JOINTS:
        assert readiness.actuator_problem(m, j, {"kp": 60.0, "kd": 2.0, "torque_limit": 20.0, "armature": 0.01}) == ""
    assert m.nu == 4  # the motors became the position actuators, in place
    robot.index(robot.load())


# ----------------------------------------------------------------------------- refusals and warnings

MESH = '<mesh name="block" vertex="0 0 0  0.1 0 0  0 0.1 0  0 0 0.1"/>'


@pytest.mark.parametrize("case, pieces, expected", [
    ("collision mesh", dict(assets=MESH, extra='<geom name="shell" type="mesh" mesh="block" contype="1" '
                                             'conaffinity="1"/>'),
     r"1 collision mesh geom\(s\).*geom 'shell' \(body 'pelvis'\).*contype=0 conaffinity=0.*contacts\.filter = true"),
    ("self contact", dict(extra='<geom name="belly" type="sphere" size="0.3" contype="1" conaffinity="1"/>'),
     r"contact pair\(s\) beyond the feet and the floor, the first .*'belly'.*contype/conaffinity.*"
     r"contacts\.with_floor.*contacts\.filter = true"),
    ("explicit pair", dict(pairs='<pair geom1="left_thigh" geom2="right_thigh"/>'),
     r"1 contact pair\(s\) beyond the feet and the floor, the first geom 'left_thigh' \(body 'left_thigh'\) - "
     r"geom 'right_thigh'"),
    ("foot off the floor", dict(floor=FLOOR.replace('conaffinity="1"', 'conaffinity="2"')),
     r"foot geom 'left_toe' \(body 'left_foot'\) cannot touch the floor geom 'floor'.*contype=1 and the floor "
     r"conaffinity=1"),
    ("missing actuator", dict(actuators=""),
     r"joint 'left_hip' has no actuator \(a <position> actuator is expected\), so the load stops "
     r"\(actuators\.on_mismatch = \"stop\"\): fix the MJCF, or set actuators\.on_mismatch = \"overwrite\" in the "
     r"spec \(the spec's gains then win\)"),
    ("gain mismatch", dict(actuators='<position name="{j}" joint="{j}" kp="30"/>'),
     r"joint 'left_hip' has MJCF kp \(30\.0, 30\.0\), the spec says 60\.0, so the load stops .*: fix the MJCF, "
     r"or set actuators\.on_mismatch = \"overwrite\""),
    ("motor", dict(actuators='<motor name="{j}" joint="{j}"/>'),
     r"joint 'left_hip' is driven by actuator 'left_hip', which is not a <position> actuator"),
    ("two actuators", dict(actuators='<position name="{j}" joint="{j}"/><motor name="{j}_extra" joint="{j}"/>'),
     r"joint 'left_hip' is driven by 2 actuators \['left_hip', 'left_hip_extra'\]; keep one in the MJCF"),
    ("MJX feature", dict(xml_option='<option timestep="0.005" integrator="implicit"/>'),
     r"MJX cannot use this model: mjtIntegrator\.mjINT_IMPLICIT: remove or replace that feature in the MJCF"),
    ("missing collision mesh file", dict(assets='<mesh name="shell" file="shell.stl"/>',
                                         extra='<geom type="mesh" mesh="shell" contype="1" conaffinity="1"/>'),
     r"mesh 'shell' \(.*shell\.stl\) is missing on disk and geom in body 'pelvis' collides with it: ship the file"),
])
def test_each_refusal_is_one_line_naming_the_element_and_the_fix(tmp_path, case, pieces, expected):
    message = one_line_refusal(write_robot(tmp_path, **pieces))
    assert re.search(expected, message), message


def test_joint_without_limits_is_refused(tmp_path):
    path = write_robot(tmp_path, actuators='<position name="{j}" joint="{j}" inheritrange="0"/>')
    (tmp_path / "tiny.xml").write_text((tmp_path / "tiny.xml").read_text().replace(' range="0 2"', "", 1))
    message = one_line_refusal(path)
    assert "joint 'left_knee' has no limits: give it range=\"lower upper\" in the MJCF" in message


def test_spec_wins_over_mismatched_gains_when_asked(tmp_path):
    spec = SPEC.replace('"stop"', '"overwrite"')
    robot, _ = load_quietly(write_robot(tmp_path, spec=spec, actuators='<position name="{j}" joint="{j}" kp="30"/>'))
    assert [e.joint for e in robot.edits.actuators] == list(JOINTS)
    idx = robot.index(robot.load())
    np.testing.assert_array_equal(idx.kp, [60.0] * 4)


def test_a_home_pose_that_does_not_stand_is_a_warning_with_the_drop(tmp_path):
    spec = SPEC.replace("kp = 60.0", "kp = 1.0").replace("joints = {}", 'joints = { ".*_knee" = 1.0, ".*_hip" = -0.5 }')
    weak = '<position name="{j}" joint="{j}" kp="1"/>'
    robot, caught = load_quietly(write_robot(tmp_path, spec=spec, actuators=weak))
    assert robot.joint_names == JOINTS
    assert len(caught) == 1, caught
    assert "the home pose does not stand with zero action: the pelvis ('pelvis') drops" in caught[0]
    drop = float(caught[0].split("drops ")[1].split(" m")[0])
    assert drop > 0.05


@pytest.mark.parametrize("change, expected", [
    (("kp = 60.0", "kq = 60.0"), r"groups\[0\]\.kp: required"),
    (("[imu]", "[imu]\nsight = 1"), r"imu\.sight: unknown key; known keys here: body, site"),
    (('["left_.*", "right_.*"]', '["left_.*", "nope_.*"]'), r"joints\[1\]: pattern 'nope_\.\*' matches no joint"),
    (('["left_.*", "right_.*"]', '["left_.*", "left_hip"]'), r"joints\[1\]: pattern 'left_hip' matches 'left_hip', "
                                                              r"already matched by joints\[0\]"),
    (('right_geoms = ["right_(toe|heel)"]', 'right_geoms = ["right_toe"]'),
     r"feet: left_geoms match 2 geoms, right_geoms 1"),
    (('site = "imu"', 'site = "chest"'), r"imu\.site: no site 'chest'.*give imu\.body"),
    (('mjcf = "tiny.xml"', 'mjcf = "gone.xml"'), r"mjcf: MJCF file '.*gone\.xml' not found"),
    (('on_mismatch = "stop"', 'on_mismatch = "maybe"'), r"actuators\.on_mismatch: must be one of 'stop', "
                                                        r"'overwrite', got 'maybe'"),
    (('left_geoms = ["left_(toe|heel)"]', "left_geoms = 3"), r"feet\.left_geoms: must be a list of non-empty strings, "
                                                              r"got 3"),
    (("[feet]", "[feet\n"), r"not a readable TOML file"),
])
def test_spec_errors_name_the_key(tmp_path, change, expected):
    message = one_line_refusal(write_robot(tmp_path, spec=SPEC.replace(*change)), error=SpecError)
    assert re.search(expected, message), message


def test_jh_mini_without_with_floor_refuses_its_knee_pads(tmp_path):
    xml = robots.SPEC_FILES["jh_mini"].with_suffix(".xml")
    (tmp_path / "jh_mini.xml").write_text(xml.read_text())
    spec = robots.SPEC_FILES["jh_mini"].read_text().replace('with_floor = [".*_knee_pad"]', "with_floor = []")
    (tmp_path / "robot.toml").write_text(spec)
    message = one_line_refusal(tmp_path / "robot.toml")
    assert re.search(r"2 contact pair\(s\) beyond the feet and the floor, the first geom 'floor' \(body 'world'\) - "
                     r"geom 'left_knee_pad' \(body 'left_shank'\)", message), message


def test_a_ball_joint_cannot_be_actuated(tmp_path):
    path = write_robot(tmp_path, extra='<body name="tail"><joint name="tail" type="ball"/><geom size="0.01"/></body>')
    (tmp_path / "robot.toml").write_text(SPEC.replace('["left_.*", "right_.*"]', '["left_.*", "right_.*", "tail"]'))
    message = one_line_refusal(path, error=SpecError)
    assert "joints[2]: pattern 'tail' matches 'tail', a ball joint; actuated joints are hinges or slides" in message
