"""MJCF loading: a MuJoCo model, its MJX model and name -> id tables resolved once.

`load_model` is the only place that touches the file system. Everything it returns is
frozen; the MJX model is a pytree that the pure functions in `jaxhum.sim.physics` take as
an argument, so domain randomization can `vmap` over model parameters.
"""

from __future__ import annotations

import dataclasses
import pathlib
import types
from collections.abc import Mapping

import jax
import mujoco
from mujoco import mjx

# MuJoCo object kinds that get a name table; the key is the `kind` users pass to `SimModel.id`.
_NAMED_KINDS: Mapping[str, mujoco.mjtObj] = types.MappingProxyType(
    {
        "body": mujoco.mjtObj.mjOBJ_BODY,
        "joint": mujoco.mjtObj.mjOBJ_JOINT,
        "site": mujoco.mjtObj.mjOBJ_SITE,
        "sensor": mujoco.mjtObj.mjOBJ_SENSOR,
        "actuator": mujoco.mjtObj.mjOBJ_ACTUATOR,
        "geom": mujoco.mjtObj.mjOBJ_GEOM,
    }
)

_SOLVERS: Mapping[str, mujoco.mjtSolver] = types.MappingProxyType(
    {
        "newton": mujoco.mjtSolver.mjSOL_NEWTON,
        "cg": mujoco.mjtSolver.mjSOL_CG,
    }
)


class ModelLoadError(ValueError):
    """An MJCF file could not be loaded; the message names the file and the problem."""


class NameLookupError(KeyError):
    """A body/joint/site/sensor name is not in the model; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable.
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class PhysicsOptions:
    """Solver settings applied to the MuJoCo model before it is put on the device.

    Fields left as None keep the value the MJCF file sets.
    """

    solver: str | None = None  # 'newton' or 'cg'
    iterations: int | None = None  # constraint solver iterations
    ls_iterations: int | None = None  # line-search iterations
    timestep: float | None = None  # physics step (s)
    # Replaces opt.disableflags as a whole, as brax's `tree_replace` does; None keeps the file's.
    disableflags: int | None = None


@dataclasses.dataclass(frozen=True)
class SimModel:
    """A loaded model: the host MuJoCo model, the device MJX model and name tables.

    Attributes:
      path: the MJCF file it came from.
      mj_model: host `mujoco.MjModel` (for rendering and name queries; not a pytree).
      mjx_model: device `mjx.Model` (a pytree; pass it to `init`/`step`).
      names: kind -> (name -> id), for kinds body, joint, site, sensor, actuator, geom.
    """

    path: pathlib.Path
    mj_model: mujoco.MjModel
    mjx_model: mjx.Model
    names: Mapping[str, Mapping[str, int]]

    def id(self, kind: str, name: str) -> int:
        """Returns the id of the `kind` object called `name` (e.g. `id('body', 'torso')`)."""
        if kind not in self.names:
            raise NameLookupError(f"unknown object kind {kind!r}; known kinds: {sorted(self.names)}")
        table = self.names[kind]
        if name not in table:
            known = ", ".join(sorted(table)) or "(none)"
            raise NameLookupError(f"{self.path}: no {kind} named {name!r}; known {kind} names: {known}")
        return table[name]

    def sensor_slice(self, name: str) -> slice:
        """Returns the slice of `data.sensordata` that holds sensor `name`."""
        i = self.id("sensor", name)
        start = int(self.mj_model.sensor_adr[i])
        return slice(start, start + int(self.mj_model.sensor_dim[i]))


def _name_tables(mj_model: mujoco.MjModel) -> Mapping[str, Mapping[str, int]]:
    counts = {
        "body": mj_model.nbody,
        "joint": mj_model.njnt,
        "site": mj_model.nsite,
        "sensor": mj_model.nsensor,
        "actuator": mj_model.nu,
        "geom": mj_model.ngeom,
    }
    tables = {}
    for kind, obj in _NAMED_KINDS.items():
        table = {}
        for i in range(counts[kind]):
            name = mujoco.mj_id2name(mj_model, obj, i)
            if name:
                table[name] = i
        tables[kind] = types.MappingProxyType(table)
    return types.MappingProxyType(tables)


def apply_options(mj_model: mujoco.MjModel, options: PhysicsOptions, path: pathlib.Path) -> None:
    """Writes `options` into `mj_model` (in place); ModelLoadError naming `path` for a bad one."""
    if options.solver is not None:
        if options.solver not in _SOLVERS:
            raise ModelLoadError(f"{path}: solver must be one of {sorted(_SOLVERS)}, got {options.solver!r}")
        mj_model.opt.solver = _SOLVERS[options.solver]
    if options.iterations is not None:
        mj_model.opt.iterations = options.iterations
    if options.ls_iterations is not None:
        mj_model.opt.ls_iterations = options.ls_iterations
    if options.timestep is not None:
        mj_model.opt.timestep = options.timestep
    if options.disableflags is not None:
        mj_model.opt.disableflags = options.disableflags


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_model(
    path: str | pathlib.Path,
    *,
    fuse_bodies: bool = False,
    options: PhysicsOptions = PhysicsOptions(),
    impl: str = "jax",
) -> SimModel:
    """Loads an MJCF file into a MuJoCo model, its MJX model and name tables.

    Args:
      path: MJCF (.xml) file.
      fuse_bodies: merge bodies without joints into their parents before compiling, exactly
        as `brax.io.mjcf.load_mjmodel` does (brax's humanoid has 12 bodies this way, not 14).
      options: solver settings written into the model before it goes to the device.
      impl: MJX implementation ('jax' runs everywhere).

    Raises:
      ModelLoadError: the file is missing or unreadable, is not valid MJCF, uses a feature MJX
        does not support, or an option is invalid; the message (one line) names the file and
        the problem.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a directory, not an MJCF file")
    if not path.is_file():
        raise ModelLoadError(f"{path}: MJCF file not found")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        if fuse_bodies:
            # brax's loader is the reference for fused-body models; use it rather than a copy.
            from brax.io import mjcf as brax_mjcf

            mj_model = brax_mjcf.load_mjmodel(path)
        else:
            mj_model = mujoco.MjModel.from_xml_path(str(path))
    except Exception as exc:  # mujoco raises ValueError, ElementTree raises ParseError
        raise ModelLoadError(f"{path}: malformed MJCF: {_first_line(exc)}") from exc
    return from_mj_model(mj_model, path, options=options, impl=impl)


def from_mj_model(
    mj_model: mujoco.MjModel,
    path: str | pathlib.Path,
    *,
    options: PhysicsOptions = PhysicsOptions(),
    impl: str = "jax",
) -> SimModel:
    """A compiled MuJoCo model (e.g. an MJCF edited through `mujoco.MjSpec`) as a SimModel:
    `options` written into it (in place), then its MJX model and name tables, as `load_model`.

    Args:
      path: the MJCF it was compiled from (named in errors and kept in `SimModel.path`).

    Raises:
      ModelLoadError: an option is invalid or MJX cannot use the model (one line naming `path`).
    """
    path = pathlib.Path(path)
    apply_options(mj_model, options, path)
    try:
        # This process's own device: MJX's default is jax.devices()[0], which in a multi-process
        # run (jax.distributed) belongs to process 0 and cannot be read by the others.
        mjx_model = mjx.put_model(mj_model, impl=impl, device=jax.local_devices()[0])
    except Exception as exc:  # MJX rejects features it does not support, and bad values, with different exception types
        raise ModelLoadError(f"{path}: MJX cannot use this model: {_first_line(exc)}") from exc
    return SimModel(path=path, mj_model=mj_model, mjx_model=mjx_model, names=_name_tables(mj_model))
