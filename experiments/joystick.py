"""joystick: PPO teaches our humanoid robot (jh1) to walk at a commanded velocity.

    python -m experiments.joystick                      # preset for this machine
    python -m experiments.joystick --preset gpu --seed 1
    python -m experiments.joystick --preset gpu env.vx_range=-0.5,1.5
    python -m experiments.joystick --resume runs/joystick/<stamp>-s0

Presets:
  cpu  about 2 minutes on a 2-core CPU (a check that everything runs end to end; it does
       not learn to walk in that budget).
  gpu  8192 envs x 20-step unrolls, policy (256, 128, 128), value (256, 256, 128), 4 epochs of
       16 minibatches, discount 0.97, learning rate 3e-4 decaying linearly, entropy 5e-3,
       80M env steps. Measured on one H100 (benchmarks/RESULTS.md): about 320k training steps/s
       after a 125 s start (compile); with a 50M budget seeds 0, 1 and 3 tracked within the
       targets but fell in 2-6% of 20 s episodes; seed 4 with 80M met every target at 60M
       steps (316 s wall) and fell in none of them from 70M on. The gait clock, the feet_phase
       term and dense tracking kernels pay from the first steps, so tracking is learned early;
       discount 0.97 (a 33-step, 0.7 s horizon) suffices because falls are priced by the
       termination term, not by a lost forward-velocity stream as in walk.
  gpu_randomized  the policy to take to a robot: gpu in the recommended domain randomization,
       observation noise, sensor lag, action latency and kicks (`jaxhum.envs.joystick.GPU_RANDOMIZATION`),
       with what lets a policy survive it (`ROBUST_ENV`: 5 observation frames, a critic that reads
       what the randomization drew, a fall at 0.40 m or 0.8 rad of tilt, yaw tracking weight 1.5),
       trained under kicks of 0.1-1.5 m/s every 5-10 s and judged (`eval_env`) under the issue's
       0.1-1.0 m/s, 140M env steps. Measured on one H200 (benchmarks/RESULTS.md, issue 27), seed
       102: 519 s wall; 768 independent episodes of the final policy fell in 1.7%, 512 of them
       tracked vx 0.1445 m/s, yaw rate 0.19997 rad/s (targets 0.15, 0.2: met at the edge; the
       run's own final evaluation: 0.143 / 0.201 / 2.7%). Trained under kicks of 0.1-1.0 m/s
       (seeds 101, 103) it tracks better (0.13 / 0.17) and falls more (2.2%, 2.7%).
Without --preset: 'gpu' when JAX's default backend is not the CPU, else 'cpu'.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence

from jaxhum.config import FrozenMapping
from jaxhum.envs.joystick import GPU_RANDOMIZATION
from jaxhum.envs.terms.randomization import RandomizationConfig
from jaxhum.rl.train import PPOConfig
from jaxhum.run import config as run_config
from jaxhum.run import main as run_main

PRESETS = ("cpu", "gpu", "gpu_randomized")

_PPO = dict(
    discounting=0.97,
    gae_lambda=0.95,
    clip_epsilon=0.2,
    learning_rate=3e-4,
    reward_scaling=1.0,
    normalize_observations=True,
    max_grad_norm=1.0,
)


def randomization_overrides() -> FrozenMapping:
    """`GPU_RANDOMIZATION` as `env.randomization` overrides: the fields it sets away from off."""
    off = RandomizationConfig()
    return FrozenMapping(
        {
            f.name: getattr(GPU_RANDOMIZATION, f.name)
            for f in dataclasses.fields(GPU_RANDOMIZATION)
            if getattr(GPU_RANDOMIZATION, f.name) != getattr(off, f.name)
        }
    )


# gpu_randomized's task: the full randomization stack, and what lets a policy survive it.
ROBUST_ENV = FrozenMapping(
    {
        "randomization": randomization_overrides(),
        "observation_history": 5,  # 100 ms of frames: a kick shows as a change the policy can see
        "critic_randomization": True,  # the critic knows the episode's physics, lag and next kick
        "fall_height": 0.40,  # m: a pelvis this low has its knees (which do not collide) in the floor
        "fall_tilt": 0.8,  # rad (46 deg) from upright: fallen before the pelvis reaches the floor
        # The randomized gait sways the pelvis in yaw at the stride frequency (mean |yaw-rate error|
        # 0.17 rad/s on nominal physics with weight 0.75, 0.05 of it a bias): twice the yaw weight.
        "reward_weights": FrozenMapping({"tracking_ang_vel": 1.5}),
    }
)

# gpu_randomized trains under kicks of up to 1.5 m/s (the falls of a policy trained under the
# judged 0.1-1.0 m/s came after its largest kicks, 0.75-1.0 m/s) and is judged under 0.1-1.0 m/s.
TRAIN_KICKS = (0.1, 1.5)
EVAL_ENV = FrozenMapping({"randomization": FrozenMapping({"push_velocity": GPU_RANDOMIZATION.push_velocity})})


def get_config(preset: str | None = None) -> run_config.RunConfig:
    """The run config of a preset ('cpu' or 'gpu'; None picks by JAX backend). Fields: see RunConfig."""
    if preset is None:
        import jax

        preset = "gpu" if jax.default_backend() != "cpu" else "cpu"
    if preset == "gpu":
        return run_config.RunConfig(
            env_name="joystick",
            ppo=PPOConfig(
                num_envs=8192,
                unroll_length=20,
                num_minibatches=16,
                num_updates_per_batch=4,
                entropy_cost=5e-3,
                **_PPO,
                policy_hidden_sizes=(256, 128, 128),
                value_hidden_sizes=(256, 256, 128),
                num_eval_envs=256,
                lr_schedule="linear",
            ),
            seed=0,
            num_timesteps=80_000_000,
            log_every=2_000_000,
            eval_every=10_000_000,
            checkpoint_every=10_000_000,
            keep_checkpoints=3,
        )
    if preset == "gpu_randomized":
        env = FrozenMapping({**ROBUST_ENV, "randomization": FrozenMapping(
            {**ROBUST_ENV["randomization"], "push_velocity": TRAIN_KICKS})})
        return dataclasses.replace(get_config("gpu"), env=env, eval_env=EVAL_ENV, num_timesteps=140_000_000)
    if preset == "cpu":
        return run_config.RunConfig(
            env_name="joystick",
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
            num_timesteps=200_000,
            log_every=20_000,
            eval_every=100_000,
            checkpoint_every=100_000,
            keep_checkpoints=3,
        )
    raise ValueError(f"preset: must be one of {', '.join(PRESETS)}, got {preset!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (see `jaxhum.run.main.run_cli`)."""
    return run_main.run_cli(get_config, argv, name="joystick", presets=PRESETS)


if __name__ == "__main__":
    sys.exit(main())
