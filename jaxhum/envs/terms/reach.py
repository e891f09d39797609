"""Terms of the reach task (`jaxhum.envs.reach`): the hand point, targets, the success rule, rewards.

K is the number of hands the task drives (1 for 'left' or 'right', 2 for 'both', left first).
Everything is expressed in the pelvis frame (the root body's frame): targets are drawn there and
the hand point is the robot's forward kinematics from the pelvis (pelvis -> waist -> arm), so a
robot computes the same quantities from its joint encoders alone.

  hand point (`hand_points`): a body's frame (the forearm) plus an offset in that frame (the hand).
  targets (`sample_targets`): per hand, uniform in a box, or in a sphere shell about the shoulder
    (radius, azimuth and elevation each uniform in a range: not uniform in volume).
  success rule (`advance_timers`): a target is reached when the hand comes within the tolerance
    at most `reach_steps` control steps after the target appeared, and succeeds when it then stays
    within it for `hold_steps` consecutive steps. Time to reach: the age of the first step within
    the tolerance, capped at `reach_steps` (a target never reached in time counts the whole window).
  per-episode figures (`Tally`, `telescoped`): every judged target adds to a running tally; the
    step metric `telescoped` makes the per-episode mean of a step metric, what every evaluator of
    the house reports, equal the tally's final figure.
  reward terms: distance kernels, hold bonus, planar base velocity; the task reuses
    `jaxhum.envs.terms.rewards` for pose, orientation, smoothness, torques and termination.

Every function is pure; terms read numpy or jnp arrays alike where the docstring says so (the
observation terms run on native `mujoco.MjData` for export and sim-to-sim).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

WORKSPACES = ("box", "shell")
NEVER = np.iinfo(np.int32).max  # `ReachTimers.first_in` of a target the hand has not come within yet


# ----------------------------------------------------------------------------- the hand point


def hand_points(*, data: Any, hand_body_ids: np.ndarray, hand_offsets: np.ndarray, root_body_id: int) -> Any:
    """(K, 3) the hand points in the pelvis frame: p = R_root^T (x_b + R_b o - x_root).

    Args:
      data: MJX `Data` or native `mujoco.MjData` (positions computed; `xmat` is (nbody, 3, 3)
        in MJX, (nbody, 9) natively: both are read through a reshape).
      hand_body_ids: (K,) int, the body of each hand (e.g. the forearm).
      hand_offsets: (K, 3) the hand point in that body's frame (m).
      root_body_id: the pelvis.
    Plain indexing and arithmetic: numpy in, numpy out.
    """
    rot = data.xmat[hand_body_ids].reshape(-1, 3, 3)
    world = data.xpos[hand_body_ids] + (rot * hand_offsets[:, None, :]).sum(-1)
    root_rot = data.xmat[root_body_id].reshape(3, 3)
    rel = world - data.xpos[root_body_id]
    return (rel[:, :, None] * root_rot[None]).sum(1)


def hand_errors(*, data: Any, target: Any, hand_body_ids: np.ndarray, hand_offsets: np.ndarray,
                root_body_id: int) -> Any:
    """(K, 3) target - hand point, pelvis frame (m), for target (K, 3). numpy or jnp."""
    return target - hand_points(data=data, hand_body_ids=hand_body_ids, hand_offsets=hand_offsets,
                                root_body_id=root_body_id)


# ----------------------------------------------------------------------------- observation terms


def reach_target(*, target: Any) -> Any:
    """(3K,) the target(s) in the pelvis frame (m), hand after hand: what the robot is told to reach."""
    return target.reshape(-1)


def hand_to_target(*, data: Any, target: Any, hand_body_ids: np.ndarray, hand_offsets: np.ndarray,
                   root_body_id: int) -> Any:
    """(3K,) target - hand point in the pelvis frame (m): forward kinematics of the arm from the
    joint encoders, as a robot computes it (`hand_errors`). Runs in numpy on native data."""
    return hand_errors(data=data, target=target, hand_body_ids=hand_body_ids, hand_offsets=hand_offsets,
                       root_body_id=root_body_id).reshape(-1)


# ----------------------------------------------------------------------------- targets


class Workspace(NamedTuple):
    """Where each of K hands' targets are drawn (pelvis frame); `kind` picks the fields read.

    box: uniform in [low, high] per axis. shell: centre + r (cos el cos az, cos el sin az, sin el),
    r, az (rad, from +x towards +y) and el (rad, from the horizontal, up positive) each uniform.
    """

    low: np.ndarray  # (K, 3) box corner (m)
    high: np.ndarray  # (K, 3) opposite corner (m)
    center: np.ndarray  # (K, 3) shell centre (m), e.g. the shoulder
    radius: np.ndarray  # (K, 2) shell radius range (m)
    azimuth: np.ndarray  # (K, 2) rad
    elevation: np.ndarray  # (K, 2) rad


def shell_point(center: Any, radius: Any, azimuth: Any, elevation: Any) -> Any:
    """(3,) center + radius * (cos el cos az, cos el sin az, sin el), for center (3,), () angles."""
    direction = jnp.stack([jnp.cos(elevation) * jnp.cos(azimuth), jnp.cos(elevation) * jnp.sin(azimuth),
                           jnp.sin(elevation)])
    return center + radius * direction


def sample_target(key: jax.Array, low: Any, high: Any, center: Any, radius: Any, azimuth: Any, elevation: Any,
                  kind: str) -> jax.Array:
    """(3,) one hand's target: uniform in the box (low, high: (3,)), or in the shell (center (3,),
    radius, azimuth, elevation: (2,) ranges) with r, az, el each uniform. Pure in `key`."""
    if kind == "box":
        return jax.random.uniform(key, (3,), minval=low, maxval=high)
    u = jax.random.uniform(key, (3,))
    lerp = lambda rng, t: rng[0] + t * (rng[1] - rng[0])  # noqa: E731
    return shell_point(center, lerp(radius, u[0]), lerp(azimuth, u[1]), lerp(elevation, u[2]))


def sample_targets(key: jax.Array, workspace: Workspace, kind: str) -> jax.Array:
    """(K, 3) float32 one target per hand, each from its own split of `key` (`sample_target`)."""
    if kind not in WORKSPACES:
        raise ValueError(f"workspace: must be one of {', '.join(WORKSPACES)}, got {kind!r}")
    k = workspace.low.shape[0]
    keys = jax.random.split(key, k)
    parts = [jnp.asarray(np.asarray(f, np.float32)) for f in workspace]
    out = jax.vmap(lambda kk, *w: sample_target(kk, *w, kind=kind))(keys, *parts)
    chex.assert_shape(out, (k, 3))
    return out.astype(jnp.float32)


def workspace_centre(workspace: Workspace, kind: str) -> np.ndarray:
    """(K, 3) float32 the middle of each hand's workspace (box centre; shell at mid radius and angles)."""
    w = [np.asarray(f, np.float64) for f in workspace]
    if kind == "box":
        return ((w[0] + w[1]) / 2).astype(np.float32)
    mid = [x.mean(axis=1) for x in w[3:]]
    direction = np.stack([np.cos(mid[2]) * np.cos(mid[1]), np.cos(mid[2]) * np.sin(mid[1]), np.sin(mid[2])], -1)
    return (w[2] + mid[0][:, None] * direction).astype(np.float32)


def next_target(info: dict[str, Any], workspace: Workspace, kind: str, every: int) -> dict[str, Any]:
    """`info` one control step later: `resample_in` ticks and, when it reaches 0, new targets are
    drawn from a split of the carried key (`info['key']`, raw uint32 key data) and the countdown
    restarts at `every`; `info['resampled']` () bool says whether they were. `every == 0` holds
    the targets for the whole episode. Physics-free, so a schedule replays it from a reset's info."""
    if every == 0:
        return {**info, "resampled": jnp.zeros((), bool)}
    key, sub = jax.random.split(info["key"])
    left = info["resample_in"] - 1
    due = left <= 0
    return {
        **info,
        "key": jnp.where(due, key, info["key"]),
        "target": jnp.where(due, sample_targets(sub, workspace, kind), info["target"]),
        "resample_in": jnp.where(due, every, left).astype(jnp.int32),
        "resampled": due,
    }


# ----------------------------------------------------------------------------- the success rule


class ReachTimers(NamedTuple):
    """How the current target(s) have gone so far (one env; K hands)."""

    age: jax.Array  # () int32, control steps taken since the target appeared
    run: jax.Array  # (K,) int32, consecutive steps, up to this one, with the hand within the tolerance
    first_in: jax.Array  # (K,) int32, age of the first step within the tolerance (NEVER: none yet)
    success: jax.Array  # (K,) bool, reached within the window and held


def new_timers(k: int) -> ReachTimers:
    """The timers of freshly shown targets for K hands."""
    return ReachTimers(age=jnp.zeros((), jnp.int32), run=jnp.zeros((k,), jnp.int32),
                       first_in=jnp.full((k,), NEVER, jnp.int32), success=jnp.zeros((k,), bool))


def advance_timers(timers: ReachTimers, *, within: jax.Array, reach_steps: int, hold_steps: int) -> ReachTimers:
    """The timers after one more step, on which each hand was `within` (K,) bool of its target.

    Success: a run of `hold_steps` consecutive steps within the tolerance whose first step came
    at most `reach_steps` steps after the target appeared (age <= reach_steps); once set, it stays.
    """
    chex.assert_rank(within, 1)
    age = timers.age + 1
    run = jnp.where(within, timers.run + 1, 0).astype(jnp.int32)
    first_in = jnp.where(within & (timers.first_in == NEVER), age, timers.first_in).astype(jnp.int32)
    entry = age - run + 1  # the age of the first step of the current run
    held = within & (run >= hold_steps) & (entry <= reach_steps)
    return ReachTimers(age=age, run=run, first_in=first_in, success=timers.success | held)


def reset_timers(timers: ReachTimers, resampled: jax.Array) -> ReachTimers:
    """`timers` restarted (`new_timers`) where `resampled` (() bool): new targets were drawn."""
    fresh = new_timers(timers.run.shape[0])
    return jax.tree.map(lambda a, b: jnp.where(resampled, a, b), fresh, timers)


def time_to_reach(timers: ReachTimers, *, reach_steps: int, dt: float) -> jax.Array:
    """(K,) s from the target's appearance to the hand's first step within the tolerance, capped at
    the window `reach_steps * dt` (a target not reached in time counts the whole window)."""
    return jnp.minimum(timers.first_in, reach_steps).astype(jnp.float32) * dt


# ----------------------------------------------------------------------------- per-episode figures


class Tally(NamedTuple):
    """Running sums over the judged targets of one episode (all () float32)."""

    judged: jax.Array  # targets judged
    succeeded: jax.Array  # of which succeeded
    final_distance: jax.Array  # sum of their hand distances on their last step (m)
    time_to_reach: jax.Array  # sum of their `time_to_reach` (s)


def new_tally() -> Tally:
    """An episode's empty tally."""
    return Tally(*(jnp.zeros((), jnp.float32) for _ in Tally._fields))


def add_to_tally(tally: Tally, timers: ReachTimers, *, distance: jax.Array, judge: jax.Array, reach_steps: int,
                 dt: float) -> Tally:
    """`tally` with the K targets of `timers` added when `judge` (() bool); distance (K,) their
    hand distances on this, their last, step."""
    chex.assert_rank(judge, 0)
    w = judge.astype(jnp.float32)
    return Tally(
        judged=tally.judged + w * distance.shape[0],
        succeeded=tally.succeeded + w * jnp.sum(timers.success.astype(jnp.float32)),
        final_distance=tally.final_distance + w * jnp.sum(distance),
        time_to_reach=tally.time_to_reach + w * jnp.sum(time_to_reach(timers, reach_steps=reach_steps, dt=dt)),
    )


def figures(tally: Tally) -> dict[str, jax.Array]:
    """The episode's figures so far, each () (0 before any target is judged): `reach_missed` the
    share of judged targets not reached and held, `reach_final_distance` (m), `reach_time` (s) means."""
    n = jnp.maximum(tally.judged, 1.0)
    return {"reach_missed": (tally.judged - tally.succeeded) / n,
            "reach_final_distance": tally.final_distance / n,
            "reach_time": tally.time_to_reach / n}


def telescoped(now: jax.Array, before: jax.Array, steps: jax.Array) -> jax.Array:
    """() the step metric steps * now - (steps - 1) * before, for a running figure that was
    `before` after steps - 1 steps and is `now` after `steps`: summed over an episode's L steps it
    is L times the figure after the last, so its per-episode mean is that final figure."""
    k = steps.astype(jnp.float32)
    return k * now - (k - 1.0) * before


# ----------------------------------------------------------------------------- reward terms


def distance_kernel(*, hand_distance: jax.Array, distance_sigma: float) -> jax.Array:
    """mean_k exp(-d_k^2 / sigma) in (0, 1]: 1 with every hand on its target.

    hand_distance: (K,) |target - hand| (m); distance_sigma: m^2 (d = sqrt(sigma) pays exp(-1)).
    """
    chex.assert_rank(hand_distance, 1)
    return jnp.mean(jnp.exp(-jnp.square(hand_distance) / distance_sigma))


def fine_distance_kernel(*, hand_distance: jax.Array, fine_distance_sigma: float) -> jax.Array:
    """`distance_kernel` with the narrow width `fine_distance_sigma` (m^2): pays for the last centimetres."""
    return distance_kernel(hand_distance=hand_distance, distance_sigma=fine_distance_sigma)


def hold_bonus(*, hand_distance: jax.Array, reach_tolerance: float) -> jax.Array:
    """Share of hands within `reach_tolerance` (m) of their target, mean_k [d_k < tol], for (K,) d."""
    chex.assert_rank(hand_distance, 1)
    return jnp.mean((hand_distance < reach_tolerance).astype(jnp.float32))


def base_velocity_xy(*, local_linvel: jax.Array) -> jax.Array:
    """v_x^2 + v_y^2 of the pelvis in its own frame ((m/s)^2), for (3,): standing in place. Weight it negatively."""
    chex.assert_shape(local_linvel, (3,))
    return jnp.sum(jnp.square(local_linvel[:2]))
