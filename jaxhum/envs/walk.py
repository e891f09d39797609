"""walk: our humanoid robot walks forward in +x (the seed chapter's example task).

Robot: `jaxhum.robots` (default `jh1`). Actions a in [-1, 1]^A are joint position targets around
the home pose, `target = home + action_scale * a`, tracked by the position actuators (the PD law
runs inside the physics at every substep; the policy acts every `dt = n_substeps * timestep`).

Observation (what the robot's own sensors give; `env.observation_layout` names the slices):
joint positions relative to home (A), joint velocities (A), the torso orientation as the gravity
direction in the IMU frame (3) and the heading (cos yaw, sin yaw) of the IMU's forward axis (2),
IMU linear velocity (3, velocimeter) and angular velocity (3, gyro), foot contacts (2). The heading
lets the policy see and correct a turn away from +x, the direction the reward pays for.

Reward, the chapter's four terms with its weights (all overridable through `reward_weights`):

    forward_velocity   2.0    * pelvis x-velocity (world frame, m/s)
    upright            1.0    * (+1 while the pelvis is above upright_height, -10 at or below)
    energy            -0.005  * sum_i a_i^2 (the chapter's 0.5 * -0.01; squared actions, not power)
    orientation        1.0    * -(|roll| + |pitch|) of the pelvis (rad)

Heights: the chapter's 0.8 m (upright) and 0.5 m (fall) are for a robot whose torso stands at
about 1.3 m (the classic MuJoCo humanoid). We keep their ratios to the standing height,
0.8 / 1.3 and 0.5 / 1.3, and apply them to our robot's pelvis height at home (`robot.index`'s
`standing_height`); `upright_height` / `fall_height` override them in metres. The episode
terminates when the pelvis drops below the fall height and is truncated after 20 s.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from jaxhum import robots
from jaxhum.envs.base import DeploySpec, Env, EnvState, with_autoreset
from jaxhum.envs.terms import observations, randomization, rewards
from jaxhum.sim import physics

REWARD_TERMS: Mapping[str, rewards.RewardTerm] = types.MappingProxyType(
    {
        "forward_velocity": rewards.torso_x_velocity,
        "upright": rewards.upright_bonus,
        "energy": rewards.action_l2,
        "orientation": rewards.tilt,
    }
)

DEFAULT_REWARD_WEIGHTS: Mapping[str, float] = types.MappingProxyType(
    {"forward_velocity": 2.0, "upright": 1.0, "energy": 0.5 * -0.01, "orientation": 1.0}
)

OBSERVATION_TERMS = (
    observations.joint_pos_from_home,
    observations.joint_vel,
    observations.gravity_in_imu,
    observations.heading_in_world,
    observations.imu_linear_velocity,
    observations.imu_angular_velocity,
    observations.foot_contacts,
)

# The chapter's heights over its robot's standing torso height (see the module docstring).
CHAPTER_STANDING_HEIGHT = 1.3
UPRIGHT_RATIO = 0.8 / CHAPTER_STANDING_HEIGHT
FALL_RATIO = 0.5 / CHAPTER_STANDING_HEIGHT


@dataclasses.dataclass(frozen=True)
class WalkConfig:
    """Settings of walk; every field can be overridden through `make`.

    Attributes:
      robot: robot name in `jaxhum.robots.ROBOTS`.
      episode_seconds: episode length in seconds before truncation (20 s as in the chapter).
      upright_height: pelvis height (m) above which `upright` pays +1; 0 means
        0.8 / 1.3 of the robot's standing pelvis height.
      fall_height: pelvis height (m) below which the episode terminates; 0 means 0.5 / 1.3 of
        the standing height.
      terminate_on_fall: end the episode at a fall (else it runs to the time limit).
      reset_noise_scale: half-width of the uniform noise (rad, rad/s) added to the joint angles
        and velocities of the home pose at reset.
      reward_weights: term name -> weight; an override is merged into the defaults and
        zero-weight terms are not computed.
      randomization: per-episode domain randomization, observation noise, sensor lag, action
        latency and pushes (`jaxhum.envs.terms.randomization.RandomizationConfig`; all off by default).
        When anything is on, the env asks for fresh starts (`Env.fresh_starts`) so every
        episode draws anew, and with pushes on the metrics carry `push_magnitude`.
    """

    robot: str = "jh1"
    episode_seconds: float = 20.0
    upright_height: float = 0.0
    fall_height: float = 0.0
    terminate_on_fall: bool = True
    reset_noise_scale: float = 0.05
    reward_weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: DEFAULT_REWARD_WEIGHTS)
    randomization: randomization.RandomizationConfig = dataclasses.field(
        default_factory=randomization.RandomizationConfig)

    def validate(self) -> None:
        """Raises ValueError naming the first invalid field."""
        if self.robot not in robots.ROBOTS:
            raise ValueError(f"robot: must be one of {', '.join(sorted(robots.ROBOTS))}, got {self.robot!r}")
        if not self.episode_seconds > 0:
            raise ValueError(f"episode_seconds: must be > 0, got {self.episode_seconds}")
        for name in ("upright_height", "fall_height", "reset_noise_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        rewards.check_weights(REWARD_TERMS, self.reward_weights)
        if not isinstance(self.randomization, randomization.RandomizationConfig):
            raise ValueError(f"randomization: expected a RandomizationConfig, got {type(self.randomization).__name__}")
        self.randomization.validate()


def roll_pitch(quat: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Roll and pitch (rad) of a unit quaternion (w, x, y, z) (4,), ZYX Euler convention."""
    chex.assert_shape(quat, (4,))
    w, x, y, z = quat[0], quat[1], quat[2], quat[3]
    roll = jnp.arctan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = jnp.arcsin(jnp.clip(2.0 * (w * y - z * x), -1.0, 1.0))
    return roll, pitch


def make(config: WalkConfig) -> Env:
    """Builds walk from a validated config (use `jaxhum.envs.make('walk', ...)` to build by name)."""
    config.validate()
    robot = robots.get_robot(config.robot)
    sim = robot.load()
    idx = robot.index(sim)
    model = sim.mjx_model
    mj = sim.mj_model
    n_act = len(robot.joint_names)
    dt = float(mj.opt.timestep) * robot.n_substeps
    episode_length = max(1, int(round(config.episode_seconds / dt)))
    upright_height = config.upright_height or UPRIGHT_RATIO * idx.standing_height
    fall_height = config.fall_height or FALL_RATIO * idx.standing_height
    if not fall_height <= upright_height:
        raise ValueError(f"fall_height: must not exceed upright_height ({upright_height:.3f} m), got {fall_height:.3f}")
    weights = dict(config.reward_weights)

    qpos_adr = jnp.asarray(idx.qpos_adr)
    dof_adr = jnp.asarray(idx.dof_adr)
    home_qpos = jnp.asarray(idx.home_qpos, jnp.float32)
    home_joint_pos = jnp.asarray(idx.home_joint_pos, jnp.float32)
    root = idx.root_body_id
    obs_context = {
        "qpos_adr": qpos_adr,
        "dof_adr": dof_adr,
        "home_joint_pos": home_joint_pos,
        "imu_site_id": idx.imu_site_id,
        "linvel_slice": idx.linvel,
        "gyro_slice": idx.gyro,
    }

    def observe(data) -> jax.Array:
        contact = robots.foot_contacts(idx, data)
        return observations.concat(OBSERVATION_TERMS, {"data": data, "foot_contact": contact, **obs_context})

    home_data = jax.eval_shape(physics.init, model, home_qpos, jnp.zeros((mj.nv,), jnp.float32))
    layout = observations.layout(
        OBSERVATION_TERMS, {"data": home_data, "foot_contact": jnp.zeros((2,)), **obs_context})
    obs_size = sum(size for _, size in layout)
    rand = randomization.build(config.randomization, sim, idx, layout, dt)

    def evaluate(data, action, push=None) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
        """Reward, termination and metrics of the state `data` reached by `action`."""
        height = data.xpos[root, 2]
        roll, pitch = roll_pitch(data.xquat[root])
        context = {
            "root_linvel": data.qvel[0:3],  # a free joint's linear velocity is in the world frame
            "torso_height": height,
            "upright_height": upright_height,
            "action": action,
            "roll": roll,
            "pitch": pitch,
        }
        reward, metrics = rewards.weighted_sum(REWARD_TERMS, weights, context)
        fell = height < fall_height
        metrics["x_velocity"] = data.qvel[0]
        metrics["torso_height"] = height
        metrics["fall"] = fell.astype(jnp.float32)
        if config.randomization.pushes_on:
            metrics["push_magnitude"] = jnp.zeros((), jnp.float32) if push is None else push
        terminated = jnp.where(fell & config.terminate_on_fall, 1.0, 0.0).astype(jnp.float32)
        return reward, terminated, metrics

    def start(key: jax.Array, qpos: jax.Array, qvel: jax.Array) -> EnvState:
        # fold_in, not a split of `key`: walk without randomization draws its reset as before.
        info = rand.episode_start(jax.random.fold_in(key, 1), obs_size, n_act)
        data = physics.init(rand.physics_model(model, info), qpos, qvel)
        obs, info = rand.observe(observe(data), info)
        _, _, metrics = evaluate(data, jnp.zeros((n_act,), jnp.float32))
        return EnvState.start(data, obs, n_act, metrics, info=info)

    def reset_to(key: jax.Array, qpos: jax.Array, qvel: jax.Array) -> EnvState:
        return start(key, qpos, qvel)  # the key draws the episode's randomization only

    def reset(key: jax.Array) -> EnvState:
        key_qpos, key_qvel = jax.random.split(key)
        s = config.reset_noise_scale
        qpos = home_qpos.at[qpos_adr].add(jax.random.uniform(key_qpos, (n_act,), minval=-s, maxval=s))
        qvel = jnp.zeros((mj.nv,), jnp.float32).at[dof_adr].set(
            jax.random.uniform(key_qvel, (n_act,), minval=-s, maxval=s))
        return start(key, qpos, qvel)

    def step_without_reset(state: EnvState, action: jax.Array) -> EnvState:
        chex.assert_shape(action, (n_act,))
        action = jnp.clip(action.astype(jnp.float32), -1.0, 1.0)
        episode_model = rand.physics_model(model, state.info)
        applied, info = rand.delayed_action(action, state.info)
        data, push, info = rand.push(state.data, info)
        data = physics.step(episode_model, data, robots.action_to_ctrl(idx, applied), robot.n_substeps)
        reward, terminated, metrics = evaluate(data, action, push)
        obs, info = rand.observe(observe(data), info)
        return state.advance(data, obs, reward, terminated, action, metrics, info=info)

    return Env(
        name="walk",
        config=config,
        reset=reset,
        reset_to=reset_to,
        step=with_autoreset(step_without_reset, episode_length),
        step_without_reset=step_without_reset,
        observation_size=obs_size,
        action_size=n_act,
        dt=dt,
        episode_length=episode_length,
        sim=sim,
        observation_layout=layout,
        robot=robot,
        deploy=_deploy_spec(config, robot, idx, fall_height),
        fresh_starts=rand.on,
    )


def _deploy_spec(config: WalkConfig, robot: robots.Robot, idx: robots.RobotIndex, fall_height: float) -> DeploySpec:
    """walk outside JAX: the same observation terms on native MjData (foot contacts from its
    contact list), the same position targets, the same fall test."""
    context = {
        "qpos_adr": idx.qpos_adr,
        "dof_adr": idx.dof_adr,
        "home_joint_pos": np.asarray(idx.home_joint_pos, np.float32),
        "imu_site_id": idx.imu_site_id,
        "linvel_slice": idx.linvel,
        "gyro_slice": idx.gyro,
    }

    def host_observation(*, model: mujoco.MjModel, data: mujoco.MjData, last_action=None) -> np.ndarray:
        del model, last_action  # the observation reads data alone
        contact = robots.foot_contacts_np(idx, data)
        return observations.concat_host(OBSERVATION_TERMS, {"data": data, "foot_contact": contact, **context})

    def host_terminated(*, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        del model
        return bool(config.terminate_on_fall and data.xpos[idx.root_body_id, 2] < fall_height)

    return position_control_deploy(robot, idx, host_observation, host_terminated)


def position_control_deploy(robot: robots.Robot, idx: robots.RobotIndex, host_observation, host_terminated,
                            host_tracking=None) -> DeploySpec:
    """The `DeploySpec` of a task that drives one of our position-actuated robots with
    `target = home + action_scale * a` (walk, joystick): its action mapping and robot facts,
    with the task's own host observation and termination."""
    return DeploySpec(
        ctrl_offset=np.asarray(idx.home_joint_pos, np.float64),
        ctrl_scale=np.asarray(idx.action_scale, np.float64),
        ctrl_min=np.asarray(idx.joint_range[:, 0], np.float64),
        ctrl_max=np.asarray(idx.joint_range[:, 1], np.float64),
        actuator_ids=np.asarray(idx.actuator_ids),
        host_observation=host_observation,
        host_terminated=host_terminated,
        host_tracking=host_tracking,
        robot={
            "name": robot.name,
            "actuators": "position (PD inside the physics): torque = kp (target - q) - kd qdot, clipped to torque_limit",
            "home_pose": np.asarray(idx.home_joint_pos).tolist(),
            "action_scale": np.asarray(idx.action_scale).tolist(),
            "pd_gains": {"kp": np.asarray(idx.kp).tolist(), "kd": np.asarray(idx.kd).tolist()},
            "torque_limit": np.asarray(idx.torque_limit).tolist(),
            "joint_range": np.asarray(idx.joint_range).tolist(),
            "imu": {"site": robot.imu_site, "gyro": robot.gyro_sensor, "linvel": robot.linvel_sensor},
            "feet": list(robot.foot_sites),
        },
    )
