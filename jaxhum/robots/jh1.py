"""jh1: jaxhum's own G1-class humanoid (1.32 m, 34.9 kg, 21 actuated joints).

The MJCF (`assets/jh1.xml`) is written for this project from primitives. Its figures, and where
they come from:

- Height 1.32 m, mass 34.9 kg: Unitree G1 public spec sheet (height 1320 mm, about 35 kg).
- Thigh 0.30 m, shank 0.30 m: G1 spec sheet (thigh + calf 0.6 m).
- Joint ranges (rad): G1's public URDF joint limits: hip pitch -2.5307..2.8798, hip roll
  -0.5236..2.9671 (left; mirrored right), hip yaw +-2.7576, knee -0.087267..2.8798, ankle pitch
  -0.87267..0.5236, ankle roll +-0.2618, waist yaw +-2.618, shoulder pitch -3.0892..2.6704,
  shoulder roll -1.5882..2.2515 (left; mirrored right), shoulder yaw +-2.618. Elbow -0.2..2.0944:
  G1's flexion limit; our zero is the straight arm, so extension stops at -0.2.
- Torque limits (N m): hip 88, knee 139, ankle 50, waist 88, arm 25: G1 URDF effort limits (the spec
  sheet gives 90 N m peak knee torque for the base G1 and 120 N m for EDU; the URDF's 139 is used).
- Armature (kg m^2): 0.010 hip pitch/yaw and waist, 0.025 hip roll and knee, 0.007 ankle, 0.0036
  arm: reflected rotor inertia of G1's motor classes as published in G1 models (MuJoCo Menagerie's,
  BeyondMimic's whole_body_tracking: 7520-14 0.01018, 7520-22 0.02510, 5020 0.00361; the ankle
  is driven by two 5020).
- Joint damping 0.1 N m s/rad, frictionloss 0: ours. Damping comes from the PD kd; frictionloss
  would add 21 constraint rows to every MJX step.
- kp / kd (N m/rad, N m s/rad): hip 200/4, knee 300/6, ankle 200/2, waist 200/5, arm 40/1. Unitree's
  G1 RL config (unitree_rl_gym) uses hip 100/2, knee 150/4, ankle 40/2 under an active policy.
  Standing with zero action needs ankle stiffness above m g h / 2 = 34.9 * 9.81 * 0.65 / 2 = 111 per
  ankle, and the hips and knees in series with it stiffer still (with G1's gains jh1 falls within
  2 s): hips and knees get twice G1's gains, ankles 200. Waist and arms: ours (the waist carries
  10.5 kg of torso; the arms hang).
- Action scale (rad): 0.5 hip and knee, 0.25 ankle and waist, 0.5 arm. Unitree's G1 config uses 0.25
  for the legs; hips and knees get 0.5 so a walking gait fits inside a in [-1, 1].

Physics: timestep 4 ms and 5 substeps (20 ms control); Newton with 2 iterations and 4 line-search
iterations. The solver dominates MJX's cost (2-core CPU, 64 envs x 50 control steps: 1 iteration
2950 env steps/s, 2 iterations 1940, 3 iterations 1310; brax's humanoid 4300 in the same run), but
1 iteration is far from converged on this robot (over 1 s of swaying, joint positions 9e-3 rad and
velocities 1.4 rad/s away from a converged solve, against 7e-4 and 0.08 with 2 iterations), and MJX
then tracks native MuJoCo less closely (9e-4 against 4e-6). For raw speed, pass
`dataclasses.replace(robot, physics=PhysicsOptions(..., iterations=1))`. Euler integration
without Euler damping: stable at these gains (the largest kd dt / I, the ankle roll in swing, is
about 1.1 < 2) and one factorization fewer per step. Contacts: only the 8 sole spheres touch, and
only the floor (8 contact candidates); a fallen robot sinks through the floor, so falls are
detected by height.
"""

from __future__ import annotations

import importlib.resources
import pathlib

from jaxhum.robots.base import ActuatorGroup, Robot
from jaxhum.sim import PhysicsOptions

MJCF = pathlib.Path(str(importlib.resources.files("jaxhum.robots") / "assets" / "jh1.xml"))

JOINT_NAMES = (
    "left_hip_pitch", "left_hip_roll", "left_hip_yaw", "left_knee", "left_ankle_pitch", "left_ankle_roll",
    "right_hip_pitch", "right_hip_roll", "right_hip_yaw", "right_knee", "right_ankle_pitch", "right_ankle_roll",
    "waist_yaw",
    "left_shoulder_pitch", "left_shoulder_roll", "left_shoulder_yaw", "left_elbow",
    "right_shoulder_pitch", "right_shoulder_roll", "right_shoulder_yaw", "right_elbow",
)  # fmt: skip

_G = ActuatorGroup
GROUPS = (
    _G((r".*_hip_(pitch|yaw)",), kp=200.0, kd=4.0, torque_limit=88.0, action_scale=0.5, armature=0.010),
    _G((r".*_hip_roll",), kp=200.0, kd=4.0, torque_limit=88.0, action_scale=0.5, armature=0.025),
    _G((r".*_knee",), kp=300.0, kd=6.0, torque_limit=139.0, action_scale=0.5, armature=0.025),
    _G((r".*_ankle_(pitch|roll)",), kp=200.0, kd=2.0, torque_limit=50.0, action_scale=0.25, armature=0.007),
    _G((r"waist_yaw",), kp=200.0, kd=5.0, torque_limit=88.0, action_scale=0.25, armature=0.010),
    _G((r".*_(shoulder_(pitch|roll|yaw)|elbow)",), kp=40.0, kd=1.0, torque_limit=25.0, action_scale=0.5, armature=0.0036),  # noqa: E501
)  # fmt: skip

_SOLE = ("toe_in", "toe_out", "heel_in", "heel_out")

JH1 = Robot(
    name="jh1",
    mjcf=MJCF,
    joint_names=JOINT_NAMES,
    groups=GROUPS,
    foot_geoms=(tuple(f"left_foot_{s}" for s in _SOLE), tuple(f"right_foot_{s}" for s in _SOLE)),
    physics=PhysicsOptions(solver="newton", iterations=2, ls_iterations=4, timestep=0.004),
    n_substeps=5,
)
