"""Foot contact flags of a robot, for MJX (jit/vmap) and native MuJoCo (numpy)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from jaxhum.robots.base import RobotIndex
from jaxhum.sim.sensors import geoms_touching, geoms_touching_np


def foot_contacts(idx: RobotIndex, data: mjx.Data) -> jax.Array:
    """Returns (2,) float32: 1.0 where the left / right sole touches the floor (dist < 0), else 0.0."""
    return jnp.stack(
        [geoms_touching(data, idx.foot_geom_ids[i], idx.floor_geom_id) for i in range(2)]
    ).astype(jnp.float32)


def foot_contacts_np(idx: RobotIndex, data: mujoco.MjData) -> np.ndarray:
    """Numpy twin of `foot_contacts` for native `mujoco.MjData`: (2,) float32."""
    return np.array([geoms_touching_np(data, idx.foot_geom_ids[i], idx.floor_geom_id) for i in range(2)], np.float32)
