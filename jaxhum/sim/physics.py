"""Pure physics functions over MJX: `init` and `step` take the model as an argument.

The model is an argument (not an attribute) so a caller can `vmap` over per-environment
model parameters for domain randomization.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from mujoco import mjx


def init(model: mjx.Model, qpos: jax.Array, qvel: jax.Array) -> mjx.Data:
    """Returns MJX data at configuration `qpos` (nq,) and velocity `qvel` (nv,), kinematics computed.

    `mjx.forward` fills positions, velocities, com quantities and actuator forces, so the
    returned data can be observed right away.
    """
    chex.assert_shape(qpos, (model.nq,))
    chex.assert_shape(qvel, (model.nv,))
    data = mjx.make_data(model)
    data = data.replace(qpos=jnp.asarray(qpos, data.qpos.dtype), qvel=jnp.asarray(qvel, data.qvel.dtype))
    return mjx.forward(model, data)


def step(model: mjx.Model, data: mjx.Data, ctrl: jax.Array, n_substeps: int) -> mjx.Data:
    """Advances `data` by `n_substeps` physics steps holding `ctrl` (nu,) constant.

    As in MuJoCo, kinematic fields of the returned data (xpos, subtree_com, cvel, ...) are those
    computed at the start of the last substep; qpos/qvel are the integrated ones.
    """
    chex.assert_shape(ctrl, (model.nu,))
    data = data.replace(ctrl=ctrl)

    def substep(d: mjx.Data, _: None) -> tuple[mjx.Data, None]:
        return mjx.step(model, d), None

    data, _ = jax.lax.scan(substep, data, None, length=n_substeps)
    return data
