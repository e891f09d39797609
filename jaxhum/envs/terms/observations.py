"""Observation terms, one small pure function each, concatenated in a task's declared order.

Each term takes keyword-only arguments from the quantities a task provides (here the MJX
`data` and ids resolved at load) and returns a flat vector. Terms never draw random numbers:
sensor noise, when a task adds it, takes an explicit key in the task's step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from jaxhum.envs.terms.rewards import call_term


def qpos_without_root_xy(*, data: mjx.Data) -> jax.Array:
    """Generalized positions without the root's world x and y: (nq - 2,).

    Dropping x, y makes the policy invariant to where on the plane the robot is.
    """
    return data.qpos[2:]


def qvel(*, data: mjx.Data) -> jax.Array:
    """Generalized velocities (nv,)."""
    return data.qvel


def body_com_velocity(*, data: mjx.Data) -> jax.Array:
    """Com-based 6D velocity (angular, linear) of each body but the world: ((nbody - 1) * 6,)."""
    return data.cvel[1:].ravel()


def body_positions_from_com(*, data: mjx.Data) -> jax.Array:
    """Each body's centre of mass relative to the whole-body centre of mass: ((nbody - 1) * 3,)."""
    return (data.xipos[1:] - data.subtree_com[0]).ravel()


def actuator_forces(*, data: mjx.Data) -> jax.Array:
    """Actuator forces in joint space (nv,)."""
    return data.qfrc_actuator


def concat(terms: Sequence[Any], context: Mapping[str, Any]) -> jax.Array:
    """Concatenates `terms` (observation functions) evaluated on `context` into one (obs_size,) vector."""
    parts = [jnp.asarray(call_term(fn, context), jnp.float32) for fn in terms]
    for fn, part in zip(terms, parts):
        chex.assert_rank(part, 1, custom_message=f"observation term {fn.__name__}")
    return jnp.concatenate(parts)


def concat_host(terms: Sequence[Any], context: Mapping[str, Any]) -> np.ndarray:
    """`concat` in numpy: the same terms evaluated on host data (e.g. a native `mujoco.MjData`).

    The terms only index and combine arrays, so they run on numpy arrays as they are; this is
    the observation a policy sees when it runs outside JAX (sim-to-sim, a robot). (obs_size,) float32.
    """
    return np.concatenate([np.asarray(call_term(fn, context), np.float32).ravel() for fn in terms])



# ----------------------------------------------------------------------------- robot terms


def joint_pos_from_home(*, data: mjx.Data, qpos_adr: jax.Array, home_joint_pos: jax.Array) -> jax.Array:
    """Actuated joint angles minus their home angles, (A,) in rad, in action order."""
    return data.qpos[qpos_adr] - home_joint_pos


def joint_vel(*, data: mjx.Data, dof_adr: jax.Array) -> jax.Array:
    """Actuated joint velocities (A,) in rad/s, in action order."""
    return data.qvel[dof_adr]


def gravity_in_imu(*, data: mjx.Data, imu_site_id: int) -> jax.Array:
    """Unit gravity direction in the IMU frame (3,): (0, 0, -1) when the IMU is level.

    R^T g for the site's world rotation R: what an IMU's orientation filter gives a policy,
    without the yaw, which a walking robot cannot observe absolutely.
    """
    rot = data.site_xmat[imu_site_id].reshape(3, 3)
    # R^T (0, 0, -1) is minus the third row of R: plain indexing, so the term also runs on
    # native MjData in numpy (sim-to-sim, export) without JAX.
    return -rot[2]


def heading_in_world(*, data: mjx.Data, imu_site_id: int) -> jax.Array:
    """Heading of the IMU's forward (x) axis on the ground plane as (cos yaw, sin yaw) (2,).

    The yaw that `gravity_in_imu` leaves out. A task that rewards motion along a world axis
    needs it: without it a policy cannot see that it has turned away from +x and steer back.
    On a robot it comes from the IMU's orientation estimate (or odometry), whose yaw drifts
    slowly. Plain arithmetic, so it also runs in numpy on native MjData.
    """
    rot = data.site_xmat[imu_site_id].reshape(3, 3)
    forward = rot[:2, 0]
    # +1e-8 keeps the norm away from 0 when the IMU points straight up or down (a fall).
    return forward / ((forward * forward).sum() + 1e-8) ** 0.5


def imu_linear_velocity(*, data: mjx.Data, linvel_slice: slice) -> jax.Array:
    """Linear velocity in the IMU frame (3,) m/s, from the velocimeter sensor."""
    return data.sensordata[linvel_slice]


def imu_angular_velocity(*, data: mjx.Data, gyro_slice: slice) -> jax.Array:
    """Angular velocity in the IMU frame (3,) rad/s, from the gyro sensor."""
    return data.sensordata[gyro_slice]


def foot_contacts(*, foot_contact: jax.Array) -> jax.Array:
    """1.0 per foot (left, right) touching the floor, else 0.0: (2,)."""
    return foot_contact.astype(jnp.float32)


def layout(terms: Sequence[Any], context: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """(term name, size) of each term on `context`, in order (shapes only: nothing is computed).

    `context` values may be arrays, `jax.ShapeDtypeStruct` pytrees or static values (ints, slices).
    """
    static = {k: v for k, v in context.items() if isinstance(v, (slice, int, float, str))}
    traced = {k: v for k, v in context.items() if k not in static}

    def size(fn: Any) -> int:
        return int(jax.eval_shape(lambda c: concat((fn,), {**c, **static}), traced).shape[0])

    return tuple((fn.__name__, size(fn)) for fn in terms)


# ----------------------------------------------------------------------------- command task terms


def velocity_command(*, command: jax.Array) -> jax.Array:
    """The velocity command (vx m/s, vy m/s, yaw rate rad/s) the policy is asked to follow: (3,)."""
    return command


def previous_action(*, last_action: jax.Array) -> jax.Array:
    """The policy's previous action (A,) in [-1, 1] (zeros at the start of an episode)."""
    return last_action


def gait_phase(*, data: mjx.Data, gait_frequency: float) -> jax.Array:
    """Gait clock (cos phi_l, cos phi_r, sin phi_l, sin phi_r) (4,), phi_l = 2 pi f t, phi_r = phi_l + pi.

    t is the simulation time `data.time` (0 at reset), so a robot's loop derives the same clock
    from its own control time. Runs in numpy on native MjData too.
    """
    t = data.time
    xp = np if isinstance(t, (float, np.floating, np.ndarray)) else jnp
    left = 2.0 * np.pi * gait_frequency * t
    phase = xp.stack([left, left + np.pi])
    return xp.concatenate([xp.cos(phase), xp.sin(phase)])
