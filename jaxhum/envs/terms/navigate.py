"""Terms of the navigate task (`jaxhum.envs.navigate`): goals, the command mapping, the pose in
the robot's frame, the success rule's figures and the reward terms.

Frames: the world is MuJoCo's (z up); the robot's frame for navigation is the pelvis position
on the floor with its yaw (heading) alone, so a goal seen "in the robot's frame" is
R(-yaw) (goal_xy - pelvis_xy) and its heading is goal_yaw - yaw wrapped to [-pi, pi).

  goals (`sample_goal`): distance and direction (relative to the robot's start heading) each
    uniform in a range; with probability `heading_share` the goal also asks for a heading,
    uniform in [-pi, pi).
  commands (`command_from_action`): a in [-1, 1]^3 -> (vx, vy, yaw rate) in the low-level
    joystick policy's command ranges; a = 0 is the command nearest zero (stand still).
  reward terms: progress toward the goal, distance kernel, heading kernel near the goal,
    reaching bonus, command smoothness (the fall termination is `rewards.termination`).

Every function is pure and reads jnp arrays; shapes are for one env.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

GOAL_SIZE = 3  # (x, y, yaw) in the world


def wrap_angle(angle: jax.Array) -> jax.Array:
    """`angle` (any shape, rad) wrapped to [-pi, pi)."""
    return jnp.mod(angle + jnp.pi, 2.0 * jnp.pi) - jnp.pi


def yaw_of(rot: jax.Array) -> jax.Array:
    """() the heading of a body with world rotation `rot` (3, 3): atan2(R[1, 0], R[0, 0]), the
    angle of its x axis projected on the floor, from the world's +x towards +y."""
    chex.assert_shape(rot, (3, 3))
    return jnp.arctan2(rot[1, 0], rot[0, 0])


def sample_goal(key: jax.Array, *, start_xy: jax.Array, start_yaw: jax.Array, distance_range: tuple[float, float],
                angle_range: tuple[float, float], heading_share: float) -> tuple[jax.Array, jax.Array]:
    """A goal for a robot at `start_xy` (2,) facing `start_yaw` (): (goal (3,) = (x, y, yaw) in
    the world, has_heading () float32 1.0 when the goal asks for its yaw).

    The goal lies at distance r ~ U(distance_range) in the direction start_yaw + theta,
    theta ~ U(angle_range); it asks for a heading with probability `heading_share`, then
    yaw ~ U[-pi, pi) (else its yaw entry is 0 and ignored). Pure: the same key gives the same goal.
    """
    chex.assert_shape(start_xy, (2,))
    key_r, key_angle, key_has, key_yaw = jax.random.split(key, 4)
    r = jax.random.uniform(key_r, minval=distance_range[0], maxval=distance_range[1])
    theta = start_yaw + jax.random.uniform(key_angle, minval=angle_range[0], maxval=angle_range[1])
    has_heading = (jax.random.uniform(key_has) < heading_share).astype(jnp.float32)
    yaw = jax.random.uniform(key_yaw, minval=-jnp.pi, maxval=jnp.pi) * has_heading
    xy = start_xy + r * jnp.stack([jnp.cos(theta), jnp.sin(theta)])
    return jnp.concatenate([xy, yaw[None]]).astype(jnp.float32), has_heading


def command_from_action(action: jax.Array, *, low: jax.Array, high: jax.Array) -> jax.Array:
    """(3,) the command for a high-level action (3,) in [-1, 1] (clipped), in the ranges
    [low, high] (3,) each: c = z + a (high - z) for a >= 0 and c = z + a (z - low) for a < 0,
    with z = clip(0, low, high), the command nearest standing still (0 when a range holds it).
    So a = 0 commands z and a = +-1 the ends of the range."""
    chex.assert_shape(action, (3,))
    a = jnp.clip(action, -1.0, 1.0)
    zero = jnp.clip(0.0, low, high)
    return jnp.where(a >= 0.0, zero + a * (high - zero), zero + a * (zero - low)).astype(jnp.float32)


def goal_in_robot_frame(goal: jax.Array, *, xy: jax.Array, yaw: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(position (2,), heading ()) of `goal` (3,) seen from a robot at `xy` (2,) with heading
    `yaw` (): R(-yaw) (goal_xy - xy), and wrap(goal_yaw - yaw) in [-pi, pi)."""
    chex.assert_shape(goal, (3,))
    d = goal[:2] - xy
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    position = jnp.stack([c * d[0] + s * d[1], -s * d[0] + c * d[1]])
    return position, wrap_angle(goal[2] - yaw)


def within_goal(*, distance: jax.Array, heading_error: jax.Array, has_heading: jax.Array, radius: float,
                heading_tolerance: float) -> jax.Array:
    """() bool: within `radius` (m) of the goal and, when it asks for a heading (`has_heading`
    1.0), within `heading_tolerance` (rad) of it."""
    heading_ok = (has_heading <= 0.0) | (jnp.abs(heading_error) < heading_tolerance)
    return (distance < radius) & heading_ok


def telescoped(now: jax.Array, before: jax.Array, steps: jax.Array) -> jax.Array:
    """() steps * now - (steps - 1) * before: a running figure (`before` after steps - 1 steps,
    `now` after `steps`) as a step metric whose mean over an episode is the figure after its
    last step (the sum over L steps telescopes to L times it), as reach reports its figures."""
    k = steps.astype(jnp.float32)
    return k * now - (k - 1.0) * before


# ----------------------------------------------------------------------------- reward terms


def progress(*, distance: jax.Array, prev_distance: jax.Array, period: float) -> jax.Array:
    """(prev_distance - distance) / period: the speed (m/s) at which the robot closed on the
    goal over the step (negative when it moved away)."""
    chex.assert_rank([distance, prev_distance], 0)
    return (prev_distance - distance) / period


def distance_kernel(*, distance: jax.Array, distance_sigma: float) -> jax.Array:
    """exp(-d^2 / sigma) in (0, 1]: 1 on the goal (sigma in m^2; d = sqrt(sigma) pays exp(-1))."""
    chex.assert_rank(distance, 0)
    return jnp.exp(-jnp.square(distance) / distance_sigma)


def heading_kernel(*, heading_error: jax.Array, has_heading: jax.Array, distance: jax.Array,
                   heading_radius: float, heading_sigma: float) -> jax.Array:
    """exp(-e^2 / sigma) while within `heading_radius` (m) of a goal that asks for a heading,
    else 0: turning to the goal's heading pays only near it (e rad, sigma rad^2)."""
    chex.assert_rank([heading_error, has_heading, distance], 0)
    near = (distance < heading_radius).astype(jnp.float32)
    return has_heading * near * jnp.exp(-jnp.square(heading_error) / heading_sigma)


def reaching_bonus(*, first_reached: jax.Array) -> jax.Array:
    """1.0 on the step the goal is first reached (`within_goal` without a fall), else 0.0."""
    chex.assert_rank(first_reached, 0)
    return first_reached.astype(jnp.float32)


def command_rate(*, action: jax.Array, last_action: jax.Array) -> jax.Array:
    """sum_i (a_i - a_prev_i)^2 of the high-level action (3,): a jerky command costs. Weight it negatively."""
    chex.assert_equal_shape([action, last_action])
    return jnp.sum(jnp.square(action - last_action))
