"""`make(name, **overrides)`: tasks by name, with overrides checked against the task's config."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from jaxhum import config as config_lib
from jaxhum.envs import balance, humanoid_run, joystick, walk
from jaxhum.envs.base import Env


class TaskSpec(NamedTuple):
    """A registered task: its frozen config class and the factory that builds it from a config."""

    config_cls: type
    factory: Callable[[Any], Env]


REGISTRY: Mapping[str, TaskSpec] = types.MappingProxyType(
    {
        "balance": TaskSpec(balance.BalanceConfig, balance.make),
        "humanoid_run": TaskSpec(humanoid_run.HumanoidRunConfig, humanoid_run.make),
        "joystick": TaskSpec(joystick.JoystickConfig, joystick.make),
        "walk": TaskSpec(walk.WalkConfig, walk.make),
    }
)


def _check_type(name: str, value: Any, default: Any) -> None:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, Mapping):
        ok = isinstance(value, Mapping)
    else:
        ok = True
    if not ok:
        raise ValueError(f"{name}: expected {type(default).__name__}, got {type(value).__name__} {value!r}")


def over_defaults(default: Any, value: Mapping[str, Any]) -> dict[str, Any]:
    """A partial override `value` of a group of fields (e.g. `randomization`) completed with the
    fields of the task's default `default` (a dataclass instance): {field: value}."""
    return {**{f.name: getattr(default, f.name) for f in dataclasses.fields(default) if f.init}, **dict(value)}


def make_config(name: str, **overrides: Any) -> Any:
    """Returns the frozen config of task `name` with `overrides` applied and validated.

    A `reward_weights` override is merged into the task's default weights, so
    `reward_weights={'ctrl_l2': 0.0}` switches one term off and keeps the others. A field that is
    a group of fields (`randomization`) takes a dataclass or a mapping of its fields,
    e.g. `randomization={'friction': (0.5, 1.0)}` (the others keep the task's defaults).

    Raises:
      ValueError: unknown task (lists the known ones), unknown field (lists the fields),
        a value of the wrong type, a float that is nan or infinite (also inside a mapping such
        as `reward_weights`; a field may list accepted infinities under
        `jaxhum.config.ALLOW_NON_FINITE` in its metadata), or a value the task's `validate` rejects.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown environment {name!r}; known environments: {sorted(REGISTRY)}")
    config_cls = REGISTRY[name].config_cls
    defaults = config_cls()
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"{name}: unknown override(s) {unknown}; known fields: {sorted(fields)}")
    changes = {}
    for key, value in overrides.items():
        default = getattr(defaults, key)
        _check_type(key, value, default)
        if dataclasses.is_dataclass(default) and isinstance(value, Mapping):
            # A group of fields (e.g. `randomization`): the given ones over the task's defaults
            # (balance's pushes stay on when only their magnitude is overridden).
            value = config_lib.coerce(over_defaults(default, value), type(default), key)
        elif isinstance(default, Mapping):
            value = types.MappingProxyType({**default, **dict(value)})
        elif isinstance(default, float):
            value = float(value)
        changes[key] = value
    config = dataclasses.replace(defaults, **changes)
    for field in fields.values():
        allowed = tuple(field.metadata.get(config_lib.ALLOW_NON_FINITE, ()))
        config_lib.check_finite(getattr(config, field.name), field.name, allowed)
    config.validate()
    return config


def make(name: str, **overrides: Any) -> Env:
    """Builds task `name` with config `overrides` (e.g. `make('humanoid_run', episode_length=500)`)."""
    config = make_config(name, **overrides)
    return REGISTRY[name].factory(config)
