"""Edits a robot's spec file asks of its MJCF, as data, applied through `mujoco.MjSpec` before compiling.

A user's MJCF is never rewritten on disk: `jaxhum.robots.load` decides the edits once (from the
spec file and what the MJCF lacks) and stores them in the `Robot` record, and every load of that
record (`Robot.load`, `native_model`) applies them to a freshly parsed MJCF. A robot whose MJCF
needs nothing (jh1) has `MjcfEdits()`, and loads exactly as `mujoco.MjModel.from_xml_path`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import types
from collections.abc import Mapping

import mujoco

# Sensor kinds of the IMU, as the spec file and `SensorEdit.kind` name them.
SENSOR_TYPES: Mapping[str, mujoco.mjtSensor] = types.MappingProxyType({
    "gyro": mujoco.mjtSensor.mjSENS_GYRO,
    "accelerometer": mujoco.mjtSensor.mjSENS_ACCELEROMETER,
    "framequat": mujoco.mjtSensor.mjSENS_FRAMEQUAT,
    "velocimeter": mujoco.mjtSensor.mjSENS_VELOCIMETER,
})


@dataclasses.dataclass(frozen=True)
class SiteEdit:
    """A site added to `body` at `pos` (3,) in the body frame (m)."""

    name: str
    body: str
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class SensorEdit:
    """A sensor of `kind` (a key of `SENSOR_TYPES`) added on `site`."""

    kind: str
    name: str
    site: str


@dataclasses.dataclass(frozen=True)
class ActuatorEdit:
    """A position actuator named after `joint` written over whatever drives it (or added).

    kp (N m/rad), kd (N m s/rad), torque_limit (N m, symmetric), armature (kg m^2, set on the
    joint); the control range is the joint's range.
    """

    joint: str
    kp: float
    kd: float
    torque_limit: float
    armature: float


@dataclasses.dataclass(frozen=True)
class KeyframeEdit:
    """Keyframe `name` set (or added) with qpos (nq,) and ctrl (nu,)."""

    name: str
    qpos: tuple[float, ...]
    ctrl: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class MjcfEdits:
    """What `apply` changes in a parsed MJCF, in this order.

    Attributes:
      drop_meshes: mesh assets removed with every geom that uses them (their files are missing).
      drop_textures: texture assets removed (their files are missing); materials keep their colour.
      add_floor: name of a plane added to the worldbody (contype 0, conaffinity 1); "" adds none.
      sites, sensors: added as listed (the IMU site and its sensors, foot sites).
      actuators: position actuators written from the spec's groups.
      collide_only: when not None, these geoms keep colliding, with `floor` alone (contype 1,
        conaffinity 0; the floor 0 / 1); every other geom gets 0 / 0 and explicit `<pair>`s
        other than theirs with the floor are removed.
      floor: the floor geom `collide_only` refers to.
      keyframe: the home keyframe, when the spec gives joint values or the MJCF's ctrl differs.
    """

    drop_meshes: tuple[str, ...] = ()
    drop_textures: tuple[str, ...] = ()
    add_floor: str = ""
    sites: tuple[SiteEdit, ...] = ()
    sensors: tuple[SensorEdit, ...] = ()
    actuators: tuple[ActuatorEdit, ...] = ()
    collide_only: tuple[str, ...] | None = None
    floor: str = "floor"
    keyframe: KeyframeEdit | None = None

    @property
    def empty(self) -> bool:
        return self == MjcfEdits(floor=self.floor)


def parse(path: pathlib.Path) -> mujoco.MjSpec:
    """Parses `path` into an MjSpec (meshes are read only at compile); ValueError in one line."""
    try:
        return mujoco.MjSpec.from_file(str(path))
    except Exception as exc:  # mujoco raises ValueError with the parser's message
        raise ValueError(f"{path}: malformed MJCF: {_first_line(exc)}") from exc


def compile_mjcf(path: pathlib.Path, edits: MjcfEdits) -> mujoco.MjModel:
    """The MJCF at `path` with `edits` applied, compiled; ValueError naming the file in one line."""
    spec = parse(path)
    apply(spec, edits)
    try:
        return spec.compile()
    except Exception as exc:
        raise ValueError(f"{path}: MJCF does not compile: {_first_line(exc)}") from exc


def apply(spec: mujoco.MjSpec, edits: MjcfEdits) -> None:
    """Applies `edits` to `spec` in place (the spec is this load's own, freshly parsed)."""
    _drop_meshes(spec, edits.drop_meshes)
    _drop_textures(spec, edits.drop_textures)
    if edits.add_floor:
        spec.worldbody.add_geom(name=edits.add_floor, type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05],
                                contype=0, conaffinity=1, condim=3)
    for site in edits.sites:
        spec.body(site.body).add_site(name=site.name, pos=list(site.pos), size=[0.01, 0.01, 0.01])
    for sensor in edits.sensors:
        spec.add_sensor(name=sensor.name, type=SENSOR_TYPES[sensor.kind], objtype=mujoco.mjtObj.mjOBJ_SITE,
                        objname=sensor.site)
    for actuator in edits.actuators:
        _write_position_actuator(spec, actuator)
    if edits.collide_only is not None:
        _collide_only(spec, frozenset(edits.collide_only), edits.floor)
    if edits.keyframe is not None:
        _set_keyframe(spec, edits.keyframe)


def asset_name(asset: mujoco.MjsMesh | mujoco.MjsTexture) -> str:
    """A mesh's or texture's name as others refer to it (MuJoCo names an unnamed one after its file)."""
    return asset.name or pathlib.Path(asset.file).stem


def asset_file(spec: mujoco.MjSpec, asset: mujoco.MjsMesh | mujoco.MjsTexture) -> pathlib.Path:
    """Where the compiler will look for a mesh's or texture's file (meshdir and texturedir are
    relative to the MJCF's folder)."""
    file = pathlib.Path(asset.file)
    if spec.strippath:
        file = pathlib.Path(file.name)
    if file.is_absolute():
        return file
    folder = spec.meshdir if isinstance(asset, mujoco.MjsMesh) else spec.texturedir
    return pathlib.Path(spec.modelfiledir) / (folder or "") / file


def missing_files(spec: mujoco.MjSpec, assets) -> dict[str, pathlib.Path]:
    """name -> file of the `assets` (spec.meshes or spec.textures) whose files are not on disk."""
    return {asset_name(a): asset_file(spec, a) for a in assets
            if a.file and a.file not in spec.assets and not asset_file(spec, a).is_file()}


def _drop_meshes(spec: mujoco.MjSpec, names: tuple[str, ...]) -> None:
    if not names:
        return
    drop = frozenset(names)
    for geom in list(spec.geoms):
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH and geom.meshname in drop:
            spec.delete(geom)
    for mesh in list(spec.meshes):
        if asset_name(mesh) in drop:
            spec.delete(mesh)


def _drop_textures(spec: mujoco.MjSpec, names: tuple[str, ...]) -> None:
    if not names:
        return
    drop = frozenset(names)
    for material in spec.materials:
        material.textures = ["" if t in drop else t for t in material.textures]
    for texture in list(spec.textures):
        if asset_name(texture) in drop:
            spec.delete(texture)


def _drivers(spec: mujoco.MjSpec, joint: str) -> list[mujoco.MjsActuator]:
    return [a for a in spec.actuators if a.trntype == mujoco.mjtTrn.mjTRN_JOINT and a.target == joint]


def _write_position_actuator(spec: mujoco.MjSpec, edit: ActuatorEdit) -> None:
    """Turns the joint's first actuator into the spec's position actuator (keeping its place in
    ctrl), or adds one; MuJoCo pads every keyframe's ctrl for an added actuator."""
    drivers = _drivers(spec, edit.joint)
    actuator = drivers[0] if drivers else spec.add_actuator(target=edit.joint, trntype=mujoco.mjtTrn.mjTRN_JOINT)
    actuator.name = edit.joint
    actuator.set_to_position(kp=edit.kp, kv=edit.kd, inheritrange=True)
    actuator.gear = [1.0, 0, 0, 0, 0, 0]
    actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    actuator.forcerange = [-edit.torque_limit, edit.torque_limit]
    actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
    spec.joint(edit.joint).armature = edit.armature


def _collide_only(spec: mujoco.MjSpec, keep: frozenset[str], floor: str) -> None:
    for geom in spec.geoms:
        if geom.name == floor:
            geom.contype, geom.conaffinity = 0, 1
        elif geom.name in keep:
            geom.contype, geom.conaffinity = 1, 0
        else:
            geom.contype, geom.conaffinity = 0, 0
    for pair in list(spec.pairs):
        names = {pair.geomname1, pair.geomname2}
        if not (floor in names and names - {floor} <= keep):
            spec.delete(pair)


def _set_keyframe(spec: mujoco.MjSpec, edit: KeyframeEdit) -> None:
    found = [k for k in spec.keys if k.name == edit.name]
    key = found[0] if found else spec.add_key(name=edit.name)
    key.qpos = list(edit.qpos)
    key.ctrl = list(edit.ctrl)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
