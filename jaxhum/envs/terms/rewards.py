"""Reward and cost terms, one small pure function each, and their weighted sum.

Every term takes keyword-only arguments named after quantities a task computes in its step
(`com_before`, `ctrl`, `dt`, ...) and returns a scalar. A task declares which terms it uses
and their default weights; `weighted_sum` calls each term with the quantities it names,
skips zero-weight terms at trace time and reports every active term, already multiplied by
its weight, as `reward/<name>` so the logged terms add up to the reward.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp

RewardTerm = Callable[..., jax.Array]


def forward_velocity(*, com_before: jax.Array, com_after: jax.Array, dt: float) -> jax.Array:
    """x-velocity of the whole-body centre of mass over one control step.

    Args:
      com_before: (3,) centre of mass at the start of the step.
      com_after: (3,) centre of mass at the end of the step.
      dt: control step (s).
    Returns:
      () (com_after.x - com_before.x) / dt, in m/s.
    """
    chex.assert_shape([com_before, com_after], (3,))
    return (com_after[0] - com_before[0]) / dt


def alive() -> jax.Array:
    """1 on every step, terminating ones included (brax's `healthy_reward` with termination on)."""
    return jnp.ones((), jnp.float32)


def healthy(*, is_healthy: jax.Array) -> jax.Array:
    """1 while the robot is healthy, else 0 (for tasks that do not terminate when unhealthy)."""
    chex.assert_rank(is_healthy, 0)
    return is_healthy.astype(jnp.float32)


def ctrl_l2(*, ctrl: jax.Array) -> jax.Array:
    """Squared norm of the actuator controls, sum_i ctrl_i^2, for ctrl (nu,). Weight it negatively."""
    chex.assert_rank(ctrl, 1)
    return jnp.sum(jnp.square(ctrl))


def action_rate_l2(*, action: jax.Array, last_action: jax.Array) -> jax.Array:
    """Squared change of the policy action between steps, sum_i (a_i - a_prev_i)^2 (both (nu,))."""
    chex.assert_equal_shape([action, last_action])
    return jnp.sum(jnp.square(action - last_action))


def check_weights(
    terms: Mapping[str, RewardTerm], weights: Mapping[str, float], *, field: str = "reward_weights"
) -> None:
    """Raises ValueError naming `field` if `weights` names a term that is not in `terms`."""
    unknown = sorted(set(weights) - set(terms))
    if unknown:
        raise ValueError(f"{field}: unknown reward term(s) {unknown}; known terms: {sorted(terms)}")
    for name, w in weights.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool):
            raise ValueError(f"{field}.{name}: weight must be a number, got {w!r}")


def keyword_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The keyword-only argument names of `fn`: what a term (or a task function) asks for."""
    return tuple(
        name for name, p in inspect.signature(fn).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    )


def call_term(fn: Callable[..., jax.Array], context: Mapping[str, Any]) -> jax.Array:
    """Calls `fn` with the entries of `context` it names as keyword-only arguments."""
    names = keyword_names(fn)
    missing = [n for n in names if n not in context]
    if missing:
        raise ValueError(
            f"term {fn.__name__} needs {missing}, which the task does not provide; it provides {sorted(context)}"
        )
    return fn(**{n: context[n] for n in names})


def weighted_sum(
    terms: Mapping[str, RewardTerm], weights: Mapping[str, float], context: Mapping[str, Any]
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Returns (sum_k w_k * term_k(context), {'reward/<k>': w_k * term_k}) over non-zero weights.

    Terms with a zero (or absent) weight are never called, so they cost nothing in the trace.
    """
    total = jnp.zeros((), jnp.float32)
    metrics = {}
    for name, fn in terms.items():
        w = float(weights.get(name, 0.0))
        if w == 0.0:
            continue
        value = w * call_term(fn, context).astype(jnp.float32)
        chex.assert_rank(value, 0)
        metrics[f"reward/{name}"] = value
        total = total + value
    return total, metrics


# ----------------------------------------------------------------------------- robot terms


def torso_x_velocity(*, root_linvel: jax.Array) -> jax.Array:
    """World-frame x-velocity of the robot's root body (the pelvis), m/s, for root_linvel (3,)."""
    chex.assert_shape(root_linvel, (3,))
    return root_linvel[0]


def upright_bonus(*, torso_height: jax.Array, upright_height: float) -> jax.Array:
    """+1 while the torso (root) is above `upright_height` (m), -10 when at or below it."""
    chex.assert_rank(torso_height, 0)
    return jnp.where(torso_height > upright_height, 1.0, -10.0).astype(jnp.float32)


def action_l2(*, action: jax.Array) -> jax.Array:
    """Squared norm of the policy action, sum_i a_i^2 for a (A,) in [-1, 1]. Weight it negatively."""
    chex.assert_rank(action, 1)
    return jnp.sum(jnp.square(action))


def tilt(*, roll: jax.Array, pitch: jax.Array) -> jax.Array:
    """-(|roll| + |pitch|) of the torso, in radians: 0 when level, negative when tilted."""
    chex.assert_rank([roll, pitch], 0)
    return -(jnp.abs(roll) + jnp.abs(pitch))


# ----------------------------------------------------------------------------- command tracking terms
# Velocity-command tasks (joystick). The command is (vx, vy, yaw_rate): m/s in the robot's
# frame, rad/s about the vertical. Kernels and the air-time rule follow the field's usual
# choices (MuJoCo Playground's joystick tasks, Isaac Lab's velocity tasks).


def tracking_lin_vel(*, command: jax.Array, local_linvel: jax.Array, tracking_sigma: float) -> jax.Array:
    """exp(-|cmd_xy - v_xy|^2 / sigma) in (0, 1]: 1 when the planar velocity matches the command.

    Args:
      command: (3,) (vx, vy, yaw_rate).
      local_linvel: (3,) base linear velocity in the base frame (m/s).
      tracking_sigma: kernel width (m^2/s^2).
    """
    chex.assert_shape([command, local_linvel], (3,))
    err = jnp.sum(jnp.square(command[:2] - local_linvel[:2]))
    return jnp.exp(-err / tracking_sigma)


def tracking_ang_vel(*, command: jax.Array, angvel: jax.Array, tracking_sigma: float) -> jax.Array:
    """exp(-(cmd_yaw_rate - w_z)^2 / sigma) in (0, 1] for command (3,) and base angular velocity (3,)."""
    chex.assert_shape([command, angvel], (3,))
    return jnp.exp(-jnp.square(command[2] - angvel[2]) / tracking_sigma)


def lin_vel_z(*, local_linvel: jax.Array) -> jax.Array:
    """Squared vertical base velocity v_z^2 ((m/s)^2). Weight it negatively."""
    chex.assert_shape(local_linvel, (3,))
    return jnp.square(local_linvel[2])


def ang_vel_xy(*, angvel: jax.Array) -> jax.Array:
    """Squared roll and pitch rates w_x^2 + w_y^2 ((rad/s)^2). Weight it negatively."""
    chex.assert_shape(angvel, (3,))
    return jnp.sum(jnp.square(angvel[:2]))


def flat_orientation(*, gravity: jax.Array) -> jax.Array:
    """g_x^2 + g_y^2 of the unit gravity direction in the base frame (3,): 0 when level,
    sin^2 of the tilt otherwise. Weight it negatively."""
    chex.assert_shape(gravity, (3,))
    return jnp.sum(jnp.square(gravity[:2]))


def torques_l2(*, torque: jax.Array) -> jax.Array:
    """Squared actuator torques sum_i tau_i^2 (N^2 m^2) for torque (A,). Weight it negatively."""
    chex.assert_rank(torque, 1)
    return jnp.sum(jnp.square(torque))


def energy(*, torque: jax.Array, joint_vel: jax.Array) -> jax.Array:
    """Absolute mechanical power sum_i |tau_i * qdot_i| (W) for (A,) torques and joint velocities."""
    chex.assert_equal_shape([torque, joint_vel])
    return jnp.sum(jnp.abs(torque * joint_vel))


def feet_air_time(
    *,
    air_time: jax.Array,
    first_contact: jax.Array,
    command: jax.Array,
    air_time_threshold: float,
    air_time_max: float,
    moving_threshold: float,
) -> jax.Array:
    """Pays each foot's swing duration at touchdown: sum_f (clip(t_f, 0, max) - threshold) * touchdown_f,
    only while the planar-and-yaw command norm exceeds `moving_threshold` (standing earns nothing).

    Args:
      air_time: (2,) seconds each foot has been in the air, counted up to this touchdown.
      first_contact: (2,) 1.0 on the step a foot touches down, else 0.0.
      command: (3,) the current command.
      air_time_threshold: s; swings shorter than this cost, longer ones pay.
      air_time_max: s; longer swings pay no more than this.
      moving_threshold: command norm under which the robot is told to stand.
    """
    chex.assert_shape([air_time, first_contact], (2,))
    chex.assert_shape(command, (3,))
    paid = jnp.sum((jnp.clip(air_time, 0.0, air_time_max) - air_time_threshold) * first_contact)
    return paid * (jnp.linalg.norm(command) > moving_threshold)


def feet_slip(*, foot_contact: jax.Array, foot_vel_xy: jax.Array) -> jax.Array:
    """Squared planar speed of each foot on the ground: sum_f contact_f * |v_f,xy|^2.

    foot_contact (2,) in {0, 1}; foot_vel_xy (2, 2) world-frame planar foot velocities (m/s).
    Weight it negatively.
    """
    chex.assert_shape(foot_contact, (2,))
    chex.assert_shape(foot_vel_xy, (2, 2))
    return jnp.sum(foot_contact * jnp.sum(jnp.square(foot_vel_xy), axis=-1))


def feet_phase(*, foot_height: jax.Array, target_foot_height: jax.Array) -> jax.Array:
    """exp(-|z - z_target|^2 / 0.01) in (0, 1]: the feet follow the gait clock's swing heights.

    foot_height, target_foot_height: (2,) m above the foot's standing height. The 0.01 m^2 width
    means a 10 cm total miss pays exp(-1).
    """
    chex.assert_shape([foot_height, target_foot_height], (2,))
    return jnp.exp(-jnp.sum(jnp.square(foot_height - target_foot_height)) / 0.01)


def pose_deviation(*, joint_pos_error: jax.Array, pose_weights: jax.Array) -> jax.Array:
    """Weighted squared joint deviation from the home pose, sum_i w_i dq_i^2 for (A,) dq and w.
    Weight it negatively."""
    chex.assert_equal_shape([joint_pos_error, pose_weights])
    return jnp.sum(pose_weights * jnp.square(joint_pos_error))


def stand_still(*, joint_pos_error: jax.Array, command: jax.Array, moving_threshold: float) -> jax.Array:
    """sum_i |dq_i| (rad) while the command norm is at most `moving_threshold`, else 0: standing
    commands ask for the home pose. Weight it negatively."""
    chex.assert_rank(joint_pos_error, 1)
    chex.assert_shape(command, (3,))
    return jnp.sum(jnp.abs(joint_pos_error)) * (jnp.linalg.norm(command) <= moving_threshold)


def termination(*, fell: jax.Array) -> jax.Array:
    """1.0 on the step the robot falls (the episode terminates), else 0.0. Weight it negatively."""
    chex.assert_rank(fell, 0)
    return fell.astype(jnp.float32)
