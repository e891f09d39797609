"""Contact readers, pure, for MJX data (inside jit/vmap) and a numpy twin for native `mujoco.MjData`.

MuJoCo's `touch` sensor also runs in MJX's JAX implementation, but it needs contact forces in
every substep; reading the contact list is free (collision detection fills it anyway), works in
both engines and tells "touching" by geometry: a contact between the two geoms with dist < 0.

In MJX (JAX implementation) the contact list has one slot per contact candidate, always present;
a slot whose geoms are apart holds a positive distance. Native MuJoCo lists only contacts within
the margin (`data.ncon` of them).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx


def _mjx_contact(data: mjx.Data):
    impl = getattr(data, "_impl", None)
    contact = getattr(impl, "contact", None)
    if contact is None:
        raise ValueError(f"geoms_touching: data must come from MJX's 'jax' implementation, got {type(impl).__name__}")
    return contact


def geoms_touching(data: mjx.Data, geom_ids: jax.Array, other_geom_id: int) -> jax.Array:
    """Returns () bool: whether any of `geom_ids` (k,) is in contact (dist < 0) with `other_geom_id`.

    Pure; works under jit and vmap. A model with no contact candidates gives False.
    """
    geom_ids = jnp.asarray(geom_ids)
    chex.assert_rank(geom_ids, 1)
    contact = _mjx_contact(data)
    pair = contact.geom  # (ncon, 2)
    if pair.shape[0] == 0:
        return jnp.zeros((), bool)
    return _touching(pair, contact.dist, geom_ids, other_geom_id, jnp)


def geoms_touching_np(data: mujoco.MjData, geom_ids: np.ndarray, other_geom_id: int) -> bool:
    """Numpy twin of `geoms_touching` for native MuJoCo data (after `mj_forward` or `mj_step`)."""
    n = data.ncon
    if n == 0:
        return False
    pair = np.asarray(data.contact.geom[:n]).reshape(n, 2)
    return bool(_touching(pair, np.asarray(data.contact.dist[:n]), np.asarray(geom_ids), other_geom_id, np))


def _touching(pair, dist, geom_ids, other, xp):
    """pair (n, 2), dist (n,), geom_ids (k,) -> () bool, with xp = numpy or jax.numpy."""
    in0 = (pair[:, 0, None] == geom_ids[None, :]).any(axis=1)
    in1 = (pair[:, 1, None] == geom_ids[None, :]).any(axis=1)
    hit = (in0 & (pair[:, 1] == other)) | (in1 & (pair[:, 0] == other))
    return xp.any(hit & (dist < 0))
