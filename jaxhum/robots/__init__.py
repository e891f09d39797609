"""Robots shipped with jaxhum: MJCF files inside the package and one frozen `Robot` record each;
any other robot loads from a spec file beside its MJCF into the same record (`jaxhum.robots.spec`).

    robot = get_robot("jh1")    # frozen Robot record
    robot = load("my_robot/robot.toml")   # the same record, from a spec file (get_robot takes the path too)
    sim = robot.load()          # jaxhum.sim.SimModel with the robot's physics options
    idx = robot.index(sim)      # RobotIndex: ids, addresses, gains, home pose, resolved by name
    ctrl = action_to_ctrl(idx, a)   # a (A,) in [-1, 1] -> position targets (nu,)
    on_floor = foot_contacts(idx, mjx_data)   # (2,) float32, left / right
"""

from __future__ import annotations

import importlib.resources
import pathlib
import types

from jaxhum.robots.base import ActuatorGroup, Robot, RobotIndex
from jaxhum.robots.contacts import foot_contacts, foot_contacts_np
from jaxhum.robots.control import action_to_ctrl
from jaxhum.robots.jh1 import JH1
from jaxhum.robots.readiness import NotReadyError
from jaxhum.robots.spec import SpecError, is_spec_path, load, read_spec

ROBOTS = types.MappingProxyType({JH1.name: JH1})
# Robots shipped as spec files, loaded on demand (`get_robot(name)`), exactly as a user's robot loads.
SPEC_FILES = types.MappingProxyType({"jh_mini": pathlib.Path(str(importlib.resources.files("jaxhum.robots")
                                                                / "assets" / "jh_mini.toml")),
                                     # jh1 with floor contacts beyond the soles and a tuck's action scales
                                     "jh1_flip": pathlib.Path(str(importlib.resources.files("jaxhum.robots")
                                                                 / "assets" / "jh1_flip.toml"))})


def check_robot(name: str) -> None:
    """Raises ValueError (field `robot`) unless `name` is a registered robot (`ROBOTS`, `SPEC_FILES`)
    or an existing, valid .toml spec file; reads the spec file only (no MJCF, no compile)."""
    if name in ROBOTS or name in SPEC_FILES:
        return
    known = ", ".join(sorted({*ROBOTS, *SPEC_FILES}))
    if not is_spec_path(name):
        raise ValueError(f"robot: unknown robot {name!r}; known robots: {known}, or the path of an existing "
                         f".toml robot spec file")
    if not pathlib.Path(name).is_file():
        raise ValueError(f"robot: robot spec file {str(name)!r} not found; give an existing .toml path or one of "
                         f"the known robots: {known}")
    try:
        read_spec(name)
    except SpecError as exc:
        raise ValueError(f"robot: {exc}") from exc


def get_robot(name: str) -> Robot:
    """Returns the registered robot `name` (`ROBOTS`, or a shipped spec file in `SPEC_FILES`), or the
    robot a .toml spec file at path `name` describes.

    Raises:
      ValueError: (field `robot`) neither a registered name nor an existing .toml file, or the
        spec file is invalid or its MJCF not ready for MJX (one line naming the element and the fix).
    """
    check_robot(name)
    if name in ROBOTS:
        return ROBOTS[name]
    try:
        return load(SPEC_FILES.get(name, name))
    except (SpecError, NotReadyError) as exc:
        raise ValueError(f"robot: {exc}") from exc


__all__ = [
    "ROBOTS",
    "SPEC_FILES",
    "ActuatorGroup",
    "NotReadyError",
    "Robot",
    "RobotIndex",
    "SpecError",
    "action_to_ctrl",
    "check_robot",
    "foot_contacts",
    "foot_contacts_np",
    "get_robot",
    "load",
]
