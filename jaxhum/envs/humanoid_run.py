"""humanoid_run: the classic MuJoCo humanoid running in +x, step-for-step compatible with brax.

Facts taken from brax 0.14's `brax/envs/humanoid.py` with `backend='mjx'`: the model is brax's
`envs/assets/humanoid.xml` loaded through `brax.io.mjcf.load_mjmodel` (bodies without joints
fused into their parents); Newton solver with 1 iteration and 4 line-search iterations, Euler
damping disabled; 5 physics steps per control step; an action a in [-1, 1] becomes the control
lo + (a + 1) (hi - lo) / 2 of each actuator's control range; reward

    r = 1.25 * (com_x' - com_x) / dt + 5.0 - 0.1 * sum(ctrl^2)

(the control cost is on the scaled control, as brax computes it); the episode terminates when
the torso height leaves [1.0, 2.0]; reset adds U(-0.01, 0.01) to qpos0 and to a zero qvel.

The observation is our own (MuJoCo style): joint positions without the root's x, y;
velocities; each body's com velocity and position relative to the whole-body com; actuator
forces.
"""

from __future__ import annotations

import dataclasses
import pathlib
import types
from collections.abc import Mapping

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from jaxhum.envs.base import DeploySpec, Env, EnvState, with_autoreset
from jaxhum.envs.terms import observations, rewards
from jaxhum.sim import PhysicsOptions, load_model, physics

REWARD_TERMS: Mapping[str, rewards.RewardTerm] = types.MappingProxyType(
    {
        "forward_velocity": rewards.forward_velocity,
        "alive": rewards.alive,
        "ctrl_l2": rewards.ctrl_l2,
        "healthy": rewards.healthy,
        "action_rate_l2": rewards.action_rate_l2,
    }
)

DEFAULT_REWARD_WEIGHTS: Mapping[str, float] = types.MappingProxyType(
    {"forward_velocity": 1.25, "alive": 5.0, "ctrl_l2": -0.1, "healthy": 0.0, "action_rate_l2": 0.0}
)

OBSERVATION_TERMS = (
    observations.qpos_without_root_xy,
    observations.qvel,
    observations.body_com_velocity,
    observations.body_positions_from_com,
    observations.actuator_forces,
)


def brax_humanoid_xml() -> pathlib.Path:
    """Path of brax's humanoid MJCF inside the installed brax package."""
    import brax

    return pathlib.Path(brax.__file__).parent / "envs" / "assets" / "humanoid.xml"


@dataclasses.dataclass(frozen=True)
class HumanoidRunConfig:
    """Settings of humanoid_run; every field can be overridden through `make`.

    Attributes:
      episode_length: control steps after which an episode is truncated.
      n_substeps: physics steps per control step (dt = n_substeps * model timestep).
      reset_noise_scale: half-width of the uniform noise added to qpos0 and qvel at reset.
      healthy_z_min: torso height (m) below which the episode terminates.
      healthy_z_max: torso height (m) above which the episode terminates.
      terminate_when_unhealthy: end the episode when the torso leaves the healthy range.
      reward_weights: term name -> weight; an override is merged into the defaults and
        zero-weight terms are not computed.
      model_path: MJCF file; empty means brax's humanoid.xml.
    """

    episode_length: int = 1000
    n_substeps: int = 5
    reset_noise_scale: float = 0.01
    healthy_z_min: float = 1.0
    healthy_z_max: float = 2.0
    terminate_when_unhealthy: bool = True
    reward_weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: DEFAULT_REWARD_WEIGHTS)
    model_path: str = ""

    def validate(self) -> None:
        """Raises ValueError naming the first invalid field."""
        if self.episode_length <= 0:
            raise ValueError(f"episode_length: must be a positive integer, got {self.episode_length}")
        if self.n_substeps <= 0:
            raise ValueError(f"n_substeps: must be a positive integer, got {self.n_substeps}")
        if self.reset_noise_scale < 0:
            raise ValueError(f"reset_noise_scale: must be >= 0, got {self.reset_noise_scale}")
        if not self.healthy_z_min < self.healthy_z_max:
            raise ValueError(
                f"healthy_z_min: must be below healthy_z_max ({self.healthy_z_max}), got {self.healthy_z_min}"
            )
        rewards.check_weights(REWARD_TERMS, self.reward_weights)


# brax's humanoid physics settings for backend='mjx'.
PHYSICS_OPTIONS = PhysicsOptions(
    solver="newton",
    iterations=1,
    ls_iterations=4,
    disableflags=int(mujoco.mjtDisableBit.mjDSBL_EULERDAMP),
)


def make(config: HumanoidRunConfig) -> Env:
    """Builds humanoid_run from a validated config (use `jaxhum.envs.make` to build by name)."""
    config.validate()
    sim = load_model(config.model_path or brax_humanoid_xml(), fuse_bodies=True, options=PHYSICS_OPTIONS)
    model = sim.mjx_model
    mj = sim.mj_model
    nu = mj.nu
    dt = float(mj.opt.timestep) * config.n_substeps
    torso = sim.id("body", "torso")
    weights = dict(config.reward_weights)
    qpos0 = jnp.asarray(mj.qpos0, jnp.float32)
    # Actions in [-1, 1] span each limited actuator's control range; unlimited ones take them as is.
    limited = jnp.asarray(mj.actuator_ctrllimited, bool)
    ctrl_lo = jnp.where(limited, jnp.asarray(mj.actuator_ctrlrange[:, 0], jnp.float32), -1.0)
    ctrl_hi = jnp.where(limited, jnp.asarray(mj.actuator_ctrlrange[:, 1], jnp.float32), 1.0)

    def observe(data) -> jax.Array:
        return observations.concat(OBSERVATION_TERMS, {"data": data})

    def evaluate(data_before, data_after, ctrl, action, last_action):
        """Reward, termination and metrics of a transition data_before -> data_after."""
        com_before = data_before.subtree_com[0]
        com_after = data_after.subtree_com[0]
        torso_z = data_after.xpos[torso, 2]
        is_healthy = (torso_z >= config.healthy_z_min) & (torso_z <= config.healthy_z_max)
        context = {
            "com_before": com_before,
            "com_after": com_after,
            "dt": dt,
            "ctrl": ctrl,
            "action": action,
            "last_action": last_action,
            "is_healthy": is_healthy,
        }
        reward, metrics = rewards.weighted_sum(REWARD_TERMS, weights, context)
        metrics["x_velocity"] = (com_after[0] - com_before[0]) / dt
        metrics["torso_height"] = torso_z
        terminated = jnp.where(is_healthy | (not config.terminate_when_unhealthy), 0.0, 1.0)
        return reward, terminated.astype(jnp.float32), metrics

    def state_at(data) -> EnvState:
        zero_action = jnp.zeros((nu,), jnp.float32)
        _, _, metrics = evaluate(data, data, zero_action, zero_action, zero_action)
        return EnvState.start(data, observe(data), nu, metrics)

    def reset_to(key: jax.Array, qpos: jax.Array, qvel: jax.Array) -> EnvState:
        del key  # humanoid_run draws nothing beyond the configuration it is given
        return state_at(physics.init(model, qpos, qvel))

    def reset(key: jax.Array) -> EnvState:
        # The same split as brax's humanoid, so one key gives both the same start.
        _, key_qpos, key_qvel = jax.random.split(key, 3)
        s = config.reset_noise_scale
        qpos = qpos0 + jax.random.uniform(key_qpos, (mj.nq,), minval=-s, maxval=s)
        qvel = jax.random.uniform(key_qvel, (mj.nv,), minval=-s, maxval=s)
        return state_at(physics.init(model, qpos, qvel))

    def step_without_reset(state: EnvState, action: jax.Array) -> EnvState:
        chex.assert_shape(action, (nu,))
        action = jnp.clip(action.astype(jnp.float32), -1.0, 1.0)
        ctrl = ctrl_lo + (action + 1.0) * 0.5 * (ctrl_hi - ctrl_lo)
        data = physics.step(model, state.data, ctrl, config.n_substeps)
        reward, terminated, metrics = evaluate(state.data, data, ctrl, action, state.last_action)
        return state.advance(data, observe(data), reward, terminated, action, metrics)

    obs_layout = observations.layout(
        OBSERVATION_TERMS, {"data": jax.eval_shape(physics.init, model, qpos0, jnp.zeros((mj.nv,)))})
    deploy = _deploy_spec(config, sim, np.asarray(ctrl_lo), np.asarray(ctrl_hi))
    return Env(
        name="humanoid_run",
        config=config,
        reset=reset,
        reset_to=reset_to,
        step=with_autoreset(step_without_reset, config.episode_length),
        step_without_reset=step_without_reset,
        observation_size=sum(size for _, size in obs_layout),
        action_size=int(nu),
        dt=dt,
        episode_length=config.episode_length,
        sim=sim,
        observation_layout=obs_layout,
        deploy=deploy,
    )


def _deploy_spec(config: HumanoidRunConfig, sim, ctrl_lo: np.ndarray, ctrl_hi: np.ndarray) -> DeploySpec:
    """humanoid_run outside JAX: the same observation terms on native MjData, the same ctrl map."""
    mj = sim.mj_model
    torso = sim.id("body", "torso")

    def host_observation(*, model: mujoco.MjModel, data: mujoco.MjData, last_action=None) -> np.ndarray:
        del model, last_action  # the observation reads data alone
        return observations.concat_host(OBSERVATION_TERMS, {"data": data})

    def host_terminated(*, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        del model
        z = float(data.xpos[torso, 2])
        healthy = config.healthy_z_min <= z <= config.healthy_z_max
        return bool(config.terminate_when_unhealthy and not healthy)

    joints = [int(j) for j in mj.actuator_trnid[:, 0]]
    robot = {
        "actuators": "torque motors (ctrl is a torque fraction times gear)",
        "ctrl_range": np.stack([ctrl_lo, ctrl_hi], -1).tolist(),
        "gear": mj.actuator_gear[:, 0].tolist(),
        # the reset pose of each actuated joint (no PD gains: the actuators are motors)
        "home_pose": [float(mj.qpos0[mj.jnt_qposadr[j]]) for j in joints],
        "pd_gains": None,
    }
    return DeploySpec(
        ctrl_offset=(ctrl_lo + ctrl_hi) / 2.0,
        ctrl_scale=(ctrl_hi - ctrl_lo) / 2.0,
        ctrl_min=ctrl_lo,
        ctrl_max=ctrl_hi,
        actuator_ids=np.arange(mj.nu),
        host_observation=host_observation,
        host_terminated=host_terminated,
        robot=robot,
    )
