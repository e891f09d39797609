"""Actions to actuator controls: target = home + action_scale * a, a in [-1, 1]."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from jaxhum.robots.base import RobotIndex


def action_to_ctrl(idx: RobotIndex, action: jax.Array) -> jax.Array:
    """Maps an action (A,) in action order to position targets `ctrl` (nu,).

    ctrl[actuator_ids] = clip(home_joint_pos + action_scale * clip(a, -1, 1), joint_range); other
    actuators (none on jh1) keep the home keyframe's ctrl. Pure; works under jit and vmap.
    """
    chex.assert_shape(action, idx.qpos_adr.shape)
    a = jnp.clip(action, -1.0, 1.0)
    target = idx.home_joint_pos + idx.action_scale * a
    target = jnp.clip(target, idx.joint_range[:, 0], idx.joint_range[:, 1])
    return jnp.asarray(idx.home_ctrl, target.dtype).at[idx.actuator_ids].set(target)
