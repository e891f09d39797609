"""navigate: PPO teaches a high-level policy to drive a frozen joystick policy to a goal.

    python -m experiments.navigate low_level=runs/joystick/<stamp>-s0 --preset gpu
    python -m experiments.navigate env.low_level=runs/joystick/<stamp>-s0   # cpu preset
    python -m experiments.navigate                                          # cpu, untrained low level
    python -m experiments.navigate --resume runs/navigate/<stamp>-s0

`low_level=RUN_DIR` is short for `env.low_level=RUN_DIR`: a joystick run directory whose newest
checkpoint is the frozen low-level policy (train one with `python -m experiments.joystick`).

Presets:
  cpu  a few minutes on a 2-core CPU, most of it compiling (a check that everything runs end
       to end: 16 iterations of 32 envs x 8 steps; it does not learn to navigate in that
       budget). Its low level defaults to `untrained` (a freshly initialised joystick actor:
       nothing to train first, no GPU, no earlier run); give `low_level=RUN_DIR` to drive a
       trained one. A tiny joystick run made on the CPU serves as well (it need not walk):
       `python -m experiments.joystick --preset cpu --num-timesteps 1280 --out runs/joystick_tiny`,
       then `low_level=runs/joystick_tiny`. (The default is not empty because every experiment's
       default config must validate: tests/test_bad_input.py runs its command-line rows on it.)
  gpu  requires `low_level=RUN_DIR` (a joystick run trained with `experiments.joystick --preset gpu`);
       4096 envs x 16-step unrolls (3.2 s at the 0.2 s high-level period), policy and value
       (128, 128), 4 epochs of 8 minibatches, discount 0.98 (a 10 s horizon: goals are up to
       8 m away), learning rate 3e-4, entropy 1e-2, 15M high-level steps (150M joystick steps
       of the frozen policy). An estimate, not measured yet (issue 28 item 5).
Without --preset: 'gpu' when JAX's default backend is not the CPU, else 'cpu'.
The figures to read (`eval/tracking_error_navigate_missed`: 1 minus the success rate;
`..._navigate_final_distance`, `..._navigate_time`) are described in `jaxhum.envs.navigate`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from experiments import _presets
from jaxhum.config import FrozenMapping
from jaxhum.envs.navigate import UNTRAINED
from jaxhum.run import config as run_config
from jaxhum.run import main as run_main

PRESETS = ("cpu", "gpu")

_PPO = FrozenMapping(discounting=0.98, entropy_cost=1e-2)  # both presets


def get_config(preset: str | None = None) -> run_config.RunConfig:
    """The run config of a preset ('cpu' or 'gpu'; None picks by JAX backend). Fields: see RunConfig."""
    preset = _presets.pick(preset)
    if preset == "gpu":
        return _presets.ppo_run(
            "navigate", _presets.GPU, num_timesteps=15_000_000,
            ppo={**_PPO, "num_envs": 4096, "unroll_length": 16, "num_minibatches": 8,
                 "policy_hidden_sizes": (128, 128), "value_hidden_sizes": (128, 128), "lr_schedule": "constant"},
            log_every=500_000, eval_every=2_500_000, checkpoint_every=2_500_000,
        )
    if preset == "cpu":
        return _presets.ppo_run(
            "navigate", _presets.CPU, num_timesteps=4_096,
            env=FrozenMapping({"low_level": UNTRAINED}),
            ppo={**_PPO, "num_envs": 32, "unroll_length": 8, "num_minibatches": 4,
                 "policy_hidden_sizes": (32, 32), "value_hidden_sizes": (32, 32), "num_eval_envs": 8},
            log_every=1_024, eval_every=4_096, checkpoint_every=4_096,
        )
    raise _presets.unknown(preset, PRESETS)


def _with_low_level_alias(argv: Sequence[str] | None) -> list[str] | None:
    """`low_level=DIR` (a bare override) as `env.low_level=DIR`."""
    if argv is None:
        argv = sys.argv[1:]
    return [f"env.{a}" if a.startswith("low_level=") else a for a in argv]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (see `jaxhum.run.main.run_cli`)."""
    return run_main.run_cli(get_config, _with_low_level_alias(argv), name="navigate", presets=PRESETS)


if __name__ == "__main__":
    sys.exit(main())
