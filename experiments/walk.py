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

from experiments import _presets
from jaxhum.config import FrozenMapping
from jaxhum.run import config as run_config
from jaxhum.run import main as run_main

PRESETS = ("cpu", "gpu")

_PPO = FrozenMapping(reward_scaling=0.1)  # both presets


def get_config(preset: str | None = None) -> run_config.RunConfig:
    """The run config of a preset ('cpu' or 'gpu'; None picks by JAX backend). Fields: see RunConfig."""
    preset = _presets.pick(preset)
    if preset == "gpu":
        return _presets.ppo_run(
            "walk", _presets.GPU, num_timesteps=25_000_000,
            ppo={**_PPO, "num_envs": 4096, "num_minibatches": 8, "discounting": 0.99, "num_eval_envs": 128},
            log_every=1_000_000, eval_every=5_000_000,
        )
    if preset == "cpu":
        return _presets.ppo_run("walk", _presets.CPU, num_timesteps=300_000, ppo=_PPO)
    raise _presets.unknown(preset, PRESETS)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (see `jaxhum.run.main.run_cli`)."""
    return run_main.run_cli(get_config, argv, name="walk", presets=PRESETS)


if __name__ == "__main__":
    sys.exit(main())
