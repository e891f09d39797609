"""Velocity commands of robot tasks (joystick, balance): drawing, resampling, following, tracking.

A command is (vx, vy, yaw_rate) (3,): m/s in the robot's base frame, rad/s about the vertical.
A task draws one per episode from its config's `vx_range`, `vy_range`, `yaw_rate_range` (a
`zero_command_share` of draws exactly zero) and carries it in `info` with the episode's own
PRNG key (`info['key']`, raw uint32 key data) and a countdown (`info['resample_in']`) to the
next draw. Everything here is pure: a command moves only through `next_command`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxhum.envs.base import Env, EnvState
from jaxhum.envs.robot_task import CURRICULUM_INFO_KEY, HISTORY_INFO_KEY
from jaxhum.envs.terms import observations

COMMAND_SIZE = 3
COMMAND_LEVEL = "command"  # the curriculum level that scales the followed command


def sample_command(key: jax.Array, config: Any) -> jax.Array:
    """A command (3,) (vx, vy, yaw_rate), each uniform in its range; all zero with probability
    `zero_command_share`. Pure: the same key gives the same command."""
    key_value, key_zero = jax.random.split(key)
    low = jnp.array([config.vx_range[0], config.vy_range[0], config.yaw_rate_range[0]], jnp.float32)
    high = jnp.array([config.vx_range[1], config.vy_range[1], config.yaw_rate_range[1]], jnp.float32)
    command = jax.random.uniform(key_value, (COMMAND_SIZE,), minval=low, maxval=high)
    zero = jax.random.uniform(key_zero) < config.zero_command_share
    return jnp.where(zero, 0.0, command)


def resample_steps(config: Any, dt: float) -> int:
    """Control steps between command draws; 0 when the command is held for the whole episode."""
    return int(round(config.resample_seconds / dt)) if config.resample_seconds > 0 else 0


def next_command(info: dict[str, Any], config: Any, every: int) -> dict[str, Any]:
    """`info` one control step later: the command countdown ticks and, when it reaches 0, a new
    command is drawn from the carried key (raw uint32 key data, which is split) and the countdown
    restarts at `every`.
    `every == 0` holds the command."""
    if every == 0:
        return info
    key, sub = jax.random.split(info["key"])
    left = info["resample_in"] - 1
    due = left <= 0
    return {
        **info,
        "key": jnp.where(due, key, info["key"]),
        "command": jnp.where(due, sample_command(sub, config), info["command"]),
        "resample_in": jnp.where(due, every, left).astype(jnp.int32),
    }


def followed_command(info: dict[str, Any]) -> jax.Array:
    """(3,) the command the robot is told to follow: the drawn one, times the command level when
    `info` carries curriculum levels (1.0 outside training)."""
    if CURRICULUM_INFO_KEY not in info:
        return info["command"]
    return info[CURRICULUM_INFO_KEY][COMMAND_LEVEL] * info["command"]


def command_schedule(info: dict[str, Any], config: Any, every: int, length: int) -> jax.Array:
    """(length + 1, 3) the followed commands of an episode started with `info` (a reset state's):
    entry t is the command in the observation after step t (0: the reset's) and the command step
    t + 1 is taken and tracked under. Pure and physics-free: only `next_command` moves the command."""

    def tick(carry: dict[str, Any], _: None) -> tuple[dict[str, Any], jax.Array]:
        carry = next_command(carry, config, every)
        return carry, followed_command(carry)

    keys = ("command", "key", "resample_in", CURRICULUM_INFO_KEY)
    _, later = jax.lax.scan(tick, {k: info[k] for k in keys if k in info}, None, length=length)
    return jnp.concatenate([followed_command(info)[None], later])


def tracking_errors(command: Any, local_linvel: Any, angvel: Any) -> dict[str, Any]:
    """A step's tracking errors: `tracking/vx` |vx_cmd - vx| (m/s, base-frame velocimeter) and
    `tracking/yaw` |yaw_rate_cmd - w_z| (rad/s, gyro), from the command (3,) the step was taken
    under and the sensors (3,) after it. jnp or numpy arrays alike."""
    return {"tracking/vx": abs(command[0] - local_linvel[0]), "tracking/yaw": abs(command[2] - angvel[2])}


def with_command(env: Env, state: EnvState, command: Any, hold: bool = True,
                 episode_start: bool = False) -> EnvState:
    """`state` (one env or a batch) told to follow `command` (3,) = (vx, vy, yaw_rate) from now on.

    The command is written into `state.info` and into the observation (and critic observation)
    the policy acts on next: into the newest frame of an observation history, and into every
    frame with `episode_start` (a reset state, whose first frame fills the history), so the
    frames the policy sees later are those a robot's loop keeps (`deploy.FrameHistory`). With
    `hold` the command is never resampled in this episode (an autoreset of `env.step` still
    starts the next episode with a drawn command: drive a policy with `env.step_without_reset`,
    or call `with_command` again after a reset). Under a curriculum (`config.curriculum`) the
    step follows `level * command`; the level is 1.0 outside training.
    """
    offset = command_offset(env)
    cmd = jnp.broadcast_to(jnp.asarray(command, jnp.float32), state.info["command"].shape)
    info = {**state.info, "command": cmd}
    if hold:
        info["resample_in"] = jnp.full_like(state.info["resample_in"], jnp.iinfo(jnp.int32).max)
    frames = state.info.get(HISTORY_INFO_KEY)
    if frames is None:
        obs = state.obs.at[..., offset:offset + COMMAND_SIZE].set(cmd)
    else:  # (..., H, O), newest first
        written = slice(None) if episode_start else slice(0, 1)
        frames = frames.at[..., written, offset:offset + COMMAND_SIZE].set(cmd[..., None, :])
        info[HISTORY_INFO_KEY] = frames
        obs = frames.reshape(*frames.shape[:-2], -1)
    return state.replace(info=info, obs=obs, critic_obs=state.critic_obs.at[..., :obs.shape[-1]].set(obs))


def command_offset(env: Env) -> int:
    """Where the command (`observations.velocity_command`) starts in `env`'s observation."""
    offset = 0
    for name, size in env.observation_layout:
        if name == observations.velocity_command.__name__:
            return offset
        offset += size
    raise ValueError(f"env: task {env.name!r} has no command in its observation")
