"""On-device RL: PPO, SAC and TD3 (on-device replay), networks, observation normalisation, evaluation.

Knows envs only through reset/step/observation_size/action_size/episode_length.
"""

from jaxhum.rl.evaluation import make_evaluator
from jaxhum.rl.losses import gae, ppo_objective
from jaxhum.rl.normalization import RunningStats
from jaxhum.rl.off_policy import OffPolicyConfig, OffPolicyState, make_off_policy_train
from jaxhum.rl.train import (
    PolicyParams,
    PPOConfig,
    Trainer,
    TrainState,
    make_train,
    policy_bundle,
)

__all__ = [
    "OffPolicyConfig",
    "OffPolicyState",
    "PPOConfig",
    "PolicyParams",
    "RunningStats",
    "TrainState",
    "Trainer",
    "gae",
    "make_evaluator",
    "make_off_policy_train",
    "make_train",
    "policy_bundle",
    "ppo_objective",
]
