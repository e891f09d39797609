"""walk: PPO teaches our humanoid robot (jh1) to walk forward (the seed chapter's example).

    python -m experiments.walk                      # preset for this machine
    python -m experiments.walk --preset gpu --seed 1
    python -m experiments.walk --preset cpu env.reward_weights.energy=-0.01
    python -m experiments.walk --resume runs/walk/<stamp>-s0

Presets:
  cpu  about 2 minutes on a 2-core CPU: few envs, short unrolls, small networks; the eval
       return climbs as the robot learns to stay up longer and lean forward.
  gpu  4096 envs x 20-step unrolls, policy (256, 128, 128), value (256, 256, 128), 4 epochs of
       8 minibatches, discount 0.99, learning rate 3e-4 decaying linearly to 0, 25M env steps
       (benchmarks/RESULTS.md has the figures). At the cpu preset's discount 0.97 (a 33-step
       horizon) policies learn to sprint at 4-5 m/s and fall within the episode: the fall is
       too far ahead for them to see.
Without --preset: 'gpu' when JAX's default backend is not the CPU, else 'cpu'.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jaxhum.rl.train import PPOConfig
from jaxhum.run import config as run_config
from jaxhum.run import main as run_main

PRESETS = ("cpu", "gpu")

_PPO = dict(
    discounting=0.97,
    gae_lambda=0.95,
    clip_epsilon=0.2,
    learning_rate=3e-4,
    reward_scaling=0.1,
    normalize_observations=True,
    max_grad_norm=1.0,
)


def get_config(preset: str | None = None) -> run_config.RunConfig:
    """The run config of a preset ('cpu' or 'gpu'; None picks by JAX backend). Fields: see RunConfig."""
    if preset is None:
        import jax

        preset = "gpu" if jax.default_backend() != "cpu" else "cpu"
    if preset == "gpu":
        return run_config.RunConfig(
            env_name="walk",
            ppo=PPOConfig(
                num_envs=4096,
                unroll_length=20,
                num_minibatches=8,
                num_updates_per_batch=4,
                entropy_cost=1e-3,
                **{**_PPO, "discounting": 0.99},
                policy_hidden_sizes=(256, 128, 128),
                value_hidden_sizes=(256, 256, 128),
                num_eval_envs=128,
                lr_schedule="linear",
            ),
            seed=0,
            num_timesteps=25_000_000,
            log_every=1_000_000,
            eval_every=5_000_000,
            checkpoint_every=10_000_000,
            keep_checkpoints=3,
        )
    if preset == "cpu":
        return run_config.RunConfig(
            env_name="walk",
            ppo=PPOConfig(
                num_envs=64,
                unroll_length=10,
                num_minibatches=8,
                num_updates_per_batch=4,
                entropy_cost=1e-3,
                **_PPO,
                policy_hidden_sizes=(64, 64),
                value_hidden_sizes=(64, 64),
                num_eval_envs=16,
            ),
            seed=0,
            num_timesteps=300_000,
            log_every=20_000,
            eval_every=100_000,
            checkpoint_every=100_000,
            keep_checkpoints=3,
        )
    raise ValueError(f"preset: must be one of {', '.join(PRESETS)}, got {preset!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (see `jaxhum.run.main.run_cli`)."""
    return run_main.run_cli(get_config, argv, name="walk", presets=PRESETS)


if __name__ == "__main__":
    sys.exit(main())
