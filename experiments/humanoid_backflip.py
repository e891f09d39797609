"""humanoid_backflip: PPO teaches our humanoid robot (jh1, as `jh1_flip`) a standing backflip.

    python -m experiments.humanoid_backflip                      # preset for this machine
    python -m experiments.humanoid_backflip --preset gpu --seed 1
    python -m experiments.humanoid_backflip --preset gpu env.success_rotation_deg=300
    python -m experiments.humanoid_backflip --resume runs/humanoid_backflip/<stamp>-s0

The task (observation, action, phase rewards, the success rule and its metrics) is
`jaxhum.envs.backflip`; the job service trains it as `"task": "humanoid_backflip"`.

Presets:
  cpu  a check that everything runs end to end on a 2-core CPU (it does not learn to flip).
  gpu  8192 envs x 20-step unrolls, policy (256, 256, 128), value (256, 256, 256), 4 epochs of
       16 minibatches, discount 0.99 (a 2 s horizon: the landing pays 1-1.5 s after the crouch),
       learning rate 3e-4 decaying linearly, entropy 5e-3, under `GPU_RANDOMIZATION` (masses,
       centre of mass, motor strength, gains, joint friction, floor friction, noise, one step of
       sensor lag and action latency; no pushes) with a critic that reads what it drew;
       500M env steps. At `STEPS_PER_SECOND['gpu']` (400k training steps/s on one H200, the
       joystick's measured rate; not measured for this task, whose 27 floor contacts cost more
       than joystick's 8) that is ~1250 s of training after a start of ~150 s: under 30 minutes.
Without --preset: 'gpu' when JAX's default backend is not the CPU, else 'cpu'.
The figures to read: `eval/tracking_error_flip_missed` (1 minus the success rate),
`..._flip_rotation_deg`, `..._flip_landing_tilt_deg`, `..._flip_peak_height`, `..._flip_peak_torque`.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping, Sequence

from experiments import _presets
from jaxhum.config import FrozenMapping
from jaxhum.envs.backflip import GPU_RANDOMIZATION
from jaxhum.run import config as run_config
from jaxhum.run import main as run_main

PRESETS = ("cpu", "gpu")
ENV_NAME = "backflip"

# Training env steps per second of each preset on the machine it is meant for, and the seconds a
# run takes to start (compiles of init, the iteration and the evaluation), for the job service's
# `estimated_completion`. gpu: one H200 at the robot tasks' ~400k steps/s (joystick's measured
# rate, benchmarks/RESULTS.md), an estimate for this task, not a measurement; cpu: measured with
# this preset on the project's shared 2-core CPU machine (1,781 training steps/s; a 12,800-step
# run took 5 min 24 s, ~4 min of it compiling).
STEPS_PER_SECOND: Mapping[str, float] = types.MappingProxyType({"gpu": 400_000.0, "cpu": 1_800.0})
START_SECONDS: Mapping[str, float] = types.MappingProxyType({"gpu": 150.0, "cpu": 240.0})

_PPO = FrozenMapping(discounting=0.99)  # both presets

GPU_ENV = FrozenMapping({"randomization": _presets.randomization_overrides(GPU_RANDOMIZATION),
                         "critic_randomization": True})


def get_config(preset: str | None = None) -> run_config.RunConfig:
    """The run config of a preset ('cpu' or 'gpu'; None picks by JAX backend). Fields: see RunConfig."""
    preset = _presets.pick(preset)
    if preset == "gpu":
        return _presets.ppo_run(
            ENV_NAME, _presets.GPU, num_timesteps=500_000_000, env=GPU_ENV,
            ppo={**_PPO, "entropy_cost": 5e-3, "policy_hidden_sizes": (256, 256, 128),
                 "value_hidden_sizes": (256, 256, 256)},
            log_every=5_000_000, eval_every=25_000_000, checkpoint_every=25_000_000,
        )
    if preset == "cpu":
        return _presets.ppo_run(ENV_NAME, _presets.CPU, num_timesteps=200_000, ppo=_PPO)
    raise _presets.unknown(preset, PRESETS)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (see `jaxhum.run.main.run_cli`)."""
    return run_main.run_cli(get_config, argv, name="humanoid_backflip", presets=PRESETS)


if __name__ == "__main__":
    sys.exit(main())
