"""Tasks as pure functions over `EnvState`: `make(name, **overrides)`, autoreset, brax adapter."""

from jaxhum.envs.base import DeploySpec, Env, EnvState, with_autoreset
from jaxhum.envs.brax_adapter import to_brax
from jaxhum.envs.registry import REGISTRY, make, make_config

__all__ = ["REGISTRY", "DeploySpec", "Env", "EnvState", "make", "make_config", "to_brax", "with_autoreset"]
