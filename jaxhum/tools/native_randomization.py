"""Each MJX episode's randomized world, replayed on the host for its native MuJoCo episode (sim2sim).

A randomized robot task (`jaxhum.envs.terms.randomization`) draws an episode's physics
parameters, observation lag and action latency at reset and keeps them in the reset state's
`info`. Its kicks and observation noise come from a key chain, `info['randomization']['key']`,
that no physics moves: each control step splits it once for the push (`Randomizer.push`:
countdown, magnitude, direction, next interval) and once for the noise (`Randomizer.observe`).
So every kick and noise draw of an episode follows from its reset state alone: `episode_worlds`
scans the task's own functions over the episode on zeros (as `env.command_schedule` replays the
commands) and returns one `NativeWorld` per episode, which `jaxhum.tools.sim2sim` applies to the
matching native episode. The chain is the one an MJX episode of full length would follow; a
native episode that outlives its MJX twin (which ended by a fall) goes on along it.

Applied natively, in the order of the MJX step (`jaxhum.envs.robot_task`):
  physics parameters: every field of `info['params']`, written into a copy of the host model
    (`randomization.set_native`). Native MuJoCo gives a dof a friction-loss constraint row
    wherever `dof_frictionloss > 0` when it builds the constraints, so it needs nothing for what
    MJX's `apply` flags in `dof_hasfrictionloss` (the sampled dofs, whose friction loss is > 0).
    The constants `mj_setConst` derives (`body_invweight0`, `dof_invweight0`, ...) keep their
    nominal values in both engines.
  action latency: the action applied is the one chosen `action_latency` steps before (zeros
    until the first arrives) (`ActionDelay`).
  pushes: `kicks[t]` (2,) added to the root's horizontal velocity at step t + 1, after the
    delayed action and before the physics, scaled by the reset state's curriculum 'push' level
    (1.0 outside training) as MJX scales it.
  observation noise, then lag: `noise[t]` added to the true observation after t steps (row 0:
    at reset), then the policy sees the noisy observation of `obs_lag` steps before, the
    episode's first filling the steps before it (`ObservationPath`).
Not expressible natively: nothing (`NATIVE` names every field of `RandomizationConfig`).

The reset's own noise draw (row 0) comes from the key the reset state no longer holds (its
observation split it). It is redrawn from the reset key by the skeleton's reset key splits
(`RESET_SPLITS`, the one whose chain continues into the reset state's key is the task's; a
task with another split is refused with a one-line error rather than given a wrong draw).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxhum.envs import robot_task
from jaxhum.envs.terms import randomization
from jaxhum.tools.deploy import FrameHistory

# The `RandomizationConfig` fields this module applies natively: all of them today.
NATIVE = ("friction", "mass_scale", "torso_mass", "com_offset", "joint_damping", "armature", "frictionloss",
          "kp_scale", "kd_scale", "motor_strength", "obs_noise", "obs_lag", "action_latency", "push_interval",
          "push_velocity")
# The reset key splits of the robot-task skeleton (`TaskDef.split_reset`), tried in turn to redraw
# an episode's start; a task with its own split must be added here.
RESET_SPLITS = (robot_task.split_reset, robot_task.split_reset_keeping_key)


@dataclasses.dataclass(frozen=True, eq=False)
class NativeWorld:
    """One MJX episode's randomization, in numpy, for its native episode (T = episode length, O =
    observation frame size).

    Attributes:
      params: {MjModel field: value} the episode's physics parameters; {} for the nominal model.
      kicks: (T, 2) float32 root horizontal velocity (m/s) added before the physics of step t + 1
        (0-based t: the step taken after t steps); zero rows on steps without a kick.
      noise: (T + 1, O) float32 added to the true observation after t steps (row 0: at reset).
      obs_lag: k, the policy sees the (noisy) observation of k steps before.
      action_latency: k, the action applied is the one chosen k steps before.
      root_dof: first dof of the root's free joint (its horizontal velocity: root_dof, root_dof + 1).
    """

    params: Mapping[str, np.ndarray]
    kicks: np.ndarray
    noise: np.ndarray
    obs_lag: int
    action_latency: int
    root_dof: int

    def model(self, nominal: Any) -> Any:
        """The episode's `mujoco.MjModel`: a copy of `nominal` with `params` written into it
        (`nominal` itself, untouched, when there are none)."""
        if not self.params:
            return nominal
        model = copy.copy(nominal)  # MjModel's copy is a deep copy (mj_copyModel)
        randomization.set_native(model, self.params)
        return model

    def kick(self, qvel: np.ndarray, t: int) -> None:
        """Adds step t + 1's kick to `qvel` (nv,) (native `MjData.qvel`, in place)."""
        qvel[self.root_dof : self.root_dof + 2] += self.kicks[t]


class ObservationPath:
    """What the policy sees of one native episode's true observations: noise, then lag, then the
    last `history` frames newest first (`Env.observation_history`), as MJX builds it."""

    def __init__(self, world: NativeWorld | None, history: int = 1):
        self.world = world
        lag = 0 if world is None else world.obs_lag
        self.lag = lag
        self.frames = FrameHistory(lag + 1)  # newest first; the first frame fills every slot, as MJX's buffer
        self.history = None if history == 1 else FrameHistory(history)

    def __call__(self, frame: np.ndarray, t: int) -> np.ndarray:
        """(H * O,) float32 the policy's input for the true observation `frame` (O,) after t steps."""
        seen = frame
        if self.world is not None:
            noisy = np.asarray(frame, np.float32) + self.world.noise[t]  # MJX: obs + scale * u, in float32
            seen = self.frames.push(noisy).reshape(self.lag + 1, -1)[self.lag]
        return seen if self.history is None else self.history.push(seen)


class ActionDelay:
    """The actions one native episode applies: each the one chosen k steps before, zeros until the
    first chosen arrives (MJX's `Randomizer.delayed_action`)."""

    def __init__(self, latency: int, action_size: int):
        self.latency = int(latency)
        self.buffer = np.zeros((self.latency + 1, action_size), np.float32)  # newest first

    def __call__(self, action: np.ndarray) -> np.ndarray:
        """(A,) the action to apply now for the policy's `action` (A,) (itself when k = 0)."""
        if self.latency == 0:
            return action
        self.buffer = np.concatenate([np.asarray(action, np.float32)[None], self.buffer[:-1]])
        return self.buffer[self.latency]


# ----------------------------------------------------------------------------- what a run randomizes


def randomizer(env: Any) -> randomization.Randomizer | None:
    """The env's `Randomizer`, rebuilt as `robot_task.build` builds it (same config, model, robot
    index, observation layout and step), or None for an env without randomization."""
    config = getattr(env.config, "randomization", None)
    if config is None or getattr(env, "robot", None) is None or not config.any_on:
        return None
    return randomization.build(config, env.sim, env.robot.index(env.sim), env.observation_layout, env.dt)


def active_names(config: randomization.RandomizationConfig | None) -> list[str]:
    """The `RandomizationConfig` fields a config turns on (set away from off), in field order;
    `obs_noise` only with a scale > 0, `obs_noise_type` never (it is how, not what)."""
    if config is None:
        return []
    off = randomization.RandomizationConfig()

    def on(name: str) -> bool:
        if name == "obs_noise":
            return any(v > 0 for v in config.obs_noise.values())
        return name != "obs_noise_type" and getattr(config, name) != getattr(off, name)

    return [f.name for f in dataclasses.fields(config) if on(f.name)]


def report(env: Any) -> dict[str, list[str]]:
    """sim2sim.json's `randomization`: {'applied_natively': names, 'mjx_only': names} of the fields
    the env's config turns on; a field not in `NATIVE` (one added since) counts as MJX-only."""
    names = active_names(getattr(env.config, "randomization", None))
    return {"applied_natively": [n for n in names if n in NATIVE], "mjx_only": [n for n in names if n not in NATIVE]}


# ----------------------------------------------------------------------------- the replay


@struct.dataclass
class _Velocity:
    """The one field of `mjx.Data` that `Randomizer.push` reads and writes: kicks are read off zeros."""

    qvel: jax.Array  # (nv,)


def _key_bits(key: jax.Array) -> jax.Array:
    return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def _bare(rand: randomization.Randomizer) -> randomization.Randomizer:
    """`rand` without lag and latency: its `observe` of zeros is the noise alone, its key chain the same."""
    return dataclasses.replace(rand, config=dataclasses.replace(rand.config, obs_lag=0, action_latency=0))


def reset_noise(rand: randomization.Randomizer, key: jax.Array,
                info: Mapping[str, Any]) -> tuple[jax.Array, jax.Array]:
    """The reset's noise (O,) of the episode reset from `key`, once per split of `RESET_SPLITS`
    (C, O), and (C,) bool: that split's chain continues into the reset state's key (`info`)."""
    bare = _bare(rand)
    obs_size, action_size = bare.scales.shape[0], bare.nominal.actuator_ids.shape[0]
    noises, matches = [], []
    for split in RESET_SPLITS:
        start = bare.episode_start(jax.random.fold_in(split(key)[2], 1), obs_size, action_size)
        noise, after = bare.observe(jnp.zeros((obs_size,), jnp.float32), start)
        same = _key_bits(after["randomization"]["key"]) == _key_bits(info["randomization"]["key"])
        noises.append(noise)
        matches.append(jnp.all(same))
    return jnp.stack(noises), jnp.stack(matches)


def _step_draws(bare: randomization.Randomizer, level: jax.Array | None, info: dict[str, Any],
                _: None) -> tuple[dict[str, Any], tuple[jax.Array, jax.Array]]:
    """One control step's draws, in the MJX step's order: the kick (2,), then the noise (O,)."""
    nv, d0 = bare.nominal.model.nv, bare.nominal.root_dof
    kicked, _, info = bare.push(_Velocity(jnp.zeros((nv,), jnp.float32)), info, level)
    noise, info = bare.observe(jnp.zeros(bare.scales.shape, jnp.float32), info)
    return info, (noise, kicked.qvel[d0 : d0 + 2])


def replay(rand: randomization.Randomizer, length: int, info: dict[str, Any],
           level: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Kicks (T, 2) and noise (T, O) of steps 1..T of one episode from its reset state's `info`.

    `level`: () the curriculum 'push' level the steps scale kicks by (None: unscaled).
    """
    if level is not None:
        chex.assert_rank(level, 0)
    step = functools.partial(_step_draws, _bare(rand), level)
    _, (noise, kicks) = jax.lax.scan(step, info, None, length=length)
    return kicks, noise


def _episode_draws(rand: randomization.Randomizer, length: int, push_level: bool, key: jax.Array,
                   info: dict[str, Any]) -> dict[str, jax.Array]:
    """Everything `episode_worlds` draws for one episode (reset from `key`, reset state's `info`)."""
    level = info[robot_task.CURRICULUM_INFO_KEY][robot_task.PUSH_LEVEL] if push_level else None
    kicks, noise = replay(rand, length, info, level)
    out = {"kicks": kicks, "noise": noise}
    if np.any(rand.scales > 0):
        out["first_noise"], out["matches"] = reset_noise(rand, key, info)
    return out


def episode_worlds(env: Any, keys: jax.Array, info: dict[str, Any]) -> list[NativeWorld] | None:
    """The `NativeWorld` of each of N episodes reset by `vmap(env.reset)(keys)` (keys (N,)) into
    states whose info is `info` (batched, leading N); None for an env without randomization.

    Raises:
      ValueError: the env has observation noise and its reset splits its key in a way not in
        `RESET_SPLITS` (the reset's noise cannot be redrawn).
    """
    rand = randomizer(env)
    if rand is None:
        return None
    push_level = robot_task.PUSH_LEVEL in tuple(env.curriculum) and rand.config.pushes_on
    draw = jax.jit(jax.vmap(functools.partial(_episode_draws, rand, env.episode_length, push_level)))
    draws = jax.device_get(draw(keys, info))
    host = jax.device_get({"params": info.get("params", {}), "randomization": info.get("randomization", {})})
    n = int(keys.shape[0])
    noise = np.asarray(draws["noise"], np.float32)
    first = np.zeros((n, 1, noise.shape[-1]), np.float32)
    if "matches" in draws:
        found = np.asarray(draws["matches"])
        if not np.all(found.any(axis=1)):
            raise ValueError("randomization: the reset's observation noise cannot be replayed natively: the task's "
                             "reset splits its key in a way not in native_randomization.RESET_SPLITS")
        first = np.asarray(draws["first_noise"])[np.arange(n), found.argmax(axis=1)][:, None]
    noise = np.concatenate([first, noise], axis=1)
    r = host["randomization"]
    return [
        NativeWorld(
            params={name: np.asarray(value[i]) for name, value in host["params"].items()},
            kicks=np.asarray(draws["kicks"][i], np.float32),
            noise=noise[i],
            obs_lag=int(r["obs_lag"][i]) if "obs_lag" in r else 0,
            action_latency=int(r["action_latency"][i]) if "action_latency" in r else 0,
            root_dof=rand.nominal.root_dof,
        )
        for i in range(n)
    ]

