"""On-device PPO: networks, observation normalisation, GAE + PPO loss, training and evaluation.

Knows envs only through reset/step/observation_size/action_size/episode_length.
"""

from jaxhum.rl.evaluation import make_evaluator
from jaxhum.rl.losses import gae, ppo_objective
from jaxhum.rl.normalization import RunningStats
from jaxhum.rl.train import (
    PolicyParams,
    PPOConfig,
    Trainer,
    TrainState,
    make_train,
    policy_bundle,
)

__all__ = [
    "PPOConfig",
    "PolicyParams",
    "RunningStats",
    "TrainState",
    "Trainer",
    "gae",
    "make_evaluator",
    "make_train",
    "policy_bundle",
    "ppo_objective",
]
