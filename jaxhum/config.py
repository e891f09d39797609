"""Helpers for frozen, nested dataclass configs: dotted overrides, type coercion, JSON.

A config is a frozen dataclass whose fields are scalars (int, float, bool, str), tuples,
optional values, string literals, mappings (e.g. env overrides) or other frozen dataclasses.
Nothing here mutates a config: every change goes through `dataclasses.replace` and returns a
new object. Every error is a `ConfigError` whose message is one line, `<field>: <constraint>`.

    cfg = apply_overrides(cfg, ["ppo.learning_rate=1e-4", "env.episode_length=500"])
    cfg = apply_overrides(cfg, {"seed": 3})
    assert from_json(type(cfg), to_json(cfg)) == cfg
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "ALLOW_NON_FINITE",
    "ConfigError",
    "FrozenMapping",
    "allowed_non_finite",
    "apply_overrides",
    "check_finite",
    "coerce",
    "diff",
    "dumps",
    "field_types",
    "flatten",
    "from_json",
    "get",
    "loads",
    "parse_overrides",
    "require",
    "to_json",
    "validate_types",
]


class ConfigError(ValueError):
    """A config value is invalid; `str(err)` is one line: `<field>: <constraint>`."""

    def __init__(self, field: str, constraint: str):
        super().__init__(field, constraint)
        self.field = field
        self.constraint = constraint

    def __str__(self) -> str:
        return f"{self.field}: {self.constraint}"


def require(condition: bool, field: str, constraint: str) -> None:
    """Raises `ConfigError(field, constraint)` unless `condition` holds."""
    if not condition:
        raise ConfigError(field, constraint)


# A float field whose non-finite values mean something lists them in its metadata, e.g.
# `dataclasses.field(default=math.inf, metadata={ALLOW_NON_FINITE: (math.inf,)})`; every other
# float field refuses nan, inf and -inf (a learning rate of inf would train to the end on NaN).
ALLOW_NON_FINITE = "allow_non_finite"


def check_finite(value: Any, field: str, allowed: Sequence[float] = ()) -> None:
    """Raises `ConfigError(field, ...)` if `value` holds a float that is nan or +-inf.

    Walks tuples, mappings and nested dataclasses (`field[i]`, `field.key`); `allowed` lists the
    infinities that are accepted (nan never is: it compares unequal to everything). A nested
    dataclass's fields use their own `ALLOW_NON_FINITE` metadata.
    """
    if isinstance(value, float) and not math.isfinite(value) and value not in allowed:
        also = "".join(f" or {a}" for a in allowed)
        raise ConfigError(field, f"must be a finite number{also}, got {value}")
    if _is_dataclass_instance(value):
        for f in dataclasses.fields(value):
            check_finite(getattr(value, f.name), f"{field}.{f.name}", tuple(f.metadata.get(ALLOW_NON_FINITE, ())))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_finite(item, f"{field}[{i}]", allowed)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_finite(item, f"{field}.{key}", allowed)


def allowed_non_finite(cls: type, name: str) -> tuple[float, ...]:
    """The non-finite values field `name` of dataclass `cls` documents as meaningful."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return tuple(f.metadata.get(ALLOW_NON_FINITE, ()))
    return ()


# ----------------------------------------------------------------------------- parsing


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """Parses `["a.b=1", "c=x"]` into `{"a.b": "1", "c": "x"}`; later items win."""
    out: dict[str, str] = {}
    for item in items:
        path, sep, value = item.partition("=")
        path = path.strip()
        if not sep or not path:
            raise ConfigError(item or "<empty>", "expected an override of the form field=value")
        out[path] = value.strip()
    return out


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved annotations of a dataclass's init fields (handles `from __future__ import annotations`)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # Unresolvable forward references: fall back to the raw annotations.
        hints = {}
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls) if f.init}


def _known(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "(none)"


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _expected(tp: Any) -> str:
    names = {bool: "a bool (true/false)", int: "an int", float: "a float", str: "a string"}
    return names.get(tp, _type_name(tp))


def _parse_literal(text: str) -> Any:
    """A string from the command line read as JSON when it is JSON, else kept as a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text


def _split_sequence(text: str) -> list[str]:
    stripped = text.strip()
    if stripped[:1] in "([" and stripped[-1:] in ")]":
        stripped = stripped[1:-1]
    return [part.strip() for part in stripped.split(",") if part.strip()]


def coerce(value: Any, tp: Any, field: str) -> Any:
    """Converts `value` (a string from the CLI or a JSON value) to type `tp`, or raises."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if tp is Any or tp is object:
        return _freeze(_parse_literal(value) if isinstance(value, str) else value)

    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            if type(None) in args:
                return None
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, field)
            except ConfigError:
                continue
        raise ConfigError(field, f"expected {_type_name(tp)}, got {value!r}")

    if origin is typing.Literal:
        for allowed in args:
            if value == allowed or (isinstance(value, str) and str(allowed) == value.strip()):
                return allowed
        raise ConfigError(field, f"must be one of {', '.join(repr(a) for a in args)}, got {value!r}")

    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
        raise ConfigError(field, f"expected a bool (true/false), got {value!r}")

    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(field, f"expected an int, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text)
            except ValueError:
                try:
                    as_float = float(text)  # Accepts 5e7 and 5_000_000.0 for counts.
                except ValueError:
                    as_float = math.nan
                if math.isfinite(as_float) and as_float.is_integer():
                    return int(as_float)
        raise ConfigError(field, f"expected an int, got {value!r}")

    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(field, f"expected a float, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(field, f"expected a float, got {value!r}")

    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(field, f"expected a string, got {value!r}")

    if origin is tuple or tp is tuple:
        if isinstance(value, str):
            value = _split_sequence(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(field, f"expected {_type_name(tp)} (comma separated), got {value!r}")
        if not args:
            return tuple(_freeze(v) for v in value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{field}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(field, f"expected {len(args)} values, got {len(value)}")
        return tuple(coerce(v, a, f"{field}[{i}]") for i, (v, a) in enumerate(zip(value, args)))

    if origin in (Mapping, dict, typing.Mapping) or tp in (dict, Mapping):
        if isinstance(value, str):
            value = _parse_literal(value) if value.strip() else {}
        if not isinstance(value, Mapping):
            raise ConfigError(field, f"expected a mapping (JSON object), got {value!r}")
        value_tp = args[1] if len(args) == 2 else Any
        return _freeze({str(k): coerce(v, value_tp, f"{field}.{k}") for k, v in value.items()})

    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return _from_mapping(tp, value, field)
        raise ConfigError(field, f"is a group of fields; set them one by one, e.g. {field}.<name>=...")

    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(field, f"expected {_type_name(tp)}, got {value!r}")
    return value


class FrozenMapping(Mapping):
    """A read-only, hashable dict used for mapping-valued config fields (e.g. env overrides)."""

    __slots__ = ("_data",)

    def __init__(self, *args: Any, **kwargs: Any):
        object.__setattr__(self, "_data", dict(*args, **kwargs))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, _hashable(v)) for k, v in self._data.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._data) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMapping is read-only")

    def __reduce__(self):
        return (FrozenMapping, (self._data,))


def _hashable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value


def _freeze(value: Any) -> Any:
    """Lists become tuples and dicts become FrozenMappings, recursively."""
    if isinstance(value, Mapping) and not isinstance(value, FrozenMapping):
        return FrozenMapping({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


# ----------------------------------------------------------------------------- overrides


def get(config: Any, path: str) -> Any:
    """The value at dotted `path` (e.g. 'ppo.learning_rate'); raises ConfigError if unknown."""
    node = config
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if _is_dataclass_instance(node):
            names = field_types(type(node))
            if part not in names:
                raise ConfigError(".".join(walked), f"unknown field; known fields: {_known(names)}")
            node = getattr(node, part)
        elif isinstance(node, Mapping):
            if part not in node:
                raise ConfigError(".".join(walked), f"unknown key; known keys: {_known(node)}")
            node = node[part]
        else:
            raise ConfigError(".".join(walked), f"{'.'.join(walked[:-1])} is not a group of fields")
    return node


def _set(node: Any, parts: Sequence[str], value: Any, prefix: str) -> Any:
    """Returns a copy of `node` with `value` (raw) coerced and placed at `parts`."""
    head, rest = parts[0], parts[1:]
    here = f"{prefix}.{head}" if prefix else head
    if _is_dataclass_instance(node):
        types_ = field_types(type(node))
        if head not in types_:
            raise ConfigError(here, f"unknown field; known fields: {_known(types_)}")
        current = getattr(node, head)
        if rest:
            if not (_is_dataclass_instance(current) or isinstance(current, Mapping)):
                raise ConfigError(here, f"is a {_type_name(types_[head])}, it has no field {rest[0]!r}")
            new = _set(current, rest, value, here)
        else:
            new = coerce(value, types_[head], here)
        return dataclasses.replace(node, **{head: new})
    if isinstance(node, Mapping):
        items = dict(node)
        if rest:
            current = items.get(head, FrozenMapping())
            if not isinstance(current, Mapping):
                raise ConfigError(here, f"is a {type(current).__name__}, it has no key {rest[0]!r}")
            items[head] = _set(current, rest, value, here)
        elif head in items and items[head] is not None and not isinstance(items[head], Mapping):
            # An existing key keeps its type: env.episode_length=500 stays an int.
            items[head] = coerce(value, type(items[head]), here)
        else:
            items[head] = _freeze(_parse_literal(value) if isinstance(value, str) else value)
        return FrozenMapping(items)
    raise ConfigError(here, "is not a group of fields")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"ppo": {"lr": 1}}` -> `{"ppo.lr": 1}` (only for nested mappings)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def apply_overrides(config: Any, overrides: Mapping[str, Any] | Iterable[str]) -> Any:
    """Returns a new config with dotted overrides applied.

    Args:
      config: a frozen dataclass instance (never modified).
      overrides: `["ppo.learning_rate=1e-4", ...]` or `{"ppo.learning_rate": 1e-4, ...}`;
        string values are coerced to the field's declared type; a path that walks into a
        mapping field (e.g. `env.episode_length`) sets that key.
    Returns:
      The new config.
    Raises:
      ConfigError: unknown field (lists the known ones) or a value of the wrong type.
    """
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    for path, value in overrides.items():
        parts = [p for p in str(path).split(".")]
        if any(not p for p in parts):
            raise ConfigError(str(path), "empty field name in dotted path")
        config = _set(config, parts, value, "")
    return config


# ----------------------------------------------------------------------------- validation


def validate_types(config: Any, prefix: str = "") -> None:
    """Checks every field of a (nested) dataclass against its annotation; raises ConfigError.

    Floats must also be finite, except the values a field lists under `ALLOW_NON_FINITE`.
    """
    for name, tp in field_types(type(config)).items():
        path = f"{prefix}.{name}" if prefix else name
        value = getattr(config, name)
        if _is_dataclass_instance(value):
            validate_types(value, path)
            continue
        check_finite(value, path, allowed_non_finite(type(config), name))
        coerced = coerce(value, tp, path)
        if isinstance(value, int) and not isinstance(value, bool) and tp is float:
            continue  # an int where a float is declared is fine.
        same = coerced == value and type(coerced) is type(value) or (
            isinstance(value, float) and math.isnan(value) and isinstance(coerced, float) and math.isnan(coerced))
        if not same and not isinstance(value, (tuple, Mapping)):
            raise ConfigError(path, f"expected {_expected(tp)}, got {value!r}")


def diff(a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """Dotted paths whose values differ between two configs of the same shape (JSON view)."""
    fa, fb = flatten(to_json(a)), flatten(to_json(b))
    missing = object()
    out = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, missing), fb.get(key, missing)
        if va == vb or {id(va), id(vb)} & {id(missing)} and (va == {} or vb == {}):
            continue  # an empty mapping on one side is the absence of its keys on the other
        out.append((key, None if va is missing else va, None if vb is missing else vb))
    return out


# ----------------------------------------------------------------------------- JSON


def to_json(config: Any) -> Any:
    """A JSON-compatible view: dataclasses and mappings become dicts, tuples become lists."""
    if _is_dataclass_instance(config):
        return {f.name: to_json(getattr(config, f.name)) for f in dataclasses.fields(config) if f.init}
    if isinstance(config, Mapping):
        return {str(k): to_json(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [to_json(v) for v in config]
    if isinstance(config, float) and not math.isfinite(config):
        return str(config)
    if config is None or isinstance(config, (bool, int, float, str)):
        return config
    if hasattr(config, "item"):  # numpy scalar
        return config.item()
    raise ConfigError(type(config).__name__, f"cannot be written as JSON: {config!r}")


def _from_mapping(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    types_ = field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        path = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(path, f"unknown field; known fields: {_known(types_)}")
    kwargs = {}
    for name, value in data.items():
        path = f"{prefix}.{name}" if prefix else name
        kwargs[name] = coerce(value, types_[name], path)
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ConfigError(prefix or cls.__name__, str(err)) from None


def from_json(cls_or_base: Any, data: Mapping[str, Any]) -> Any:
    """Inverse of `to_json`.

    Args:
      cls_or_base: a dataclass type (fields missing from `data` take their defaults) or an
        instance (fields missing from `data` keep the instance's values).
      data: the dict `to_json` produced.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("<config>", f"expected a JSON object, got {type(data).__name__}")
    if isinstance(cls_or_base, type):
        return _from_mapping(cls_or_base, data, "")
    return _merge(cls_or_base, data, "")


def _merge(base: Any, data: Mapping[str, Any], prefix: str) -> Any:
    types_ = field_types(type(base))
    changes = {}
    for name, value in data.items():
        path = f"{prefix}.{name}" if prefix else name
        if name not in types_:
            raise ConfigError(path, f"unknown field; known fields: {_known(types_)}")
        current = getattr(base, name)
        if _is_dataclass_instance(current) and isinstance(value, Mapping):
            changes[name] = _merge(current, value, path)
        else:
            changes[name] = coerce(value, types_[name], path)
    return dataclasses.replace(base, **changes)


def dumps(config: Any) -> str:
    """`to_json` as an indented JSON string."""
    return json.dumps(to_json(config), indent=2, sort_keys=False)


def loads(cls_or_base: Any, text: str) -> Any:
    """Inverse of `dumps`."""
    return from_json(cls_or_base, json.loads(text))

