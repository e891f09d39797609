"""Per-episode domain randomization: physics parameters, observation noise, sensor lag, action
latency and pushes, as pure functions a task calls from its reset and step.

Everything is drawn once per episode at reset (`episode_start`) and kept in the env's `info`:
`info['params']` holds the episode's physics parameters (values of `mjx.Model` fields, so
`physics_model(model, params)` is a `model.replace`), `info['randomization']` the per-episode
noise/lag/latency/push state. A task with `fresh_starts=True` gets a fresh draw at every episode
start, automatic resets included (the trainer's `refresh_starts`); nothing changes mid-episode.
Every setting is off by default; a config with everything off yields `info == {}`, the nominal
model untouched and the step unchanged bit for bit.

How a task wires it in (see `jaxhum.envs.walk`):

    rand = randomization.build(config.randomization, sim, idx, observation_layout, dt)
    # reset(key):
    key, key_rand = jax.random.split(key)
    info = rand.episode_start(key_rand)
    data = physics.init(rand.physics_model(model, info), qpos, qvel)
    obs, info = rand.observe(observe(data), info)        # noise, then lag
    # step(state, action):
    m = rand.physics_model(model, state.info)
    applied, info = rand.delayed_action(action, state.info)
    data, push, info = rand.push(state.data, info)     # velocity kick, metrics['push_magnitude'] = push
    data = physics.step(m, data, to_ctrl(applied), n_substeps)
    obs, info = rand.observe(observe(data), info)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from jaxhum.config import FrozenMapping

Range = tuple[float, float]

NOISE_TYPES = ("uniform", "gaussian")

# Names of the ranges that scale a nominal value (so (1, 1) is the nominal value).
_SCALE_FIELDS = ("mass_scale", "joint_damping", "armature", "kp_scale", "kd_scale", "motor_strength")
# Names of ranges of absolute values, added to or replacing a nominal value.
_ABSOLUTE_FIELDS = ("friction", "torso_mass", "com_offset", "frictionloss")
_RANGE_FIELDS = _SCALE_FIELDS + _ABSOLUTE_FIELDS + ("push_interval", "push_velocity")

# The model fields each physics range writes (what `physics_model` replaces).
_MODEL_FIELDS = {
    "friction": ("geom_friction",),
    "mass_scale": ("body_mass", "body_inertia", "body_subtreemass"),
    "torso_mass": ("body_mass", "body_inertia", "body_subtreemass"),
    "com_offset": ("body_ipos",),
    "joint_damping": ("dof_damping",),
    "armature": ("dof_armature",),
    "frictionloss": ("dof_frictionloss",),
    "kp_scale": ("actuator_gainprm", "actuator_biasprm"),
    "kd_scale": ("actuator_biasprm",),
    "motor_strength": ("actuator_forcerange",),
}


@dataclasses.dataclass(frozen=True)
class RandomizationConfig:
    """Ranges drawn per episode; every field None (or 0, or empty) is off, the default.

    A range (lo, hi) draws uniformly in [lo, hi]; (v, v) fixes the value at v (what the
    robustness sweep uses). Scales multiply the robot's nominal value.

    Attributes:
      friction: sliding friction coefficient of the floor and of every sole geom (absolute;
        MuJoCo takes the larger of two geoms' coefficients, so both are set). Nominal jh1: 1.0.
      mass_scale: factor on each body's mass (and inertia, so the body's shape stays the same),
        drawn per body.
      torso_mass: kg added to the torso body (its inertia grows in proportion).
      com_offset: m added to the torso's centre of mass, drawn per axis.
      joint_damping: factor on the damping of every actuated joint (drawn per joint).
      armature: factor on the armature (rotor inertia) of every actuated joint (per joint).
      frictionloss: dry friction (N m) of every actuated joint, absolute (per joint); lo > 0:
        MJX gives each sampled joint a friction-loss constraint row, and a row whose friction
        loss is exactly 0 does not behave as MuJoCo's absent row (it holds the joint back).
      kp_scale, kd_scale: factors on the position actuators' stiffness kp and damping kd (per
        actuator): gainprm[0] = kp, biasprm[1] = -kp, biasprm[2] = -kd.
      motor_strength: factor on each actuator's torque limit (forcerange), per actuator.
      obs_noise: observation term name (from `env.observation_layout`) -> noise scale, added
        to that slice at every step (uniform half-width or gaussian std, see `obs_noise_type`).
      obs_noise_type: 'uniform' or 'gaussian'.
      obs_lag: the policy sees observations k control steps old, k drawn per episode in
        [0, obs_lag] (0: off).
      action_latency: an action is applied k control steps after the policy chose it, k drawn
        per episode in [0, action_latency]; the robot holds the home pose (action 0) until the
        first chosen action arrives (0: off).
      push_interval: seconds between velocity kicks to the root body, drawn anew after each
        kick (and for the first kick at episode start). None: no pushes.
      push_velocity: magnitude (m/s) of a kick, added to the root's horizontal velocity in a
        direction drawn uniformly; required together with push_interval.
    """

    friction: Range | None = None
    mass_scale: Range | None = None
    torso_mass: Range | None = None
    com_offset: Range | None = None
    joint_damping: Range | None = None
    armature: Range | None = None
    frictionloss: Range | None = None
    kp_scale: Range | None = None
    kd_scale: Range | None = None
    motor_strength: Range | None = None
    obs_noise: Mapping[str, float] = dataclasses.field(default_factory=FrozenMapping)  # hashable, as run configs are
    obs_noise_type: str = "uniform"
    obs_lag: int = 0
    action_latency: int = 0
    push_interval: Range | None = None
    push_velocity: Range | None = None

    def validate(self, observation_terms: Sequence[str] | None = None) -> None:
        """Raises ValueError (one line, naming the field) for an invalid setting."""
        for name in _RANGE_FIELDS:
            r = getattr(self, name)
            if r is None or (isinstance(r, tuple) and any(isinstance(v, jax.Array) for v in r)):
                # None is off; JAX values are a sweep tracing the range (jaxhum.robustness): the
                # sweep checks its values on the host before tracing.
                continue
            if len(r) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in r):
                raise ValueError(f"randomization.{name}: must be two finite numbers (lo, hi), got {r!r}")
            if not r[0] <= r[1]:
                raise ValueError(f"randomization.{name}: lo must not exceed hi, got {tuple(r)}")
            low = {"com_offset": -math.inf, "friction": 0.0, "torso_mass": -math.inf}.get(name, 0.0)
            if name in _SCALE_FIELDS or name in ("push_interval", "frictionloss"):
                if not r[0] > 0.0:
                    raise ValueError(f"randomization.{name}: must be > 0, got {tuple(r)}")
            elif not r[0] >= low:
                raise ValueError(f"randomization.{name}: must be >= {low}, got {tuple(r)}")
        if (self.push_interval is None) != (self.push_velocity is None):
            raise ValueError(
                "randomization.push_velocity: push_interval and push_velocity are set together (or neither)")
        for name in ("obs_lag", "action_latency"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"randomization.{name}: must be an int >= 0, got {v!r}")
        if self.obs_noise_type not in NOISE_TYPES:
            raise ValueError(
                f"randomization.obs_noise_type: must be one of {', '.join(NOISE_TYPES)}, got {self.obs_noise_type!r}"
            )
        for term, scale in self.obs_noise.items():
            if observation_terms is not None and term not in observation_terms:
                raise ValueError(
                    f"randomization.obs_noise.{term}: unknown observation term; known: {', '.join(observation_terms)}"
                )
            if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale >= 0):
                raise ValueError(f"randomization.obs_noise.{term}: must be a finite number >= 0, got {scale!r}")

    @property
    def physics_on(self) -> bool:
        return any(getattr(self, name) is not None for name in _MODEL_FIELDS)

    @property
    def pushes_on(self) -> bool:
        return self.push_interval is not None

    @property
    def any_on(self) -> bool:
        return (
            self.physics_on
            or self.pushes_on
            or self.obs_lag > 0
            or self.action_latency > 0
            or any(v > 0 for v in self.obs_noise.values())
        )


# Ranges a robot task's gpu preset turns on (README: "Domain randomization"); close to what
# sim-to-real humanoid work uses (MuJoCo Playground's G1/Berkeley Humanoid, legged_gym).
GPU_PRESET = RandomizationConfig(
    friction=(0.4, 1.25),
    mass_scale=(0.9, 1.1),
    torso_mass=(-1.0, 3.0),
    com_offset=(-0.03, 0.03),
    joint_damping=(0.5, 1.5),
    armature=(1.0, 1.05),
    frictionloss=(0.01, 0.3),
    kp_scale=(0.9, 1.1),
    kd_scale=(0.9, 1.1),
    motor_strength=(0.9, 1.1),
    obs_noise=FrozenMapping(
        {
            "joint_pos_from_home": 0.01,
            "joint_vel": 1.5,
            "gravity_in_imu": 0.05,
            "imu_linear_velocity": 0.1,
            "imu_angular_velocity": 0.2,
        }
    ),
    obs_lag=1,
    action_latency=1,
    push_interval=(5.0, 10.0),
    push_velocity=(0.1, 1.0),
)


@dataclasses.dataclass(frozen=True, eq=False)
class Nominal:
    """What sampling needs from one loaded robot: ids (host numpy) and nominal model values.

    Build it with `nominal(sim, idx)`. Arrays are the MJX model's own (device dtype).
    """

    model: mjx.Model  # the nominal MJX model
    friction_geom_ids: np.ndarray  # (g,) floor and sole geoms
    torso_body_id: int
    dof_ids: np.ndarray  # (A,) dofs of the actuated joints
    actuator_ids: np.ndarray  # (A,)
    body_parent: np.ndarray  # (nbody,) parent of each body (0 is the world)
    root_dof: int  # first dof of the root body's free joint (linear velocity: root_dof .. +3)


def nominal(sim: Any, idx: Any) -> Nominal:
    """The `Nominal` record of a robot task (`sim`: `jaxhum.sim.SimModel`, `idx`: `RobotIndex`)."""
    m = sim.mj_model
    dof_ids = np.asarray(idx.dof_adr, np.int32)
    root_jnt = int(m.body_jntadr[idx.root_body_id])
    return Nominal(
        model=sim.mjx_model,
        friction_geom_ids=np.concatenate([[idx.floor_geom_id], np.ravel(idx.foot_geom_ids)]).astype(np.int32),
        torso_body_id=int(idx.torso_body_id),
        dof_ids=dof_ids,
        actuator_ids=np.asarray(idx.actuator_ids, np.int32),
        body_parent=np.asarray(m.body_parentid, np.int32),
        root_dof=int(m.jnt_dofadr[root_jnt]),
    )


def _uniform(key: jax.Array, r: Range, shape: tuple[int, ...] = ()) -> jax.Array:
    # (v, v) must give exactly v: minval + (maxval - minval) * u is v + 0 * u.
    return jax.random.uniform(key, shape, jnp.float32, minval=r[0], maxval=r[1])


def subtree_mass(body_mass: jax.Array, body_parent: np.ndarray) -> jax.Array:
    """(nbody,) mass of each body's subtree, as mj_setConst computes `body_subtreemass`."""
    out = body_mass
    for b in range(body_mass.shape[0] - 1, 0, -1):  # children have larger ids than their parents
        out = out.at[body_parent[b]].add(out[b])
    return out


def sample(key: jax.Array, config: RandomizationConfig, nom: Nominal) -> dict[str, jax.Array]:
    """One episode's physics parameters: {mjx.Model field name: value}; {} when all are off.

    Pure and deterministic in `key`. Only the fields an active range writes are present; their
    values have the model's shapes. Masses scale inertias by the same factor and
    `body_subtreemass` is recomputed; `body_invweight0`/`dof_invweight0` (constraint softness
    scaling computed by mj_setConst at qpos0) keep their nominal values, as in MuJoCo when a
    model's masses are edited without mj_setConst.
    """
    m = nom.model
    keys = dict(zip(_MODEL_FIELDS, jax.random.split(key, len(_MODEL_FIELDS))))
    out: dict[str, jax.Array] = {}
    a = len(nom.actuator_ids)
    if config.friction is not None:
        f = _uniform(keys["friction"], config.friction)
        out["geom_friction"] = m.geom_friction.at[nom.friction_geom_ids, 0].set(f)
    if config.mass_scale is not None or config.torso_mass is not None:
        scale = jnp.ones_like(m.body_mass)
        if config.mass_scale is not None:
            scale = _uniform(keys["mass_scale"], config.mass_scale, m.body_mass.shape)
        mass = m.body_mass * scale
        if config.torso_mass is not None:
            t = nom.torso_body_id
            added = _uniform(keys["torso_mass"], config.torso_mass)
            scale = scale.at[t].multiply((mass[t] + added) / mass[t])
            mass = mass.at[t].add(added)
        out["body_mass"] = mass
        out["body_inertia"] = m.body_inertia * scale[:, None]
        out["body_subtreemass"] = subtree_mass(mass, nom.body_parent)
    if config.com_offset is not None:
        off = _uniform(keys["com_offset"], config.com_offset, (3,))
        out["body_ipos"] = m.body_ipos.at[nom.torso_body_id].add(off)
    if config.joint_damping is not None:
        s = _uniform(keys["joint_damping"], config.joint_damping, (a,))
        out["dof_damping"] = m.dof_damping.at[nom.dof_ids].multiply(s)
    if config.armature is not None:
        s = _uniform(keys["armature"], config.armature, (a,))
        out["dof_armature"] = m.dof_armature.at[nom.dof_ids].multiply(s)
    if config.frictionloss is not None:
        v = _uniform(keys["frictionloss"], config.frictionloss, (a,))
        out["dof_frictionloss"] = m.dof_frictionloss.at[nom.dof_ids].set(v)
    if config.kp_scale is not None or config.kd_scale is not None:
        gain, bias = m.actuator_gainprm, m.actuator_biasprm
        ids = nom.actuator_ids
        if config.kp_scale is not None:
            s = _uniform(keys["kp_scale"], config.kp_scale, (a,))
            gain = gain.at[ids, 0].multiply(s)
            bias = bias.at[ids, 1].multiply(s)
        if config.kd_scale is not None:
            s = _uniform(keys["kd_scale"], config.kd_scale, (a,))
            bias = bias.at[ids, 2].multiply(s)
        out["actuator_gainprm"] = gain
        out["actuator_biasprm"] = bias
    if config.motor_strength is not None:
        s = _uniform(keys["motor_strength"], config.motor_strength, (a,))
        out["actuator_forcerange"] = m.actuator_forcerange.at[nom.actuator_ids].multiply(s[:, None])
    return out


def apply(model: mjx.Model, params: Mapping[str, jax.Array], frictionloss_dofs: Any = None) -> mjx.Model:
    """`model` with the sampled fields replaced (the identity for `{}`). Works under vmap.

    MJX decides at trace time which dofs get a dry-friction constraint row (the static
    `dof_hasfrictionloss`, from the nominal values), so with `dof_frictionloss` sampled the dofs
    `frictionloss_dofs` (int array; the sampled ones, `Nominal.dof_ids`) get one too, else a
    robot whose nominal friction loss is 0 would ignore the sample. Rows on dofs whose friction
    loss is exactly 0 are not inert in MJX's solver (they differ from MuJoCo, which has no row
    there): flag only the sampled dofs, whose friction loss is > 0 (`validate`).
    """
    if not params:
        return model
    model = model.replace(**params)
    if "dof_frictionloss" in params and hasattr(model._impl, "dof_hasfrictionloss"):
        if frictionloss_dofs is None:
            raise ValueError("frictionloss_dofs: required when dof_frictionloss is sampled")
        flags = np.array(model._impl.dof_hasfrictionloss, dtype=bool)
        flags[np.asarray(frictionloss_dofs)] = True
        model = model.replace(_impl=model._impl.replace(dof_hasfrictionloss=flags))
    return model


def set_native(mj_model: mujoco.MjModel, params: Mapping[str, Any]) -> None:
    """Writes a sample into a native `MjModel` (host; for sim-to-sim and tests). Mutates `mj_model`."""
    for name, value in params.items():
        getattr(mj_model, name)[...] = np.asarray(value, np.float64)


# ----------------------------------------------------------------------------- observation / action


def noise_scales(config: RandomizationConfig, layout: Sequence[tuple[str, int]]) -> np.ndarray:
    """(obs_size,) per-entry noise scale from the per-term `config.obs_noise` and the layout."""
    return (
        np.concatenate([np.full((size,), float(config.obs_noise.get(name, 0.0)), np.float32) for name, size in layout])
        if layout
        else np.zeros((0,), np.float32)
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Randomizer:
    """The per-episode randomization of one task, as pure functions over its `info` dict.

    Build it with `build`. With everything off, `episode_start` returns `{}` and every other
    function returns its input unchanged (no key is drawn, nothing is computed).
    """

    config: RandomizationConfig
    nominal: Nominal
    scales: np.ndarray  # (obs_size,)
    dt: float  # control step (s)

    @property
    def on(self) -> bool:
        return self.config.any_on

    def _needs_key(self) -> bool:
        c = self.config
        return c.pushes_on or bool(np.any(self.scales > 0))

    def episode_start(self, key: jax.Array, obs_size: int, action_size: int) -> dict[str, Any]:
        """The `info` of a new episode: `params` and the noise/lag/latency/push state ({} if all off).

        `info['randomization']` holds `key` (for per-step noise and pushes), `obs_lag` () int32
        and `obs_buffer` (obs_lag + 1, obs_size) (filled by the first `observe`),
        `action_latency` () int32 and `action_buffer` (action_latency + 1, A), `push_countdown`
        () int32 control steps until the next kick.
        """
        c = self.config
        if not self.on:
            return {}
        key_params, key_lag, key_lat, key_push, key_run = jax.random.split(key, 5)
        info: dict[str, Any] = {}
        if c.physics_on:
            info["params"] = sample(key_params, c, self.nominal)
        r: dict[str, Any] = {}
        if self._needs_key():
            r["key"] = key_run
        if c.obs_lag > 0:
            r["obs_lag"] = jax.random.randint(key_lag, (), 0, c.obs_lag + 1, jnp.int32)
            # Not filled yet: the episode's first `observe` fills every slot with its observation.
            r["obs_buffer"] = jnp.zeros((c.obs_lag + 1, obs_size), jnp.float32)
            r["obs_filled"] = jnp.zeros((), jnp.bool_)
        if c.action_latency > 0:
            r["action_latency"] = jax.random.randint(key_lat, (), 0, c.action_latency + 1, jnp.int32)
            r["action_buffer"] = jnp.zeros((c.action_latency + 1, action_size), jnp.float32)
        if c.pushes_on:
            r["push_countdown"] = self._interval_steps(key_push)
        if r:
            info["randomization"] = r
        return info

    def privileged(self, info: Mapping[str, Any]) -> jax.Array:
        """(P,) float32 what the episode's randomization drew, for a privileged critic (the
        robot never observes it): for each active range, in `_MODEL_FIELDS` order, the values it
        set (friction: the floor's (1); masses: total and torso mass (2, kg); com_offset: the
        torso's centre of mass (3, m); joint_damping, armature, frictionloss: the actuated
        joints' (A each); kp_scale: kp, kd_scale: kd, motor_strength: torque limit (A each));
        then the observation lag and action latency drawn (steps, when on) and the seconds to
        the next kick (when pushes are on). (0,) when nothing is on; the size depends on the
        config alone."""
        c, nom = self.config, self.nominal
        params, r = info.get("params", {}), info.get("randomization", {})
        parts: list[jax.Array] = []
        if c.friction is not None:
            parts.append(params["geom_friction"][nom.friction_geom_ids[:1], 0])
        if c.mass_scale is not None or c.torso_mass is not None:
            mass = params["body_mass"]
            parts.append(jnp.stack([jnp.sum(mass), mass[nom.torso_body_id]]))
        if c.com_offset is not None:
            parts.append(params["body_ipos"][nom.torso_body_id])
        for name, field in (("joint_damping", "dof_damping"), ("armature", "dof_armature"),
                            ("frictionloss", "dof_frictionloss")):
            if getattr(c, name) is not None:
                parts.append(params[field][nom.dof_ids])
        if c.kp_scale is not None:
            parts.append(params["actuator_gainprm"][nom.actuator_ids, 0])
        if c.kd_scale is not None:
            parts.append(-params["actuator_biasprm"][nom.actuator_ids, 2])
        if c.motor_strength is not None:
            parts.append(params["actuator_forcerange"][nom.actuator_ids, 1])
        for name in ("obs_lag", "action_latency"):
            if getattr(c, name) > 0:
                parts.append(r[name][None])
        if c.pushes_on:
            parts.append((r["push_countdown"] * self.dt)[None])
        if not parts:
            return jnp.zeros((0,), jnp.float32)
        return jnp.concatenate([jnp.asarray(x, jnp.float32).reshape(-1) for x in parts])

    def _interval_steps(self, key: jax.Array) -> jax.Array:
        seconds = _uniform(key, self.config.push_interval)
        return jnp.maximum(1, jnp.round(seconds / self.dt)).astype(jnp.int32)

    def physics_model(self, model: mjx.Model, info: Mapping[str, Any]) -> mjx.Model:
        """The episode's model: `model` with `info['params']` applied (`model` itself if none)."""
        return apply(model, info.get("params", {}), self.nominal.dof_ids)

    def observe(self, obs: jax.Array, info: dict[str, Any]) -> tuple[jax.Array, dict[str, Any]]:
        """The observation the policy sees for the true `obs` (obs_size,): noise, then lag.

        Noise: obs + scale * u per entry, u ~ U(-1, 1) or N(0, 1) (a fresh draw every call).
        Lag k: the (noisy) observation of k calls ago; at episode start the buffer is filled with
        the first observation, so the first k steps repeat it.
        """
        chex.assert_rank(obs, 1)
        if not self.on:
            return obs, info
        if np.any(self.scales > 0):
            r = dict(info["randomization"])
            key, k_noise = jax.random.split(r["key"])
            r["key"] = key
            info = {**info, "randomization": r}
            if self.config.obs_noise_type == "gaussian":
                u = jax.random.normal(k_noise, obs.shape, jnp.float32)
            else:
                u = jax.random.uniform(k_noise, obs.shape, jnp.float32, minval=-1.0, maxval=1.0)
            obs = obs + jnp.asarray(self.scales) * u
        if self.config.obs_lag > 0:
            r = dict(info["randomization"])
            buf = jnp.where(r["obs_filled"], r["obs_buffer"], jnp.broadcast_to(obs, r["obs_buffer"].shape))
            buf = jnp.concatenate([obs[None], buf[:-1]])  # newest first
            r.update(obs_buffer=buf, obs_filled=jnp.ones((), jnp.bool_))
            obs = buf[r["obs_lag"]]
            info = {**info, "randomization": r}
        return obs, info

    def delayed_action(self, action: jax.Array, info: dict[str, Any]) -> tuple[jax.Array, dict[str, Any]]:
        """The action to apply now for the policy's `action` (A,): the one chosen k steps ago."""
        chex.assert_rank(action, 1)
        if self.config.action_latency == 0:
            return action, info
        r = dict(info["randomization"])
        buf = jnp.concatenate([action[None], r["action_buffer"][:-1]])
        r["action_buffer"] = buf
        return buf[r["action_latency"]], {**info, "randomization": r}

    def push(
        self, data: mjx.Data, info: dict[str, Any], scale: jax.Array | None = None
    ) -> tuple[mjx.Data, jax.Array, dict[str, Any]]:
        """Counts down to the next kick; on its step adds v (cos t, sin t, 0) to the root's velocity.

        Returns the data, the kick's magnitude v (() float32; 0 on steps without a kick) and info.
        `scale` (() float, e.g. a curriculum level in [0, 1]) multiplies the drawn magnitude;
        None draws from `push_velocity` as it is. Call it once per control step, before the
        physics step.
        """
        if not self.config.pushes_on:
            return data, jnp.zeros((), jnp.float32), info
        r = dict(info["randomization"])
        key, k_mag, k_dir, k_next = jax.random.split(r["key"], 4)
        countdown = r["push_countdown"] - 1
        kick_now = countdown <= 0
        drawn = _uniform(k_mag, self.config.push_velocity)
        if scale is not None:
            drawn = jnp.asarray(scale, jnp.float32) * drawn
        magnitude = jnp.where(kick_now, drawn, 0.0)
        angle = jax.random.uniform(k_dir, (), jnp.float32, 0.0, 2.0 * jnp.pi)
        kick = magnitude * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
        d0 = self.nominal.root_dof
        qvel = data.qvel.at[d0 : d0 + 2].add(kick.astype(data.qvel.dtype))
        r.update(key=key, push_countdown=jnp.where(kick_now, self._interval_steps(k_next), countdown))
        return data.replace(qvel=qvel), magnitude, {**info, "randomization": r}


def build(config: RandomizationConfig, sim: Any, idx: Any, layout: Sequence[tuple[str, int]], dt: float) -> Randomizer:
    """The `Randomizer` of a robot task: `config` validated against the task's observation terms."""
    config.validate([name for name, _ in layout])
    return Randomizer(config=config, nominal=nominal(sim, idx), scales=noise_scales(config, layout), dt=float(dt))
