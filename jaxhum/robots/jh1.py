"""jh1: jaxhum's own G1-class humanoid (1.32 m, 34.9 kg, 21 actuated joints).

The MJCF (`assets/jh1.xml`) is written for this project from primitives. Its figures, and where
they come from:

| figure | value | source |
| --- | --- | --- |
| height, mass | 1.32 m, 34.9 kg | Unitree G1 public spec sheet: height 1320 mm, about 35 kg |
| thigh, shank | 0.30 m, 0.30 m | G1 spec sheet: thigh + calf length 0.6 m |
| joint ranges | see the MJCF | G1 public URDF / joint-limit table (hip pitch -2.5307..2.8798, hip roll -0.5236..2.9671 (left), hip yaw +-2.7576, knee -0.0873..2.8798, ankle pitch -0.8727..0.5236, ankle roll +-0.2618, waist yaw +-2.618, shoulder pitch -3.0892..2.6704, shoulder roll -1.5882..2.2515 (left), shoulder yaw +-2.618) |
| elbow range | -0.2..2.0944 | G1's flexion limit 2.0944; our zero is the straight arm, so extension stops at -0.2 |
| torque limits | hip 88, knee 139, ankle 50, waist 88, arm 25 N m | G1 URDF effort limits (knee 139 N m: G1 spec sheet gives 90 N m peak for the base model, 120 N m for EDU; the URDF's 139 is used) |
| armature | 0.010 (hip pitch/yaw, waist), 0.025 (hip roll, knee), 0.007 (ankle), 0.0036 (arm) kg m^2 | rotor inertia x gear ratio^2 of G1's motor classes as published in MuJoCo Menagerie's G1 model (7520-14: 0.0102, 7520-22: 0.0251, 2 x 5020: 0.0072, 5020: 0.0036) |
| joint damping, frictionloss | 0.1 N m s/rad, 0 | small, ours: damping comes from the PD kd; frictionloss would add 21 constraint rows to every MJX step |
| kp, kd (legs) | hip 200/4, knee 300/6, ankle 200/2 | Unitree's G1 RL config (unitree_rl_gym) uses hip 100/2, knee 150/4, ankle 40/2 for an active policy; standing with zero action needs ankle stiffness above m g h / 2 = 34.9 * 9.81 * 0.65 / 2 = 111 N m/rad per ankle, and the hips and knees in series with it must be stiffer still: we double the hip and knee gains and raise the ankle to 200 (the robot then stands, tested) |
| kp, kd (waist, arms) | 200/5, 40/1 | G1 RL configs of Unitree (waist 200/5, arms 40/1 class values) |
| action scale | 0.5 hip and knee, 0.25 ankle and waist, 0.5 arm | Unitree's G1 config uses 0.25 for all legs; hips and knees get 0.5 so a gait fits in [-1, 1] |

Physics: timestep 4 ms and 5 substeps (20 ms control), Newton with 3 iterations and 5 line-search
iterations, Euler integration without Euler damping: stable at these gains (the largest kd dt / I,
the ankle roll in swing, is about 1.1 < 2) and cheap in MJX. Contacts: only the 8 sole spheres
touch, and only the floor (8 contact candidates).
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

GROUPS = (
    ActuatorGroup((r".*_hip_(pitch|yaw)",), kp=200.0, kd=4.0, torque_limit=88.0, action_scale=0.5, armature=0.010),
    ActuatorGroup((r".*_hip_roll",), kp=200.0, kd=4.0, torque_limit=88.0, action_scale=0.5, armature=0.025),
    ActuatorGroup((r".*_knee",), kp=300.0, kd=6.0, torque_limit=139.0, action_scale=0.5, armature=0.025),
    ActuatorGroup((r".*_ankle_(pitch|roll)",), kp=200.0, kd=2.0, torque_limit=50.0, action_scale=0.25, armature=0.007),
    ActuatorGroup((r"waist_yaw",), kp=200.0, kd=5.0, torque_limit=88.0, action_scale=0.25, armature=0.010),
    ActuatorGroup((r".*_(shoulder_(pitch|roll|yaw)|elbow)",), kp=40.0, kd=1.0, torque_limit=25.0, action_scale=0.5, armature=0.0036),
)  # fmt: skip

_SOLE = ("toe_in", "toe_out", "heel_in", "heel_out")

JH1 = Robot(
    name="jh1",
    mjcf=MJCF,
    joint_names=JOINT_NAMES,
    groups=GROUPS,
    foot_geoms=(tuple(f"left_foot_{s}" for s in _SOLE), tuple(f"right_foot_{s}" for s in _SOLE)),
    physics=PhysicsOptions(solver="newton", iterations=3, ls_iterations=5, timestep=0.004),
    n_substeps=5,
)
