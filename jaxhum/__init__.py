"""jaxhum: a JAX stack for training humanoid behaviours with reinforcement learning on MuJoCo MJX."""

from jaxhum import envs, observations, rewards, sim

__version__ = "0.1.0"

__all__ = ["envs", "observations", "rewards", "sim"]
