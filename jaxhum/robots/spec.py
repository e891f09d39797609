"""A robot as data: a small TOML spec file beside an MJCF -> the frozen `Robot` record jh1 has.

    robot = jaxhum.robots.load("my_robot/robot.toml")
    env = jaxhum.envs.make("joystick", robot="my_robot/robot.toml")

The spec file (every path in it is relative to the spec file; `assets/jh1.toml` is a full example):

    name = "my_robot"                     # default: the spec file's stem
    mjcf = "my_robot.xml"
    joints = ["left_leg_.*", "right_leg_.*"]   # actuated joints, by regex (re.fullmatch), in action
                                          # order; each pattern's matches come in MJCF order
    [[groups]]                            # gains per joint group (each actuated joint in exactly one)
    joints = [".*_knee"]
    kp = 300.0                            # N m / rad
    kd = 6.0                              # N m s / rad
    torque_limit = 139.0                  # N m
    action_scale = 0.5                    # rad per unit action: target = home + action_scale * a
    armature = 0.025                      # kg m^2
    [actuators]
    on_mismatch = "stop"                  # or "overwrite": the spec's <position> actuators replace the MJCF's
    [home]
    keyframe = "home"                     # a keyframe of the MJCF, or, instead:
    # joints = { ".*_knee" = 0.3 }       # joint values by pattern (later patterns win; others 0)
    # height = 0.7                        # root height (m); default: the lowest foot point on the floor
    stand_tolerance = 0.05                # warn when the pelvis drops more than this (m) in 2 s at zero action
    [feet]
    left_geoms = ["left_sole_.*"]         # collision geoms of each sole, the same number per foot
    right_geoms = ["right_sole_.*"]
    left_site = "left_foot"               # optional: added at the geoms' centre when absent
    right_site = "right_foot"
    floor = "floor"                       # a plane named so is added when the MJCF has none
    [imu]
    site = "imu"                          # gyro, accelerometer, framequat and velocimeter are added when missing
    body = "pelvis"                       # optional: where the site is added when the MJCF lacks it
    [bodies]
    root = "pelvis"                       # default: the body with the free joint
    torso = "torso"
    [contacts]
    filter = false                        # true: only the feet (and with_floor) collide, with the floor alone
    with_floor = []                       # geom patterns that may also touch the floor (knees, hands)
    [physics]
    solver = "newton"                     # every key optional: absent keeps the MJCF's <option>
    iterations = 2
    ls_iterations = 4
    timestep = 0.004
    n_substeps = 5                        # physics steps per control step (default 5)
    disable = ["eulerdamp"]               # MuJoCo disable flags, replacing the MJCF's

Loading checks MJX readiness (`jaxhum.robots.readiness`): collision meshes, contact pairs beyond the
feet and the floor, actuators that are not the spec's position actuators, joints without limits are
refused in one line naming the element and the fix; a home pose that does not stand is a warning;
visual meshes whose files are missing are dropped with a warning.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import tomllib
import warnings
from collections.abc import Mapping
from typing import Any

import mujoco
import numpy as np

from jaxhum.robots import edits as mjcf_edits
from jaxhum.robots import readiness
from jaxhum.robots.base import ActuatorGroup, Robot
from jaxhum.robots.edits import ActuatorEdit, KeyframeEdit, MjcfEdits, SensorEdit, SiteEdit
from jaxhum.sim import PhysicsOptions

SPEC_SUFFIX = ".toml"
ON_MISMATCH = ("stop", "overwrite")
SOLVERS = ("newton", "cg")
# The IMU's sensors: Robot field -> (edits.SENSOR_TYPES kind, name given when added).
IMU_SENSORS = {
    "gyro_sensor": ("gyro", "imu_gyro"),
    "accelerometer_sensor": ("accelerometer", "imu_acc"),
    "orientation_sensor": ("framequat", "imu_quat"),
    "linvel_sensor": ("velocimeter", "imu_linvel"),
}
# The home pose puts the lowest foot point this far into the floor, so the feet register contact
# (dist < 0) from the first step, as jh1's keyframe does.
HOME_PENETRATION = 0.0005
_REQUIRED = object()


class SpecError(ValueError):
    """A spec file is invalid; the message (one line) names the file, the key and the allowed values."""


@dataclasses.dataclass(frozen=True)
class RobotSpec:
    """A parsed, validated spec file (see the module docstring for every key)."""

    path: pathlib.Path
    name: str
    mjcf: pathlib.Path
    joints: tuple[str, ...]
    groups: tuple[ActuatorGroup, ...]
    on_mismatch: str = "stop"
    home_keyframe: str = "home"
    home_joints: tuple[tuple[str, float], ...] | None = None
    home_height: float | None = None
    stand_tolerance: float = 0.05
    left_geoms: tuple[str, ...] = ()
    right_geoms: tuple[str, ...] = ()
    left_site: str | None = None
    right_site: str | None = None
    floor: str = "floor"
    imu_site: str = "imu"
    imu_body: str | None = None
    root_body: str | None = None
    torso_body: str | None = None
    contacts_filter: bool = False
    with_floor: tuple[str, ...] = ()
    physics: PhysicsOptions = PhysicsOptions()
    n_substeps: int = 5


def is_spec_path(value: Any) -> bool:
    """Whether `value` names a spec file (a str or path ending in .toml), existing or not."""
    return isinstance(value, (str, pathlib.Path)) and str(value).endswith(SPEC_SUFFIX)


def load(path: str | pathlib.Path) -> Robot:
    """Reads the spec file at `path` and its MJCF into a `Robot`, checking MJX readiness.

    Raises:
      SpecError: the spec file is missing or invalid, or names what the MJCF does not have.
      readiness.NotReadyError: the MJCF is not ready for MJX (the message names the element and the fix).
    Warns:
      UserWarning: visual meshes missing on disk were dropped; the home pose does not stand.
    """
    spec = read_spec(path)
    where = str(spec.path)
    dropped = _missing_assets(spec)
    m0 = _compile(spec, dropped)
    joints = _expand_joints(m0, spec)
    for j in joints:
        _group_of(spec, j)
    names = _Names(m0)
    root = _root(m0, names, spec)
    torso = _torso(names, spec)
    left_geoms, right_geoms = (_feet_geoms(names, spec, side) for side in ("left", "right"))
    if len(left_geoms) != len(right_geoms):
        raise SpecError(f"{where}: feet: left_geoms match {len(left_geoms)} geoms, right_geoms {len(right_geoms)}; "
                        f"each foot needs the same number")
    sites, foot_sites = _foot_sites(m0, names, spec, (left_geoms, right_geoms))
    imu_sites, sensors, sensor_names = _imu(m0, names, spec)
    keep = (*left_geoms, *right_geoms, *_match_geoms(names, spec.with_floor, "contacts.with_floor", where))
    first = dataclasses.replace(
        dropped,
        add_floor="" if spec.floor in names.geom else spec.floor,
        sites=(*imu_sites, *sites),
        sensors=sensors,
        actuators=_actuator_edits(m0, spec, joints),
        collide_only=keep if spec.contacts_filter else None,
        floor=spec.floor if spec.contacts_filter else "floor",
    )
    m1 = _compile(spec, first)
    robot = Robot(
        name=spec.name, mjcf=spec.mjcf, joint_names=joints, groups=spec.groups, root_body=root,
        torso_body=torso, imu_site=spec.imu_site, foot_sites=foot_sites, foot_geoms=(left_geoms, right_geoms),
        floor_geom=spec.floor, home_keyframe=spec.home_keyframe, physics=spec.physics,
        n_substeps=spec.n_substeps, **sensor_names,
    )
    robot = dataclasses.replace(robot, edits=dataclasses.replace(first, keyframe=_home(m1, spec, robot)))
    _check_ready(robot, spec)
    return robot


# ----------------------------------------------------------------------------- the spec file


def read_spec(path: str | pathlib.Path) -> RobotSpec:
    """Parses and validates the spec file at `path` (no MJCF is read); SpecError in one line."""
    path = pathlib.Path(path)
    where = str(path)
    if not path.is_file():
        raise SpecError(f"{where}: robot spec file not found")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{where}: not a readable TOML file: {exc}") from exc
    top = _Table(data, where, "")
    folder = path.absolute().parent
    mjcf = folder / top.text("mjcf")
    if not mjcf.is_file():
        raise SpecError(f"{where}: mjcf: MJCF file {str(mjcf)!r} not found")
    home, feet, imu = top.table("home"), top.table("feet"), top.table("imu")
    bodies, contacts, physics = top.table("bodies"), top.table("contacts"), top.table("physics")
    actuators = top.table("actuators")
    spec = RobotSpec(
        path=path,
        name=top.text("name", path.stem),
        mjcf=mjcf,
        joints=_patterns(top, "joints", required=True),
        groups=tuple(_group(_Table(g, where, f"groups[{i}]")) for i, g in enumerate(top.list_of_tables("groups"))),
        on_mismatch=actuators.choice("on_mismatch", ON_MISMATCH, "stop"),
        **_home_fields(home),
        left_geoms=_patterns(feet, "left_geoms", required=True),
        right_geoms=_patterns(feet, "right_geoms", required=True),
        left_site=feet.text("left_site", None),
        right_site=feet.text("right_site", None),
        floor=feet.text("floor", "floor"),
        imu_site=imu.text("site", "imu"),
        imu_body=imu.text("body", None),
        root_body=bodies.text("root", None),
        torso_body=bodies.text("torso", None),
        contacts_filter=contacts.flag("filter", False),
        with_floor=_patterns(contacts, "with_floor"),
        physics=_physics(physics),
        n_substeps=physics.integer("n_substeps", 5, low=1),
    )
    for table in (top, home, feet, imu, bodies, contacts, physics, actuators):
        table.done()
    if not spec.groups:
        raise SpecError(f"{where}: groups: at least one [[groups]] table (kp, kd, torque_limit, ...) is required")
    return spec


class _Table:
    """Typed reads from one TOML table; `done()` refuses keys nobody read (typos)."""

    def __init__(self, data: Any, where: str, prefix: str):
        if not isinstance(data, Mapping):
            raise SpecError(f"{where}: {prefix}: must be a table, got {data!r}")
        self.data, self.where, self.prefix, self.read = data, where, prefix, set()

    def _key(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def _get(self, key: str, default: Any) -> Any:
        self.read.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise SpecError(f"{self.where}: {self._key(key)}: required")
            return default
        return self.data[key]

    def fail(self, key: str, expected: str, value: Any) -> SpecError:
        return SpecError(f"{self.where}: {self._key(key)}: must be {expected}, got {value!r}")

    def text(self, key: str, default: Any = _REQUIRED) -> Any:
        value = self._get(key, default)
        if value is not default and (not isinstance(value, str) or not value):
            raise self.fail(key, "a non-empty string", value)
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self._get(key, default)
        if value not in allowed:
            raise self.fail(key, f"one of {', '.join(map(repr, allowed))}", value)
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def number(self, key: str, default: Any = _REQUIRED, *, positive: bool = False) -> Any:
        value = self._get(key, default)
        if value is default and default is None:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
        if not ok or (value < 0 if not positive else value <= 0):
            raise self.fail(key, "a number > 0" if positive else "a number >= 0", value)
        return float(value)

    def integer(self, key: str, default: Any, *, low: int) -> Any:
        value = self._get(key, default)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise self.fail(key, f"an integer >= {low}", value)
        return value

    def list_of_str(self, key: str, default: Any) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "a list of non-empty strings", value)
        return tuple(value)

    def list_of_tables(self, key: str) -> list[Any]:
        value = self._get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, "an array of tables ([[groups]])", value)
        return value

    def table(self, key: str) -> _Table:
        value = self._get(key, {})
        if not isinstance(value, Mapping):
            raise self.fail(key, "a table", value)
        return _Table(value, self.where, self._key(key))

    def mapping(self, key: str) -> Any:
        value = self._get(key, None)
        if value is None:
            return None
        if not isinstance(value, Mapping) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
            raise self.fail(key, "a table of joint pattern = value (rad or m)", value)
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            raise SpecError(f"{self.where}: {self._key(unknown[0])}: unknown key; known keys here: "
                            f"{', '.join(sorted(self.read))}")


def _patterns(table: _Table, key: str, *, required: bool = False) -> tuple[str, ...]:
    patterns = table.list_of_str(key, _REQUIRED if required else ())
    if required and not patterns:
        raise table.fail(key, "a non-empty list of joint or geom name patterns", [])
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise table.fail(key, f"regular expressions ({exc})", p) from exc
    return tuple(patterns)


def _group(table: _Table) -> ActuatorGroup:
    group = ActuatorGroup(
        joint_names_expr=_patterns(table, "joints", required=True),
        kp=table.number("kp", positive=True),
        kd=table.number("kd"),
        torque_limit=table.number("torque_limit", positive=True),
        action_scale=table.number("action_scale", positive=True),
        armature=table.number("armature", 0.0),
    )
    table.done()
    return group


def _home_fields(home: _Table) -> dict[str, Any]:
    joints = home.mapping("joints")
    keyframe = home.text("keyframe", None)
    height = home.number("height", None, positive=True)
    if joints is None and height is not None:
        raise home.fail("height", "given with home.joints only (a keyframe has its own height)", height)
    if joints is not None and keyframe is not None:
        raise home.fail("keyframe", "absent when home.joints gives the pose (one or the other)", keyframe)
    return dict(
        home_keyframe=keyframe or "home",
        home_joints=None if joints is None else tuple((k, float(v)) for k, v in joints.items()),
        home_height=height,
        stand_tolerance=home.number("stand_tolerance", 0.05),
    )


def _physics(table: _Table) -> PhysicsOptions:
    solver = table._get("solver", None)
    if solver is not None and solver not in SOLVERS:
        raise table.fail("solver", f"one of {', '.join(map(repr, SOLVERS))}", solver)
    disable = table.list_of_str("disable", None)
    flags = None
    if disable is not None:
        known = {n[len("mjDSBL_"):].lower(): int(getattr(mujoco.mjtDisableBit, n))
                 for n in dir(mujoco.mjtDisableBit) if n.startswith("mjDSBL_")}
        bad = [d for d in disable if d not in known]
        if bad:
            raise table.fail("disable", f"MuJoCo disable flags ({', '.join(sorted(known))})", bad[0])
        flags = sum(known[d] for d in set(disable))
    return PhysicsOptions(
        solver=solver,
        iterations=table.integer("iterations", None, low=1),
        ls_iterations=table.integer("ls_iterations", None, low=1),
        timestep=table.number("timestep", None, positive=True),
        disableflags=flags,
    )


# ----------------------------------------------------------------------------- names in the MJCF


class _Names:
    """Name -> id of the named geoms, sites, bodies and joints of a compiled model."""

    def __init__(self, m: mujoco.MjModel):
        def table(obj: mujoco.mjtObj, n: int) -> dict[str, int]:
            return {name: i for i in range(n) if (name := readiness.name_of(m, obj, i))}

        self.geom = table(mujoco.mjtObj.mjOBJ_GEOM, m.ngeom)
        self.site = table(mujoco.mjtObj.mjOBJ_SITE, m.nsite)
        self.body = table(mujoco.mjtObj.mjOBJ_BODY, m.nbody)
        self.joint = table(mujoco.mjtObj.mjOBJ_JOINT, m.njnt)


def _compile(spec: RobotSpec, edits: MjcfEdits) -> mujoco.MjModel:
    try:
        return mjcf_edits.compile_mjcf(spec.mjcf, edits)
    except ValueError as exc:
        raise SpecError(f"{spec.path}: {exc}") from exc


def _known(names: Mapping[str, int]) -> str:
    listed = sorted(names)
    return ", ".join(listed[:12]) + (f", ... ({len(listed)} in all)" if len(listed) > 12 else "") or "(none)"


def _expand_joints(m: mujoco.MjModel, spec: RobotSpec) -> tuple[str, ...]:
    """The actuated joints in action order: each pattern's matches (non-free joints) in MJCF order."""
    candidates = [readiness.name_of(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(m.njnt)
                  if m.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE]
    hinge_or_slide = {readiness.name_of(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(m.njnt)
                      if int(m.jnt_type[j]) in readiness.LIMITED_JOINTS}
    owner: dict[str, int] = {}
    for i, pattern in enumerate(spec.joints):
        found = [j for j in candidates if j and re.fullmatch(pattern, j)]
        if not found:
            raise SpecError(f"{spec.path}: joints[{i}]: pattern {pattern!r} matches no joint; joints: "
                            f"{', '.join(j for j in candidates if j)}")
        for j in found:
            if j not in hinge_or_slide:
                raise SpecError(f"{spec.path}: joints[{i}]: pattern {pattern!r} matches {j!r}, a ball joint; "
                                f"actuated joints are hinges or slides (one position actuator each)")
            if j in owner:
                raise SpecError(f"{spec.path}: joints[{i}]: pattern {pattern!r} matches {j!r}, already matched by "
                                f"joints[{owner[j]}]; each joint appears once in the action order")
            owner[j] = i
    return tuple(owner)


def _group_of(spec: RobotSpec, joint: str) -> ActuatorGroup:
    found = [i for i, g in enumerate(spec.groups) if g.matches(joint)]
    if len(found) != 1:
        listed = ", ".join(f"groups[{i}]" for i in found) or "none"
        raise SpecError(f"{spec.path}: groups: joint {joint!r} must match exactly one group's joints, matches {listed}")
    return spec.groups[found[0]]


def _root(m: mujoco.MjModel, names: _Names, spec: RobotSpec) -> str:
    """The root body: `bodies.root`, or the one body with a free joint."""
    free = [readiness.name_of(m, mujoco.mjtObj.mjOBJ_BODY, m.jnt_bodyid[j]) for j in range(m.njnt)
            if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    if spec.root_body is None and len(free) != 1:
        raise SpecError(f"{spec.path}: bodies.root: the MJCF has {len(free)} free joints; name the floating base")
    root = spec.root_body or free[0]
    if root not in free:
        raise SpecError(f"{spec.path}: bodies.root: body {root!r} must carry a free joint; bodies with one: {free}")
    return root


def _torso(names: _Names, spec: RobotSpec) -> str:
    torso = spec.torso_body or "torso"
    if torso not in names.body:
        raise SpecError(f"{spec.path}: bodies.torso: no body {torso!r} in the MJCF; bodies: {_known(names.body)}")
    return torso


def _match_geoms(names: _Names, patterns: tuple[str, ...], key: str, where: str) -> tuple[str, ...]:
    out: list[str] = []
    for p in patterns:
        found = [g for g in names.geom if re.fullmatch(p, g)]
        if not found:
            raise SpecError(f"{where}: {key}: pattern {p!r} matches no named geom; geoms: {_known(names.geom)}")
        out += [g for g in sorted(found, key=names.geom.get) if g not in out]
    return tuple(out)


def _feet_geoms(names: _Names, spec: RobotSpec, side: str) -> tuple[str, ...]:
    return _match_geoms(names, getattr(spec, f"{side}_geoms"), f"feet.{side}_geoms", str(spec.path))


def _foot_sites(m: mujoco.MjModel, names: _Names, spec: RobotSpec,
                geoms: tuple[tuple[str, ...], tuple[str, ...]]) -> tuple[tuple[SiteEdit, ...], tuple[str, str]]:
    """The foot sites, and the ones to add (at the centre of each foot's geoms, in their body)."""
    added, sites = [], []
    for side, side_geoms in zip(("left", "right"), geoms):
        name = getattr(spec, f"{side}_site") or f"{side}_foot_site"
        sites.append(name)
        if name in names.site:
            continue
        ids = [names.geom[g] for g in side_geoms]
        bodies = {int(m.geom_bodyid[g]) for g in ids}
        if len(bodies) != 1:
            raise SpecError(f"{spec.path}: feet.{side}_site: no site {name!r}, and feet.{side}_geoms lie on "
                            f"{len(bodies)} bodies; name a sole site of the MJCF in feet.{side}_site")
        pos = np.mean(m.geom_pos[ids], axis=0)
        body = readiness.name_of(m, mujoco.mjtObj.mjOBJ_BODY, bodies.pop())
        added.append(SiteEdit(name=name, body=body, pos=tuple(float(v) for v in pos)))
    return tuple(added), (sites[0], sites[1])


def _imu(m: mujoco.MjModel, names: _Names, spec: RobotSpec) -> tuple[tuple[SiteEdit, ...], tuple[SensorEdit, ...],
                                                                   dict[str, str]]:
    """The IMU site (added at `imu.body` when missing) and its four sensors (found or added)."""
    site_edits: tuple[SiteEdit, ...] = ()
    if spec.imu_site not in names.site:
        if spec.imu_body is None:
            raise SpecError(f"{spec.path}: imu.site: no site {spec.imu_site!r} in the MJCF; name one "
                            f"(sites: {_known(names.site)}) or give imu.body to add it at that body's origin")
        if spec.imu_body not in names.body:
            raise SpecError(f"{spec.path}: imu.body: no body {spec.imu_body!r}; bodies: {_known(names.body)}")
        site_edits = (SiteEdit(name=spec.imu_site, body=spec.imu_body),)
    site_id = names.site.get(spec.imu_site, -1)
    taken = {readiness.name_of(m, mujoco.mjtObj.mjOBJ_SENSOR, s) for s in range(m.nsensor)}
    sensors, fields = [], {}
    for field, (kind, default_name) in IMU_SENSORS.items():
        found = [s for s in range(m.nsensor)
                 if m.sensor_type[s] == mjcf_edits.SENSOR_TYPES[kind]
                 and m.sensor_objtype[s] == mujoco.mjtObj.mjOBJ_SITE and m.sensor_objid[s] == site_id
                 and m.sensor_reftype[s] == mujoco.mjtObj.mjOBJ_UNKNOWN
                 and readiness.name_of(m, mujoco.mjtObj.mjOBJ_SENSOR, s)]
        if found:
            fields[field] = readiness.name_of(m, mujoco.mjtObj.mjOBJ_SENSOR, found[0])
            continue
        name = default_name if default_name not in taken else f"jaxhum_{default_name}"
        sensors.append(SensorEdit(kind=kind, name=name, site=spec.imu_site))
        fields[field] = name
    return site_edits, tuple(sensors), fields


def _expected(spec: RobotSpec, joint: str) -> dict[str, float]:
    g = _group_of(spec, joint)
    return {"kp": g.kp, "kd": g.kd, "torque_limit": g.torque_limit, "armature": g.armature}


def _actuator_edits(m: mujoco.MjModel, spec: RobotSpec, joints: tuple[str, ...]) -> tuple[ActuatorEdit, ...]:
    """Position actuators to write: none when the MJCF matches; with `stop`, the first mismatch is refused."""
    out = []
    for j in joints:
        problem = readiness.actuator_problem(m, j, _expected(spec, j))
        if not problem:
            continue
        if len(readiness.joint_drivers(m, j)) > 1:  # which one to keep is the author's call, in any mode
            raise readiness.NotReadyError(f"{spec.path}: joint {j!r} {problem} in the MJCF")
        if spec.on_mismatch == "stop":
            raise readiness.NotReadyError(f"{spec.path}: joint {j!r} {problem}, so the load stops (actuators."
                                          f"on_mismatch = \"stop\"): fix the MJCF, or {readiness.OVERWRITE_HINT}")
        out.append(ActuatorEdit(joint=j, **_expected(spec, j)))
    return tuple(out)


# ----------------------------------------------------------------------------- home pose and checks


def _home(m: mujoco.MjModel, spec: RobotSpec, robot: Robot) -> KeyframeEdit | None:
    """The home keyframe to write: from joint values, or the MJCF's own with ctrl = the joint targets
    (None when the MJCF's already is)."""
    act = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, j) for j in robot.joint_names]
    adr = [m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j)] for j in robot.joint_names]
    if spec.home_joints is None:
        key = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, spec.home_keyframe)
        if key < 0:
            known = [m.key(i).name for i in range(m.nkey)]
            raise SpecError(f"{spec.path}: home.keyframe: no keyframe {spec.home_keyframe!r} in the MJCF "
                            f"(keyframes: {known}); name one, or give the pose as home.joints")
        qpos, ctrl = np.array(m.key_qpos[key]), np.array(m.key_ctrl[key])
        if np.allclose(ctrl[act], qpos[adr], rtol=0, atol=1e-12):
            return None
    else:
        qpos, ctrl = _home_qpos(m, spec, robot), np.zeros(m.nu)
    ctrl[act] = qpos[adr]
    return KeyframeEdit(name=spec.home_keyframe, qpos=tuple(map(float, qpos)), ctrl=tuple(map(float, ctrl)))


def _home_qpos(m: mujoco.MjModel, spec: RobotSpec, robot: Robot) -> np.ndarray:
    """qpos0 with the spec's joint values, the root upright at `home.height` or with its feet on the floor."""
    qpos = np.array(m.qpos0)
    joints = {readiness.name_of(m, mujoco.mjtObj.mjOBJ_JOINT, j): j for j in range(m.njnt)
              if int(m.jnt_type[j]) in readiness.LIMITED_JOINTS}
    for pattern, value in spec.home_joints:
        found = [j for name, j in joints.items() if name and re.fullmatch(pattern, name)]
        if not found:
            raise SpecError(f"{spec.path}: home.joints: pattern {pattern!r} matches no hinge or slide joint")
        for j in found:
            lo, hi = m.jnt_range[j]
            if m.jnt_limited[j] and not lo <= value <= hi:
                raise SpecError(f"{spec.path}: home.joints: {pattern!r} = {value} is outside the range "
                                f"[{lo}, {hi}] of joint {readiness.name_of(m, mujoco.mjtObj.mjOBJ_JOINT, j)!r}")
            qpos[m.jnt_qposadr[j]] = value
    root = m.jnt_qposadr[m.body_jntadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, robot.root_body)]]
    qpos[root + 3: root + 7] = (1.0, 0.0, 0.0, 0.0)
    if spec.home_height is not None:
        qpos[root + 2] = spec.home_height
        return qpos
    data = mujoco.MjData(m)
    data.qpos[:] = qpos
    mujoco.mj_kinematics(m, data)
    geoms = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g) for side in robot.foot_geoms for g in side]
    qpos[root + 2] -= min(_geom_bottom(m, data, g) for g in geoms) + HOME_PENETRATION
    return qpos


def _geom_bottom(m: mujoco.MjModel, data: mujoco.MjData, g: int) -> float:
    """Lowest world z of geom `g` (exact for spheres, its bounding box's corners otherwise)."""
    if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE:
        return float(data.geom_xpos[g, 2] - m.geom_size[g, 0])
    center, half = m.geom_aabb[g, :3], m.geom_aabb[g, 3:]
    signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
    corners = center + signs * half  # (8, 3) in the geom frame
    z = data.geom_xpos[g, 2] + corners @ data.geom_xmat[g].reshape(3, 3)[2]
    return float(z.min())


def _missing_assets(spec: RobotSpec) -> MjcfEdits:
    """The meshes and textures whose files are missing, to drop; warns for them, and refuses a
    missing mesh that a geom collides with (unless contacts.filter makes every such geom visual)."""
    parsed = mjcf_edits.parse(spec.mjcf)
    meshes = mjcf_edits.missing_files(parsed, parsed.meshes)
    textures = mjcf_edits.missing_files(parsed, parsed.textures)
    for geom in parsed.geoms:
        colliding = (geom.contype or geom.conaffinity) and not spec.contacts_filter
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH and geom.meshname in meshes and colliding:
            label = repr(geom.name) if geom.name else f"in body {geom.parent.name!r}"
            raise readiness.NotReadyError(
                f"{spec.path}: mesh {geom.meshname!r} ({meshes[geom.meshname]}) is missing on disk and geom {label} "
                f"collides with it: ship the file, or {readiness.FILTER_HINT}")
    if meshes:
        listed = ", ".join(f"{name!r} ({file})" for name, file in sorted(meshes.items()))
        warnings.warn(f"{spec.path}: {len(meshes)} mesh file(s) missing on disk, dropped with the visual geoms "
                      f"that use them: {listed}", UserWarning, stacklevel=3)
    if textures:
        listed = ", ".join(f"{name!r} ({file})" for name, file in sorted(textures.items()))
        warnings.warn(f"{spec.path}: {len(textures)} texture file(s) missing on disk, dropped (materials keep "
                      f"their colour): {listed}", UserWarning, stacklevel=3)
    return MjcfEdits(drop_meshes=tuple(sorted(meshes)), drop_textures=tuple(sorted(textures)))


def _check_ready(robot: Robot, spec: RobotSpec) -> None:
    """The refusals of `readiness` on the robot's final model, then the standing check (a warning)."""
    where = str(spec.path)
    try:
        m = robot.native_model()
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from exc
    readiness.check_mjx(m, where)
    readiness.check_collision_meshes(m, where)
    allowed = frozenset(mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in (
        *(g for side in robot.foot_geoms for g in side),
        *_match_geoms(_Names(m), spec.with_floor, "contacts.with_floor", where)))
    floor = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, spec.floor)
    readiness.check_contact_pairs(m, allowed, floor, where)
    feet = tuple(mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g) for side in robot.foot_geoms for g in side)
    readiness.check_feet_touch_floor(m, feet, floor, where)
    readiness.check_joint_limits(m, where)
    for j in robot.joint_names:
        problem = readiness.actuator_problem(m, j, _expected(spec, j))
        if problem:  # cannot happen after the edits; kept so a wrong edit never passes silently
            raise readiness.NotReadyError(f"{where}: joint {j!r} {problem}")
    key = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, robot.home_keyframe)
    root = int(m.jnt_qposadr[m.body_jntadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, robot.root_body)]])
    drop = readiness.home_drop(m, key, root)
    if not drop <= spec.stand_tolerance:
        warnings.warn(f"{where}: the home pose does not stand with zero action: the pelvis ({robot.root_body!r}) "
                      f"drops {drop:.3f} m in 2 s of native MuJoCo (home.stand_tolerance {spec.stand_tolerance} m); "
                      f"many robots stand only under a policy", UserWarning, stacklevel=3)
