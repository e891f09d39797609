"""`make(name, **overrides)`: tasks by name, with overrides checked against the task's config."""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from jaxhum import config as config_lib
from jaxhum.envs import backflip, balance, humanoid_run, joystick, navigate, reach, walk
from jaxhum.envs.base import Env


class TaskSpec(NamedTuple):
    """A registered task: its frozen config class and the factory that builds it from a config."""

    config_cls: type
    factory: Callable[[Any], Env]


REGISTRY: Mapping[str, TaskSpec] = types.MappingProxyType(
    {
        "backflip": TaskSpec(backflip.BackflipConfig, backflip.make),
        "balance": TaskSpec(balance.BalanceConfig, balance.make),
        "humanoid_run": TaskSpec(humanoid_run.HumanoidRunConfig, humanoid_run.make),
        "joystick": TaskSpec(joystick.JoystickConfig, joystick.make),
        "navigate": TaskSpec(navigate.NavigateConfig, navigate.make),
        "reach": TaskSpec(reach.ReachConfig, reach.make),
        "walk": TaskSpec(walk.WalkConfig, walk.make),
    }
)


def make_config(name: str, /, **overrides: Any) -> Any:
    """Returns the frozen config of task `name` with `overrides` applied and validated.

    A `reward_weights` override is merged into the task's default weights, so
    `reward_weights={'ctrl_l2': 0.0}` switches one term off and keeps the others. A field that is
    a group of fields (`randomization`) takes a dataclass or a mapping of its fields,
    e.g. `randomization={'friction': (0.5, 1.0)}` (the others keep the task's defaults).

    Raises:
      ValueError: unknown task (lists the known ones), unknown field (lists the fields),
        a value of the wrong type, a float that is nan or infinite (also inside a mapping such
        as `reward_weights`), or a value the task's `validate` rejects.
    """
    return resolve(name, overrides)


def resolve(name: str, overrides: Mapping[str, Any], parse: bool = False) -> Any:
    """`make_config` with `overrides` as a mapping: `jaxhum.config.merge` over the task's
    defaults, `check_finite`, then the task's `validate`.

    Args:
      parse: the values are text or JSON (a run config's `env`: the command line, config.json)
        and are parsed to the fields' types; otherwise each must already have its field's type.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown environment {name!r}; known environments: {sorted(REGISTRY)}")
    config_cls = REGISTRY[name].config_cls
    fields = config_lib.field_types(config_cls)
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"{name}: unknown override(s) {unknown}; known fields: {sorted(fields)}")
    config = config_lib.merge(config_cls(), overrides, strict=not parse)
    config_lib.check_finite(config)
    config.validate()
    return config


def make(name: str, /, **overrides: Any) -> Env:
    """Builds task `name` with config `overrides` (e.g. `make('humanoid_run', episode_length=500)`)."""
    config = make_config(name, **overrides)
    return REGISTRY[name].factory(config)
