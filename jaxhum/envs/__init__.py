"""Tasks as pure functions over `EnvState`: `make(name, **overrides)`, autoreset, brax adapter.

`base`: the state, the `Env` bundle, autoreset. `robot_task`: the skeleton every task on one of
our robots is built on (`build(config, TaskDef, name)`); `walk`, `joystick`, `balance` are such
tasks, each a short module of terms, commands and termination (`terms/`: reward, observation,
command and randomization pieces; `terms/locomotion`: the velocity-command task joystick and
balance share). `humanoid_run` is the brax-style torque task on the classic humanoid.
"""

from jaxhum.envs.base import DeploySpec, Env, EnvState, with_autoreset
from jaxhum.envs.brax_adapter import to_brax
from jaxhum.envs.registry import REGISTRY, make, make_config

__all__ = ["REGISTRY", "DeploySpec", "Env", "EnvState", "make", "make_config", "to_brax", "with_autoreset"]
