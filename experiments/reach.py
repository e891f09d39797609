"""reach: PPO teaches our humanoid robot (jh1) to stand and bring a hand to a target point.

    python -m experiments.reach                         # preset for this machine
    python -m experiments.reach --preset gpu --seed 1
    python -m experiments.reach --preset gpu env.hand=both
    python -m experiments.reach --preset gpu env.workspace=box
    python -m experiments.reach --resume runs/reach/<stamp>-s0

Presets:
  cpu  about 2 minutes on a 2-core CPU (a check that everything runs end to end; it does not
       learn to reach in that budget).
  gpu  8192 envs x 20-step unrolls, policy (256, 128, 128), value (256, 256, 128), 4 epochs of
       16 minibatches, discount 0.98 (a 1 s horizon: a target is to be reached within 2 s),
       learning rate 3e-4 decaying linearly, entropy 2e-3, 150M env steps: at ~400k training
       steps/s on one H200 that is ~375 s of training after a start (compile) of ~2 minutes,
       under 10 minutes in all. An estimate: not measured yet (issue 28 item 5).
Without --preset: 'gpu' when JAX's default backend is not the CPU, else 'cpu'.
The figures to read (`eval/tracking_error_reach_missed`: the share of targets missed, 1 minus the
success rate; `..._reach_final_distance`, `..._reach_time`) are described in `jaxhum.envs.reach`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from experiments import _presets
from jaxhum.config import FrozenMapping
from jaxhum.run import config as run_config
from jaxhum.run import main as run_main

PRESETS = ("cpu", "gpu")

_PPO = FrozenMapping(discounting=0.98)  # both presets


def get_config(preset: str | None = None) -> run_config.RunConfig:
    """The run config of a preset ('cpu' or 'gpu'; None picks by JAX backend). Fields: see RunConfig."""
    preset = _presets.pick(preset)
    if preset == "gpu":
        return _presets.ppo_run("reach", _presets.GPU, num_timesteps=150_000_000,
                                ppo={**_PPO, "entropy_cost": 2e-3})
    if preset == "cpu":
        return _presets.ppo_run("reach", _presets.CPU, num_timesteps=200_000, ppo=_PPO)
    raise _presets.unknown(preset, PRESETS)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (see `jaxhum.run.main.run_cli`)."""
    return run_main.run_cli(get_config, argv, name="reach", presets=PRESETS)


if __name__ == "__main__":
    sys.exit(main())
