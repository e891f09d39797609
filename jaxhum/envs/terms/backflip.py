"""Terms of the backflip task (`jaxhum.envs.backflip`): rotation tracking, the flip's phases, rewards.

  pitch angle (`pitch_angle`): the pelvis's forward tilt about its own lateral axis, from its
    world rotation: phi = atan2(z_b . f, z_b . e_z) with f = (y_b x e_z) / |y_b x e_z|, the
    horizontal forward direction of the pelvis (0 upright, +pi/2 lying face down, -pi/2 on its
    back). It needs no heading: a robot that yaws before it flips still measures its flip.
  accumulated rotation (`accumulate_rotation`): the backward rotation since the episode started,
    unwrapped step by step: theta += -wrap(phi_t - phi_{t-1}); a full backflip is 2 pi. A control
    step turns the pelvis far less than pi (12 rad/s x 20 ms = 0.24 rad), so the unwrap is exact.
  phases (`advance_flip`): ground (before take-off) -> flight (both feet off the floor for
    `takeoff_steps` steps in a row) -> landed (the first foot contact after a flight) -> standing
    (consecutive steps on both feet, upright within `stand_tilt`, no other body part on the floor).
  success: a rotation of at least `success_rotation` (330 degrees) and a landing followed by
    `stand_steps` (1 s) of standing.
  per-episode figures (`FlipRecord`, `figures`): rotation, landing tilt, peak pelvis height, peak
    joint torque over its limit, and success, written as telescoped step metrics
    (`jaxhum.envs.terms.reach.telescoped`) so that an episode's mean is its figure.
  reward terms: one small pure function each (`height_gain`, `rotation_progress`, `landing_bonus`,
    `upright_after_landing`, `pose_after_landing`, `still_after_landing`, `late_takeoff`,
    `body_contact`), gated by the phase they pay in.

Every function is pure and works on one env (vmap at the call site); `pitch_angle` and `tilt_angle`
also run in numpy on native MuJoCo data.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

TWO_PI = 2.0 * np.pi


def _xp(x: Any) -> Any:
    return np if isinstance(x, np.ndarray) else jnp


# ----------------------------------------------------------------------------- orientation


def pitch_angle(rot: Any) -> Any:
    """() the forward pitch phi (rad, in (-pi, pi]) of a body with world rotation `rot` (3, 3)
    (columns: the body's axes in the world): atan2(z_b . f, z_b . e_z), f the unit horizontal
    forward direction y_b x e_z = (y_b,y, -y_b,x, 0). 0 upright, +pi/2 tilted onto its front,
    -pi/2 onto its back, pi upside down. numpy in, numpy out."""
    xp = _xp(rot)
    y_b, z_b = rot[:, 1], rot[:, 2]
    f = xp.stack([y_b[1], -y_b[0]])
    f = f / (xp.sqrt(xp.sum(f * f)) + 1e-9)  # y_b vertical (lying on its side): f is arbitrary
    return xp.arctan2(z_b[0] * f[0] + z_b[1] * f[1], z_b[2])


def tilt_angle(rot: Any) -> Any:
    """() the angle (rad, [0, pi]) between the body's z axis and the world's, for `rot` (3, 3)."""
    xp = _xp(rot)
    return xp.arccos(xp.clip(rot[2, 2], -1.0, 1.0))


def wrap(angle: jax.Array) -> jax.Array:
    """`angle` wrapped into [-pi, pi)."""
    return jnp.mod(angle + jnp.pi, TWO_PI) - jnp.pi


def accumulate_rotation(rotation: jax.Array, phi_before: jax.Array, phi_now: jax.Array) -> jax.Array:
    """() the backward rotation (rad) after a step that took the pitch from `phi_before` to `phi_now`:
    rotation - wrap(phi_now - phi_before). Backward (head towards -x for a robot facing +x) is positive."""
    chex.assert_rank([rotation, phi_before, phi_now], 0)
    return rotation - wrap(phi_now - phi_before)


# ----------------------------------------------------------------------------- the flip's phases


class FlipState(NamedTuple):
    """How one episode's flip has gone so far (all ())."""

    steps: jax.Array  # int32, control steps taken in the episode
    phi: jax.Array  # float32, pitch angle after the last step (rad)
    rotation: jax.Array  # float32, accumulated backward rotation (rad)
    air: jax.Array  # int32, consecutive steps, up to this one, with neither foot on the floor
    flown: jax.Array  # bool, the robot has taken off (air reached `takeoff_steps`)
    landed: jax.Array  # bool, a foot touched the floor after the take-off
    landing_tilt: jax.Array  # float32, pelvis tilt on the landing step (rad; 0 before)
    stand: jax.Array  # int32, consecutive standing steps since the landing
    success: jax.Array  # bool, rotated enough and stood for `stand_steps` after landing
    peak_height: jax.Array  # float32, highest pelvis height so far (m)
    peak_torque: jax.Array  # float32, largest |torque| / limit of any joint so far


def new_flip(phi: jax.Array, height: jax.Array) -> FlipState:
    """The state of an episode that starts at pitch `phi` (rad) and pelvis height `height` (m)."""
    zero_i, zero_f, no = jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32), jnp.zeros((), bool)
    return FlipState(steps=zero_i, phi=jnp.asarray(phi, jnp.float32), rotation=zero_f, air=zero_i, flown=no,
                     landed=no, landing_tilt=zero_f, stand=zero_i, success=no,
                     peak_height=jnp.asarray(height, jnp.float32), peak_torque=zero_f)


class Rules(NamedTuple):
    """The flip's thresholds (host numbers, from the task's config)."""

    takeoff_steps: int  # steps with both feet off the floor that make a take-off
    stand_steps: int  # standing steps after the landing that make a success
    stand_tilt: float  # rad, the most pelvis tilt that counts as standing
    success_rotation: float  # rad, the least rotation that counts as a full flip


def advance_flip(flip: FlipState, rules: Rules, *, phi: jax.Array, tilt: jax.Array, height: jax.Array,
                 foot_contact: jax.Array, body_contact: jax.Array, torque_fraction: jax.Array) -> FlipState:
    """The flip after one more control step that ended at pitch `phi`, tilt `tilt` (rad), pelvis
    `height` (m), with `foot_contact` (2,) in {0, 1}, `body_contact` () bool (a body part other
    than the soles on the floor) and `torque_fraction` (A,) |torque| / limit per joint."""
    chex.assert_shape(foot_contact, (2,))
    chex.assert_rank(torque_fraction, 1)
    any_foot = jnp.any(foot_contact > 0)
    both_feet = jnp.all(foot_contact > 0)
    air = jnp.where(any_foot, 0, flip.air + 1).astype(jnp.int32)
    flown = flip.flown | (air >= rules.takeoff_steps)
    touchdown = flip.flown & ~flip.landed & any_foot
    landed = flip.landed | touchdown
    standing = landed & both_feet & (tilt <= rules.stand_tilt) & ~body_contact
    stand = jnp.where(standing, flip.stand + 1, 0).astype(jnp.int32)
    rotation = accumulate_rotation(flip.rotation, flip.phi, phi)
    success = flip.success | ((stand >= rules.stand_steps) & (rotation >= rules.success_rotation))
    return FlipState(
        steps=flip.steps + 1, phi=jnp.asarray(phi, jnp.float32), rotation=rotation.astype(jnp.float32), air=air,
        flown=flown, landed=landed, landing_tilt=jnp.where(touchdown, tilt, flip.landing_tilt).astype(jnp.float32),
        stand=stand, success=success, peak_height=jnp.maximum(flip.peak_height, height).astype(jnp.float32),
        peak_torque=jnp.maximum(flip.peak_torque, jnp.max(torque_fraction)).astype(jnp.float32),
    )


NEVER_LANDED_TILT = float(np.pi)  # rad: the landing tilt an episode that never landed reports


def figures(flip: FlipState) -> dict[str, jax.Array]:
    """The episode's figures so far, each (): `flip_missed` 0 once it succeeded, else 1;
    `flip_rotation_deg`; `flip_landing_tilt_deg` (180 until it lands); `flip_peak_height` (m);
    `flip_peak_torque` (|torque| / limit, the largest of any joint)."""
    tilt = jnp.where(flip.landed, flip.landing_tilt, NEVER_LANDED_TILT)
    return {"flip_missed": 1.0 - flip.success.astype(jnp.float32),
            "flip_rotation_deg": jnp.degrees(flip.rotation),
            "flip_landing_tilt_deg": jnp.degrees(tilt),
            "flip_peak_height": flip.peak_height,
            "flip_peak_torque": flip.peak_torque}


# ----------------------------------------------------------------------------- observation terms


def time_since_start(*, data: Any, episode_seconds: float) -> Any:
    """(1,) the episode's clock t / episode_seconds (t = `data.time`, 0 at reset): the phase the
    policy times its crouch, take-off and landing by. numpy on native MjData."""
    t = data.time
    xp = np if isinstance(t, (float, np.floating, np.ndarray)) else jnp
    return xp.reshape(xp.asarray(t, xp.float32) / episode_seconds, (1,))


# ----------------------------------------------------------------------------- reward terms


def height_gain(*, height: jax.Array, standing_height: float, flip_done: jax.Array) -> jax.Array:
    """max(0, z - z_stand) (m) of the pelvis until the rotation is done (`flip_done`, () bool): pays the jump."""
    chex.assert_rank([height, flip_done], 0)
    return jnp.maximum(height - standing_height, 0.0) * (~flip_done)


def rotation_progress(*, rotation: jax.Array, rotation_before: jax.Array, airborne: jax.Array,
                      dt: float) -> jax.Array:
    """(min(theta, 2 pi) - min(theta_prev, 2 pi)) / dt (rad/s), clipped at 0, while `airborne`
    (() bool, neither foot down): the backward pitch rate in flight, up to one full turn."""
    chex.assert_rank([rotation, rotation_before, airborne], 0)
    gain = jnp.minimum(rotation, TWO_PI) - jnp.minimum(rotation_before, TWO_PI)
    return jnp.maximum(gain, 0.0) / dt * airborne


def landing_bonus(*, touchdown: jax.Array, rotation: jax.Array, tilt: jax.Array, success_rotation: float,
                  tilt_sigma: float) -> jax.Array:
    """exp(-tilt^2 / sigma) on the landing step (`touchdown`, () bool) of a flip that rotated at
    least `success_rotation` (rad), else 0: a landing on the feet, upright."""
    chex.assert_rank([touchdown, rotation, tilt], 0)
    return touchdown * (rotation >= success_rotation) * jnp.exp(-jnp.square(tilt) / tilt_sigma)


def upright_after_landing(*, after_flip: jax.Array, tilt: jax.Array, tilt_sigma: float) -> jax.Array:
    """exp(-tilt^2 / sigma) on every step after a landing from a full rotation (`after_flip`), else 0."""
    chex.assert_rank([after_flip, tilt], 0)
    return after_flip * jnp.exp(-jnp.square(tilt) / tilt_sigma)


def pose_after_landing(*, after_flip: jax.Array, joint_pos_error: jax.Array, pose_sigma: float) -> jax.Array:
    """exp(-|q - q_home|^2 / sigma) after a landing from a full rotation, else 0: back to the home pose."""
    chex.assert_rank(after_flip, 0)
    chex.assert_rank(joint_pos_error, 1)
    return after_flip * jnp.exp(-jnp.sum(jnp.square(joint_pos_error)) / pose_sigma)


def still_after_landing(*, after_flip: jax.Array, root_linvel: jax.Array) -> jax.Array:
    """|v|^2 ((m/s)^2) of the pelvis after a landing from a full rotation, else 0. Weight it negatively."""
    chex.assert_rank(after_flip, 0)
    chex.assert_shape(root_linvel, (3,))
    return after_flip * jnp.sum(jnp.square(root_linvel))


def late_takeoff(*, time: jax.Array, takeoff_seconds: float, flown: jax.Array) -> jax.Array:
    """1 on every step past `takeoff_seconds` (s since the start) without a take-off, else 0. Weight it negatively."""
    chex.assert_rank([time, flown], 0)
    return ((time > takeoff_seconds) & ~flown).astype(jnp.float32)


def body_contact(*, touching: jax.Array) -> jax.Array:
    """1 while a body part other than the soles (knee, hand, pelvis, torso, head) is on the floor. Negative weight."""
    chex.assert_rank(touching, 0)
    return touching.astype(jnp.float32)
