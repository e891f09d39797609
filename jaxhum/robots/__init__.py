"""Robots shipped with jaxhum: MJCF files inside the package and one frozen `Robot` record each.

    robot = get_robot("jh1")    # frozen Robot record
    sim = robot.load()          # jaxhum.sim.SimModel with the robot's physics options
    idx = robot.index(sim)      # RobotIndex: ids, addresses, gains, home pose, resolved by name
"""

from __future__ import annotations

import types

from jaxhum.robots.base import ActuatorGroup, Robot, RobotIndex
from jaxhum.robots.contacts import foot_contacts, foot_contacts_np
from jaxhum.robots.jh1 import JH1

ROBOTS = types.MappingProxyType({JH1.name: JH1})


def get_robot(name: str) -> Robot:
    """Returns the robot called `name`; ValueError listing the known robots otherwise."""
    if name not in ROBOTS:
        raise ValueError(f"robot: unknown robot {name!r}; known robots: {', '.join(sorted(ROBOTS))}")
    return ROBOTS[name]


__all__ = ["ROBOTS", "ActuatorGroup", "Robot", "RobotIndex", "foot_contacts", "foot_contacts_np", "get_robot"]
