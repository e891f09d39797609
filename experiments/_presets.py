"""The preset settings the experiment modules share: a task's preset is a common one plus its own.

    run = ppo_run("reach", GPU, num_timesteps=150_000_000, ppo={"discounting": 0.98})

`PPO` holds the PPO settings every task starts from, `CPU` and `GPU` what a machine's scale sets
(env count, unroll, minibatches, networks, evaluation, log and checkpoint cadence); `ppo_run`
builds a task's `RunConfig` from one of them and its differences. The leading underscore keeps
this module out of the experiment discovery (`jaxhum.jobs.tasks.discover`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from jaxhum.config import FrozenMapping
from jaxhum.envs.terms.randomization import RandomizationConfig
from jaxhum.rl.train import PPOConfig
from jaxhum.run import config as run_config


@dataclasses.dataclass(frozen=True)
class Preset:
    """A machine's common settings, by field name."""

    ppo: Mapping[str, Any]  # PPOConfig fields
    run: Mapping[str, Any]  # RunConfig fields other than env_name, ppo and num_timesteps


# The PPO settings every task starts from. Stated even where they equal PPOConfig's defaults, so
# that a change of those defaults does not move a measured preset.
PPO = FrozenMapping(
    num_updates_per_batch=4,
    discounting=0.97,
    gae_lambda=0.95,
    clip_epsilon=0.2,
    entropy_cost=1e-3,
    learning_rate=3e-4,
    reward_scaling=1.0,
    normalize_observations=True,
    max_grad_norm=1.0,
)

_RUN = FrozenMapping(seed=0, keep_checkpoints=3)

# A check on the project's shared 2-core CPU machine that everything runs end to end in minutes:
# few envs, short unrolls, small networks.
CPU = Preset(
    ppo=FrozenMapping(
        {**PPO, "num_envs": 64, "unroll_length": 10, "num_minibatches": 8,
         "policy_hidden_sizes": (64, 64), "value_hidden_sizes": (64, 64), "num_eval_envs": 16}
    ),
    run=FrozenMapping({**_RUN, "log_every": 20_000, "eval_every": 100_000, "checkpoint_every": 100_000}),
)

# One H100/H200: 8192 envs x 20-step unrolls in 16 minibatches, the learning rate decaying
# linearly to 0 over the run.
GPU = Preset(
    ppo=FrozenMapping(
        {**PPO, "num_envs": 8192, "unroll_length": 20, "num_minibatches": 16,
         "policy_hidden_sizes": (256, 128, 128), "value_hidden_sizes": (256, 256, 128),
         "num_eval_envs": 256, "lr_schedule": "linear"}
    ),
    run=FrozenMapping({**_RUN, "log_every": 2_000_000, "eval_every": 10_000_000,
                       "checkpoint_every": 10_000_000}),
)


def pick(preset: str | None) -> str:
    """`preset`, or for None 'gpu' when JAX's default backend is not the CPU, else 'cpu'."""
    if preset is not None:
        return preset
    import jax

    return "gpu" if jax.default_backend() != "cpu" else "cpu"


def unknown(preset: str, presets: Sequence[str]) -> ValueError:
    """The error for a preset name that is not one of `presets` (raise it)."""
    return ValueError(f"preset: must be one of {', '.join(presets)}, got {preset!r}")


def ppo_run(
    env_name: str,
    preset: Preset,
    *,
    num_timesteps: int,
    ppo: Mapping[str, Any] = FrozenMapping(),
    **run: Any,
) -> run_config.RunConfig:
    """A PPO run of `env_name`: `preset` with the task's differences.

    Args:
      env_name: the registered env the run trains.
      preset: the common settings (`CPU` or `GPU`).
      num_timesteps: the run's budget in env steps (every preset states its own).
      ppo: PPOConfig fields that differ from `preset.ppo`.
      **run: RunConfig fields that differ from `preset.run` (env, eval_env, log_every, ...).
    Returns:
      The RunConfig.
    """
    return run_config.RunConfig(
        env_name=env_name,
        ppo=PPOConfig(**{**preset.ppo, **ppo}),
        num_timesteps=num_timesteps,
        **{**preset.run, **run},
    )


def randomization_overrides(config: RandomizationConfig) -> FrozenMapping:
    """`config` as `env.randomization` overrides: the fields it sets away from off."""
    off = RandomizationConfig()
    return FrozenMapping({f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                          if getattr(config, f.name) != getattr(off, f.name)})
