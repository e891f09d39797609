"""The `Robot` record, its actuator groups, and `RobotIndex`: everything a task needs, resolved by name.

A robot is data plus one small frozen record: the MJCF holds geometry, joints, actuators and
sensors; `Robot` names what tasks need (joint order, gains per joint group, foot and IMU names),
and `Robot.index(sim)` resolves those names to ids and addresses once, on the host, as numpy.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import mujoco
import numpy as np

from jaxhum.robots.edits import MjcfEdits, compile_mjcf
from jaxhum.sim import ModelLoadError, PhysicsOptions, SimModel, apply_options, from_mj_model, load_model


@dataclasses.dataclass(frozen=True)
class ActuatorGroup:
    """PD gains and limits for every joint whose name fully matches one of `joint_names_expr`.

    As Isaac Lab's actuator configs: gains are set per group of joints by name pattern, not by
    position in a list. Each actuated joint must match exactly one group of its robot.

    Attributes:
      joint_names_expr: regular expressions (`re.fullmatch`) over joint names.
      kp: position gain (N m / rad); the MJCF's `<position kp>`.
      kd: velocity gain (N m s / rad); the MJCF's `<position kv>`.
      torque_limit: actuator force limit (N m), symmetric; the MJCF's `forcerange`.
      action_scale: rad per unit action: target = home + action_scale * a, a in [-1, 1].
      armature: reflected rotor inertia (kg m^2); the MJCF's joint `armature`.
    """

    joint_names_expr: tuple[str, ...]
    kp: float
    kd: float
    torque_limit: float
    action_scale: float
    armature: float

    def matches(self, joint_name: str) -> bool:
        return any(re.fullmatch(expr, joint_name) for expr in self.joint_names_expr)


@dataclasses.dataclass(frozen=True, eq=False)
class RobotIndex:
    """A robot's names resolved against one loaded model (host numpy; constants under jit).

    A = number of actuated joints, in the robot's action order. Sensor fields are slices of
    `data.sensordata` (MJX and native MuJoCo alike).
    """

    qpos_adr: np.ndarray  # (A,) int: address of each actuated joint in qpos
    dof_adr: np.ndarray  # (A,) int: address of each actuated joint in qvel
    actuator_ids: np.ndarray  # (A,) int: actuator driving each joint (ctrl[actuator_ids] = targets)
    home_qpos: np.ndarray  # (nq,) the home keyframe's qpos
    home_ctrl: np.ndarray  # (nu,) the home keyframe's ctrl
    home_joint_pos: np.ndarray  # (A,) home_qpos[qpos_adr]
    action_scale: np.ndarray  # (A,) rad per unit action
    kp: np.ndarray  # (A,)
    kd: np.ndarray  # (A,)
    torque_limit: np.ndarray  # (A,)
    joint_range: np.ndarray  # (A, 2) lower, upper (rad)
    gyro: slice  # sensordata slice (3,): angular velocity in the IMU frame (rad/s)
    acc: slice  # (3,): specific force in the IMU frame (m/s^2; +9.81 z at rest)
    quat: slice  # (4,): IMU orientation in the world (w, x, y, z)
    linvel: slice  # (3,): linear velocity in the IMU frame (m/s)
    imu_site_id: int
    foot_site_ids: np.ndarray  # (2,) left, right
    foot_geom_ids: np.ndarray  # (2, k) collision geoms of the left and right sole
    floor_geom_id: int
    root_body_id: int
    torso_body_id: int
    root_qpos_adr: int  # qpos address of the free joint (position xyz, then quaternion wxyz)
    total_mass: float  # kg, of the nominal model (randomized masses change it: derive it in the step)
    standing_height: float  # root body z at home (m)
    control_dt: float  # timestep * n_substeps (s)


@dataclasses.dataclass(frozen=True)
class Robot:
    """A robot: its MJCF and the names and gains tasks need.

    Shipped robots are registered by name (`jaxhum.robots.ROBOTS`); any robot loads from a spec
    file beside its MJCF (`jaxhum.robots.load("robot.toml")`) into this same record.

    Attributes:
      name: registry name (`jaxhum.robots.get_robot(name)`), or the spec file's `name`.
      mjcf: the MJCF file (inside the package for shipped robots).
      joint_names: actuated joints in action order; each has a `<position>` actuator of the same name.
      groups: gains and limits per joint group (see `ActuatorGroup`); the MJCF's values must equal
        these (checked by `index`).
      root_body, torso_body: body names; the root body carries the free joint and the IMU.
      imu_site: site of the IMU sensors.
      gyro_sensor, accelerometer_sensor, orientation_sensor, linvel_sensor: IMU sensor names.
      foot_sites: (left, right) sole sites.
      foot_geoms: (left geoms, right geoms): the collision geoms of each sole.
      floor_geom: the floor plane geom.
      home_keyframe: keyframe name of the standing pose (qpos and ctrl).
      physics: solver options applied at load (equal to the MJCF's own `<option>`).
      n_substeps: physics steps per control step.
      edits: what loading applies to the parsed MJCF before compiling (added IMU sensors, the
        spec's actuators, contact filtering, ...; `jaxhum.robots.edits`); none for jh1.
    """

    name: str
    mjcf: pathlib.Path
    joint_names: tuple[str, ...]
    groups: tuple[ActuatorGroup, ...]
    root_body: str = "pelvis"
    torso_body: str = "torso"
    imu_site: str = "imu"
    gyro_sensor: str = "imu_gyro"
    accelerometer_sensor: str = "imu_acc"
    orientation_sensor: str = "imu_quat"
    linvel_sensor: str = "imu_linvel"
    foot_sites: tuple[str, str] = ("left_foot_site", "right_foot_site")
    foot_geoms: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    floor_geom: str = "floor"
    home_keyframe: str = "home"
    physics: PhysicsOptions = PhysicsOptions()
    n_substeps: int = 5
    edits: MjcfEdits = MjcfEdits()

    def group_of(self, joint_name: str) -> ActuatorGroup:
        """Returns the one group whose patterns match `joint_name`; ValueError if none or several."""
        found = [g for g in self.groups if g.matches(joint_name)]
        if len(found) != 1:
            raise ValueError(
                f"robot {self.name!r}: joint {joint_name!r} must match exactly one actuator group, "
                f"matches {len(found)} (patterns: {[g.joint_names_expr for g in self.groups]})"
            )
        return found[0]

    def group_values(self, field: str) -> np.ndarray:
        """(A,) the group value `field` (kp, kd, torque_limit, action_scale, armature) per joint."""
        return np.array([getattr(self.group_of(j), field) for j in self.joint_names], dtype=np.float64)

    def load(self, impl: str = "jax") -> SimModel:
        """Loads the robot's MJCF with its edits and physics options (MuJoCo model, MJX model, name tables).

        Raises:
          jaxhum.sim.ModelLoadError: the MJCF is missing, does not compile, or MJX cannot use it.
        """
        if self.edits.empty:
            return load_model(self.mjcf, options=self.physics, impl=impl)
        return from_mj_model(self.native_model(), self.mjcf, options=self.physics, impl=impl)

    def native_model(self) -> mujoco.MjModel:
        """The robot's native MuJoCo model (edits and physics options applied), without MJX."""
        if self.edits.empty:
            return _native_plain(self)
        try:
            mj_model = compile_mjcf(self.mjcf, self.edits)
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from exc
        apply_options(mj_model, self.physics, self.mjcf)
        return mj_model

    def index(self, sim: SimModel) -> RobotIndex:
        """Resolves every name of this record in `sim`; raises a one-line error naming what is missing.

        Raises:
          jaxhum.sim.NameLookupError: a name is not in the model (the message lists the known ones).
          ValueError: an actuator does not drive its joint, or the MJCF's gains, limits or armature
            differ from `groups`.
        """
        m = sim.mj_model
        joint_ids = np.array([sim.id("joint", j) for j in self.joint_names])
        actuator_ids = np.array([sim.id("actuator", j) for j in self.joint_names])
        for j, jid, aid in zip(self.joint_names, joint_ids, actuator_ids):
            if m.actuator_trntype[aid] != mujoco.mjtTrn.mjTRN_JOINT or m.actuator_trnid[aid, 0] != jid:
                raise ValueError(f"{sim.path}: actuator {j!r} must drive joint {j!r}")
        _check_mjcf_matches_groups(self, sim, joint_ids, actuator_ids)
        key = sim.mj_model.key(_key_id(sim, self.home_keyframe))
        home_qpos = np.array(key.qpos, dtype=np.float64)
        qpos_adr = m.jnt_qposadr[joint_ids].astype(np.int32)
        root_body_id = sim.id("body", self.root_body)
        root_joint = m.body_jntadr[root_body_id]
        if root_joint < 0 or m.jnt_type[root_joint] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(f"{sim.path}: root body {self.root_body!r} must carry a free joint")
        root_qpos_adr = int(m.jnt_qposadr[root_joint])
        return RobotIndex(
            qpos_adr=qpos_adr,
            dof_adr=m.jnt_dofadr[joint_ids].astype(np.int32),
            actuator_ids=actuator_ids.astype(np.int32),
            home_qpos=home_qpos,
            home_ctrl=np.array(key.ctrl, dtype=np.float64),
            home_joint_pos=home_qpos[qpos_adr],
            action_scale=self.group_values("action_scale"),
            kp=self.group_values("kp"),
            kd=self.group_values("kd"),
            torque_limit=self.group_values("torque_limit"),
            joint_range=np.array(m.jnt_range[joint_ids], dtype=np.float64),
            gyro=sim.sensor_slice(self.gyro_sensor),
            acc=sim.sensor_slice(self.accelerometer_sensor),
            quat=sim.sensor_slice(self.orientation_sensor),
            linvel=sim.sensor_slice(self.linvel_sensor),
            imu_site_id=sim.id("site", self.imu_site),
            foot_site_ids=np.array([sim.id("site", s) for s in self.foot_sites], dtype=np.int32),
            foot_geom_ids=_foot_geom_ids(self, sim),
            floor_geom_id=sim.id("geom", self.floor_geom),
            root_body_id=root_body_id,
            torso_body_id=sim.id("body", self.torso_body),
            root_qpos_adr=root_qpos_adr,
            total_mass=float(m.body_mass.sum()),
            standing_height=float(home_qpos[root_qpos_adr + 2]),
            control_dt=float(m.opt.timestep) * self.n_substeps,
        )


def _native_plain(robot: Robot) -> mujoco.MjModel:
    try:
        mj_model = mujoco.MjModel.from_xml_path(str(robot.mjcf))
    except Exception as exc:  # mujoco raises ValueError with the compiler's message
        raise ModelLoadError(f"{robot.mjcf}: malformed MJCF: {str(exc).strip().splitlines()[0]}") from exc
    apply_options(mj_model, robot.physics, robot.mjcf)
    return mj_model


def _key_id(sim: SimModel, name: str) -> int:
    kid = mujoco.mj_name2id(sim.mj_model, mujoco.mjtObj.mjOBJ_KEY, name)
    if kid < 0:
        known = [sim.mj_model.key(i).name for i in range(sim.mj_model.nkey)]
        raise ValueError(f"{sim.path}: no keyframe named {name!r}; known keyframes: {known}")
    return kid


def _foot_geom_ids(robot: Robot, sim: SimModel) -> np.ndarray:
    left, right = robot.foot_geoms
    if not left or len(left) != len(right):
        raise ValueError(f"robot {robot.name!r}: foot_geoms must name the same number (>= 1) of geoms per foot")
    return np.array([[sim.id("geom", g) for g in side] for side in (left, right)], dtype=np.int32)


def _check_mjcf_matches_groups(robot: Robot, sim: SimModel, joint_ids: np.ndarray, actuator_ids: np.ndarray) -> None:
    """The MJCF is the physics, the groups are what tasks read: they must agree exactly."""
    m = sim.mj_model
    for j, jid, aid in zip(robot.joint_names, joint_ids, actuator_ids):
        g = robot.group_of(j)
        found = {
            "kp": (m.actuator_gainprm[aid, 0], -m.actuator_biasprm[aid, 1]),
            "kd": (-m.actuator_biasprm[aid, 2],),
            "torque_limit": (-m.actuator_forcerange[aid, 0], m.actuator_forcerange[aid, 1]),
            "armature": (m.dof_armature[m.jnt_dofadr[jid]],),
        }
        if not m.actuator_forcelimited[aid]:
            raise ValueError(f"{sim.path}: actuator {j!r} must be force-limited (forcerange)")
        for field, values in found.items():
            if not np.allclose(values, getattr(g, field), rtol=1e-9, atol=1e-12):
                raise ValueError(
                    f"{sim.path}: joint {j!r}: MJCF {field} {tuple(float(v) for v in values)} "
                    f"differs from the robot's actuator group ({getattr(g, field)})"
                )
