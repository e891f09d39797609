"""MJX readiness of a robot's compiled model: refusals (one line naming the element and the fix) and
the standing check (a warning).

Every check reads a native `mujoco.MjModel` (no JAX, no device): collision meshes and contact
pairs come from the candidate list MJX itself builds (`mjx._src.collision_driver.geom_pairs`),
so what is refused is exactly what would cost MJX a collision test in every step.
"""

from __future__ import annotations

import jax
import mujoco
import numpy as np
from mujoco import mjx
from mujoco.mjx._src import collision_driver

FILTER_HINT = "set contacts.filter = true in the spec to keep only the feet (and contacts.with_floor) colliding"
OVERWRITE_HINT = 'set actuators.on_mismatch = "overwrite" in the spec (the spec\'s gains then win)'


# Joint types that need limits (as ints: a pybind enum does not compare inside `in` with numpy ints).
LIMITED_JOINTS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


class NotReadyError(ValueError):
    """The robot's MJCF is not ready for MJX; the message (one line) names the element and the fix."""


def name_of(m: mujoco.MjModel, obj: mujoco.mjtObj, i: int) -> str:
    return mujoco.mj_id2name(m, obj, int(i)) or ""


def geom_label(m: mujoco.MjModel, g: int) -> str:
    """"geom 'left_sole' (body 'left_foot')", or "geom #12 (body ...)" for an unnamed one."""
    name = name_of(m, mujoco.mjtObj.mjOBJ_GEOM, g)
    body = name_of(m, mujoco.mjtObj.mjOBJ_BODY, m.geom_bodyid[g])
    return f"geom {name!r} (body {body!r})" if name else f"geom #{g} (body {body!r})"


def contact_pairs(m: mujoco.MjModel) -> list[tuple[int, int]]:
    """(geom1, geom2) of every contact candidate MJX tests each step: filtered pairs and `<pair>`s."""
    return [(int(g1), int(g2)) for g1, g2, _ in collision_driver.geom_pairs(m)]


def check_collision_meshes(m: mujoco.MjModel, where: str) -> None:
    """Refuses mesh geoms that take part in any contact candidate."""
    pairs = contact_pairs(m)
    meshes = sorted({g for pair in pairs for g in pair if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH})
    if meshes:
        names = ", ".join(geom_label(m, g) for g in meshes[:4]) + (f" and {len(meshes) - 4} more" if len(meshes) > 4
                                                                  else "")
        raise NotReadyError(
            f"{where}: {len(meshes)} collision mesh geom(s), MJX's cost grows with each: {names}; give them "
            f"contype=0 conaffinity=0 and collide with primitives (spheres, capsules, boxes), or {FILTER_HINT}")


def check_contact_pairs(m: mujoco.MjModel, allowed: frozenset[int], floor: int, where: str) -> None:
    """Refuses every contact candidate other than an `allowed` geom against the `floor` geom."""
    extra = [(g1, g2) for g1, g2 in contact_pairs(m)
             if not ((g1 == floor and g2 in allowed) or (g2 == floor and g1 in allowed))]
    if extra:
        g1, g2 = extra[0]
        raise NotReadyError(
            f"{where}: {len(extra)} contact pair(s) beyond the feet and the floor, the first "
            f"{geom_label(m, g1)} - {geom_label(m, g2)}: filter them in the MJCF (contype/conaffinity, <exclude>, "
            f"or explicit <pair>s only), name the geoms that may touch the floor in contacts.with_floor, "
            f"or {FILTER_HINT}")


def check_feet_touch_floor(m: mujoco.MjModel, feet: tuple[int, ...], floor: int, where: str) -> None:
    """Refuses a foot geom that has no contact candidate with the floor (it would never register contact)."""
    paired = {g for pair in contact_pairs(m) if floor in pair for g in pair}
    for g in feet:
        if g not in paired:
            raise NotReadyError(
                f"{where}: foot {geom_label(m, g)} cannot touch the floor {geom_label(m, floor)} (contype/conaffinity "
                f"share no bit, or an <exclude> filters it): give it contype=1 and the floor conaffinity=1, or "
                f"{FILTER_HINT}")


def check_joint_limits(m: mujoco.MjModel, where: str) -> None:
    """Refuses hinge and slide joints without limits."""
    for j in range(m.njnt):
        if int(m.jnt_type[j]) in LIMITED_JOINTS and not m.jnt_limited[j]:
            name = name_of(m, mujoco.mjtObj.mjOBJ_JOINT, j) or f"#{j}"
            raise NotReadyError(f"{where}: joint {name!r} has no limits: give it range=\"lower upper\" in the MJCF "
                                f"(with limited=\"true\", or <compiler autolimits=\"true\"/>)")


def joint_drivers(m: mujoco.MjModel, joint: str) -> list[int]:
    """Ids of the actuators that drive `joint` directly."""
    jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, joint)
    return [a for a in range(m.nu) if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
            and m.actuator_trnid[a, 0] == jid]


def check_mjx(m: mujoco.MjModel, where: str) -> None:
    """Refuses a model MJX's JAX implementation cannot take (an unsupported feature or value)."""
    try:
        mjx.put_model(m, impl="jax", device=jax.local_devices()[0])
    except Exception as exc:  # MJX refuses a feature it lacks with one of several exception types
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotReadyError(f"{where}: MJX cannot use this model: {text}: remove or replace that feature in "
                            f"the MJCF") from exc


def actuator_problem(m: mujoco.MjModel, joint: str, expected: dict[str, float]) -> str:
    """Why the actuation of `joint` differs from `expected` (kp, kd, torque_limit, armature); "" if it does not.

    The expected actuator is one position actuator named after the joint: ctrl is the target,
    force = kp (ctrl - q) - kd qdot, gear 1, force-limited to +-torque_limit.
    """
    jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, joint)
    drivers = joint_drivers(m, joint)
    if not drivers:
        return "has no actuator (a <position> actuator is expected)"
    names = [name_of(m, mujoco.mjtObj.mjOBJ_ACTUATOR, a) or f"#{a}" for a in drivers]
    if len(drivers) > 1:
        return f"is driven by {len(drivers)} actuators {names}; keep one"
    a = drivers[0]
    kp, kd, limit = expected["kp"], expected["kd"], expected["torque_limit"]
    is_position = (m.actuator_gaintype[a] == mujoco.mjtGain.mjGAIN_FIXED
                   and m.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_AFFINE
                   and m.actuator_dyntype[a] == mujoco.mjtDyn.mjDYN_NONE)
    if not is_position:
        return f"is driven by actuator {names[0]!r}, which is not a <position> actuator"
    checks = (
        ("kp", (m.actuator_gainprm[a, 0], -m.actuator_biasprm[a, 1]), kp),
        ("kv (kd)", (-m.actuator_biasprm[a, 2],), kd),
        ("gear", (m.actuator_gear[a, 0],), 1.0),
        ("forcerange (torque_limit)", (-m.actuator_forcerange[a, 0], m.actuator_forcerange[a, 1]), limit),
        ("armature", (m.dof_armature[m.jnt_dofadr[jid]],), expected["armature"]),
    )
    for field, found, want in checks:
        if not np.allclose(found, want, rtol=1e-9, atol=1e-12):
            return f"has MJCF {field} {tuple(round(float(v), 9) for v in found)}, the spec says {want}"
    if not m.actuator_forcelimited[a]:
        return f"has actuator {names[0]!r} without forcerange (the spec's torque_limit is {limit})"
    if names[0] != joint:
        return f"is driven by actuator {names[0]!r}; it must be named {joint!r}"
    return ""


def home_drop(m: mujoco.MjModel, key: int, root_qpos_adr: int, seconds: float = 2.0) -> float:
    """How far (m) the root body sinks below its home height over `seconds` of native MuJoCo,
    holding the home keyframe's ctrl (zero action)."""
    data = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, data, key)
    z0 = lowest = float(data.qpos[root_qpos_adr + 2])
    for _ in range(int(round(seconds / m.opt.timestep))):
        mujoco.mj_step(m, data)
        lowest = min(lowest, float(data.qpos[root_qpos_adr + 2]))
    return z0 - lowest if np.isfinite(lowest) else float("inf")
