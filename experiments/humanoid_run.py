"""humanoid_run: PPO on the brax-compatible MuJoCo humanoid running in +x.

    python -m experiments.humanoid_run                      # preset for this machine
    python -m experiments.humanoid_run --preset cpu --seed 1 ppo.learning_rate=1e-4
    python -m experiments.humanoid_run --resume runs/humanoid_run/<stamp>-s0

Presets:
  cpu  finishes in a few minutes on a 2-core laptop CPU and visibly learns (the eval return
       climbs as the humanoid learns to stay up): few envs, short unrolls, small networks.
  gpu  brax's published humanoid PPO hyperparameters (policy (32,)*4, value (256,)*5, discount
       0.97, reward scaling 0.1, lr 3e-4, clip 0.3, 8 epochs of 32 minibatches, no gradient
       clipping) with entropy cost 1e-2 instead of brax's 1e-3, on 8192 envs x 40-step unrolls,
       50M env steps.
Without --preset: 'gpu' when JAX's default backend is not the CPU, else 'cpu'.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jaxhum import runner
from jaxhum.rl.train import PPOConfig

PRESETS = ("cpu", "gpu")

# brax's published humanoid PPO hyperparameters, shared by both presets.
_BRAX_HUMANOID_PPO = dict(
    discounting=0.97,
    gae_lambda=0.95,
    clip_epsilon=0.3,
    entropy_cost=1e-3,
    learning_rate=3e-4,
    reward_scaling=0.1,
    normalize_observations=True,
)


def get_config(preset: str | None = None) -> runner.RunConfig:
    """The run config of a preset ('cpu' or 'gpu'; None picks by JAX backend). Fields: see RunConfig."""
    if preset is None:
        import jax

        preset = "gpu" if jax.default_backend() != "cpu" else "cpu"
    if preset == "gpu":
        # brax's humanoid PPO hyperparameters and its SGD per sample (8 epochs of minibatches of
        # 10240 samples over a 327680-sample batch), spread over 8192 envs x 40 steps instead of
        # brax's 2048 envs x 16 unrolls of 10: four times the envs make each iteration's physics
        # about twice as fast per step on an H200, and the longer unroll gives GAE a longer horizon.
        # No gradient clipping, as in brax. Entropy cost 1e-2, ten times brax's: with 1e-3 the
        # policy's std collapsed (entropy 10 -> below 0 by 30M steps) on seeds that had not yet
        # found a running gait, and 3 of 7 seeds never reached 8000; with 1e-2 the std shrinks
        # about half as fast and those seeds reach it. benchmarks/RESULTS.md has the figures.
        return runner.RunConfig(
            env_name="humanoid_run",
            ppo=PPOConfig(
                num_envs=8192,
                unroll_length=40,
                num_minibatches=32,
                num_updates_per_batch=8,
                **{**_BRAX_HUMANOID_PPO, "entropy_cost": 1e-2},
                max_grad_norm=0.0,
                policy_hidden_sizes=(32, 32, 32, 32),
                value_hidden_sizes=(256, 256, 256, 256, 256),
                num_eval_envs=128,
            ),
            seed=0,
            num_timesteps=50_000_000,
            log_every=1_000_000,
            eval_every=5_000_000,
            checkpoint_every=10_000_000,
            keep_checkpoints=3,
        )
    if preset == "cpu":
        return runner.RunConfig(
            env_name="humanoid_run",
            ppo=PPOConfig(
                num_envs=64,
                unroll_length=10,
                num_minibatches=8,
                num_updates_per_batch=4,
                **_BRAX_HUMANOID_PPO,
                policy_hidden_sizes=(32, 32),
                value_hidden_sizes=(64, 64),
                num_eval_envs=16,
            ),
            seed=0,
            num_timesteps=500_000,
            log_every=20_000,
            eval_every=100_000,
            checkpoint_every=100_000,
            keep_checkpoints=3,
        )
    raise ValueError(f"preset: must be one of {', '.join(PRESETS)}, got {preset!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (see `jaxhum.runner.run_cli`)."""
    return runner.run_cli(get_config, argv, name="humanoid_run", presets=PRESETS)


if __name__ == "__main__":
    sys.exit(main())
