"""Helpers for frozen, nested dataclass configs: dotted overrides, one coercion, one merge, JSON.

A config is a frozen dataclass whose fields are scalars (int, float, bool, str), tuples,
optional values, string literals, mappings (e.g. env overrides) or other frozen dataclasses.
Nothing here mutates a config: every change goes through `dataclasses.replace` and returns a
new object. Every error is a `ConfigError` whose message is one line, `<field>: <constraint>`.

    cfg = apply_overrides(cfg, ["ppo.learning_rate=1e-4", "env.episode_length=500"])
    cfg = apply_overrides(cfg, {"seed": 3})
    assert from_json(type(cfg), to_json(cfg)) == cfg
    task = merge(WalkConfig(), {"reward_weights": {"energy": 0.0}}, strict=True)

Values come from two kinds of caller, and `coerce` (hence `merge`) takes either:
text and JSON (the command line, `config.json`; the default) are parsed, so `5e7` is an int,
`64,64` a tuple and `none` None; Python values (`strict=True`, e.g. `jaxhum.envs.make`) must
already have their field's type (an int for a float and a list for a tuple are converted), and
errors name the Python types. The finiteness of floats is checked apart (`check_finite`), so a
saved config loads whatever it holds and its owner decides.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "ConfigError",
    "FrozenMapping",
    "apply_overrides",
    "as_mapping",
    "check_finite",
    "coerce",
    "diff",
    "dumps",
    "field_types",
    "flatten",
    "from_json",
    "get",
    "json_schema",
    "loads",
    "merge",
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


def check_finite(value: Any, field: str = "") -> None:
    """Raises `ConfigError(field, ...)` if `value` holds a float that is nan or +-inf.

    Walks tuples (`field[i]`), mappings and nested dataclasses (`field.key`); a learning rate of
    inf would train to the end on NaN, so no config float may be non-finite.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(field, f"must be a finite number, got {value}")
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_finite(item, f"{field}[{i}]")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_finite(item, _join(field, key))
    elif _is_dataclass_instance(value):
        for f in dataclasses.fields(value):
            check_finite(getattr(value, f.name), _join(field, f.name))


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


def _join(prefix: str, name: Any) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved annotation of a dataclass's init fields (`from __future__ import annotations` too)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # Unresolvable forward references: fall back to the raw annotations.
        hints = {}
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls) if f.init}


def _defaults(cls: type, field: str) -> Any:
    """`cls()`: the config of every default (a ConfigError if `cls` has a required field)."""
    try:
        return cls()
    except TypeError as err:
        raise ConfigError(field or cls.__name__, str(err)) from None


def _known(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "(none)"


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("collections.abc.", "")


_WORDS = {bool: "a bool (true/false)", int: "an int", float: "a float", str: "a string"}


def _expected(tp: Any) -> str:
    return _WORDS.get(tp, _type_name(tp))


def _refuse(value: Any, tp: Any, field: str, strict: bool, words: str = "") -> ConfigError:
    """The error for a `value` that is not a `tp`: in the command line's words, or (strict) in
    Python's (`expected int, got float 2.5`)."""
    if strict:
        return ConfigError(field, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return ConfigError(field, f"expected {words or _expected(tp)}, got {value!r}")


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


# ----------------------------------------------------------------------------- coercion


def coerce(value: Any, tp: Any, field: str, *, strict: bool = False) -> Any:
    """`value` as declared type `tp` (lists become tuples, mappings FrozenMappings), or raises.

    Args:
      value: text from the command line or a JSON value; with `strict`, a Python value.
      tp: a scalar type, a tuple, Optional/Union, Literal, Mapping or dataclass type, or Any.
      field: the dotted path errors name.
      strict: no text is parsed (a string is only a str), and a mapping's values are kept as
        given: their owner checks them (a task's `validate` names a weight that is no number).
    Raises:
      ConfigError: `<field>: expected <type>, got <value>` (or the constraint of a Literal,
        a tuple's length, a group of fields set as one value).
    """
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return _freeze(_parse_literal(value) if isinstance(value, str) and not strict else value)
    if origin in (typing.Union, types.UnionType):
        return _to_union(value, tp, field, strict)
    if origin is typing.Literal:
        return _to_literal(value, tp, field, strict)
    if tp in _SCALARS:
        return _SCALARS[tp](value, field, strict)
    if origin is tuple or tp is tuple:
        return _to_tuple(value, tp, field, strict)
    if origin in (Mapping, dict) or tp in (Mapping, dict):
        return _to_mapping(value, tp, field, strict)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _to_dataclass(value, tp, field, strict)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise _refuse(value, tp, field, strict)
    return value


def _to_bool(value: Any, field: str, strict: bool) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) and not strict else None
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise _refuse(value, bool, field, strict)


def _to_int(value: Any, field: str, strict: bool) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not strict and isinstance(value, float) and value.is_integer():
        return int(value)
    if not strict and isinstance(value, str):
        text = value.strip()
        with contextlib.suppress(ValueError):
            return int(text)
        with contextlib.suppress(ValueError):
            as_float = float(text)  # Accepts 5e7 and 5_000_000.0 for counts.
            if math.isfinite(as_float) and as_float.is_integer():
                return int(as_float)
    raise _refuse(value, int, field, strict)


def _to_float(value: Any, field: str, strict: bool) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not strict and isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value.strip())
    raise _refuse(value, float, field, strict)


def _to_str(value: Any, field: str, strict: bool) -> str:
    if isinstance(value, str):
        return value
    raise _refuse(value, str, field, strict)


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def _to_union(value: Any, tp: Any, field: str, strict: bool) -> Any:
    options = typing.get_args(tp)
    none_text = not strict and isinstance(value, str) and value.strip().lower() in ("none", "null")
    if type(None) in options and (value is None or none_text):
        return None
    for option in options:
        if option is not type(None):
            with contextlib.suppress(ConfigError):
                return coerce(value, option, field, strict=strict)
    raise _refuse(value, tp, field, strict)


def _to_literal(value: Any, tp: Any, field: str, strict: bool) -> Any:
    allowed = typing.get_args(tp)
    for option in allowed:
        if value == option or (not strict and isinstance(value, str) and str(option) == value.strip()):
            return option
    raise ConfigError(field, f"must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")


def _to_tuple(value: Any, tp: Any, field: str, strict: bool) -> tuple:
    if isinstance(value, str) and not strict:
        value = _split_sequence(value)
    if not isinstance(value, (list, tuple)):
        raise _refuse(value, tp, field, strict, f"{_type_name(tp)} (comma separated)")
    args = typing.get_args(tp)
    if not args:
        return tuple(_freeze(v) for v in value)
    if len(args) == 2 and args[1] is Ellipsis:
        args = (args[0],) * len(value)
    elif len(value) != len(args):
        raise ConfigError(field, f"expected {len(args)} values, got {len(value)}")
    return tuple(coerce(v, a, f"{field}[{i}]", strict=strict) for i, (v, a) in enumerate(zip(value, args)))


def _to_mapping(value: Any, tp: Any, field: str, strict: bool) -> FrozenMapping:
    if isinstance(value, str) and not strict:
        value = _parse_literal(value) if value.strip() else {}
    if not isinstance(value, Mapping):
        raise _refuse(value, tp, field, strict, "a mapping (JSON object)")
    if strict:
        return _freeze(value)
    args = typing.get_args(tp)
    value_tp = args[1] if len(args) == 2 else Any
    return FrozenMapping({str(k): coerce(v, value_tp, _join(field, k)) for k, v in value.items()})


def _to_dataclass(value: Any, tp: type, field: str, strict: bool) -> Any:
    if isinstance(value, tp):
        return value
    if isinstance(value, Mapping):
        return merge(_defaults(tp, field), value, field, strict=strict)
    if strict:
        raise _refuse(value, tp, field, strict)
    raise ConfigError(field, f"is a group of fields; set them one by one, e.g. {field}.<name>=...")


def merge(base: Any, overrides: Mapping[str, Any], prefix: str = "", *, strict: bool = False) -> Any:
    """A copy of dataclass instance `base` with `overrides` (field -> value) over its values.

    A group of fields (a nested dataclass) given as a mapping is merged field by field: the
    fields not given keep `base`'s values (balance's pushes stay on when only their magnitude is
    given). A mapping field given a mapping is merged key by key (`reward_weights={'energy': 0.0}`
    keeps the other weights). Every value is coerced to its field's type (`coerce`, `strict` for
    Python values); finiteness is `check_finite`'s.

    Raises:
      ConfigError: an unknown field (lists the known ones) or a value of the wrong type.
    """
    types_ = field_types(type(base))
    changes = {}
    for name, value in overrides.items():
        path = _join(prefix, name)
        if name not in types_:
            raise ConfigError(path, f"unknown field; known fields: {_known(types_)}")
        current = getattr(base, name)
        if isinstance(value, Mapping) and _is_dataclass_instance(current):
            changes[name] = merge(current, value, path, strict=strict)
            continue
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            value = {**current, **value}
        changes[name] = coerce(value, types_[name], path, strict=strict)
    return dataclasses.replace(base, **changes)


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


def as_mapping(config: Any) -> FrozenMapping:
    """A config as a hashable mapping of JSON values: every field, groups as nested mappings,
    tuples kept (`to_json`, frozen). `merge(type(config)(), as_mapping(config))` is `config`."""
    return _freeze(to_json(config))


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
    here = _join(prefix, head)
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
        path = _join(prefix, key)
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
        parts = str(path).split(".")
        if any(not p for p in parts):
            raise ConfigError(str(path), "empty field name in dotted path")
        config = _set(config, parts, value, "")
    return config


# ----------------------------------------------------------------------------- validation


def validate_types(config: Any, prefix: str = "") -> None:
    """Checks every field of a (nested) dataclass against its annotation; raises ConfigError.

    For values set in code: each must be what `coerce` makes of it (an int for a float is
    fine), and every float must be finite (`check_finite`).
    """
    for name, tp in field_types(type(config)).items():
        path = _join(prefix, name)
        value = getattr(config, name)
        if _is_dataclass_instance(value):
            validate_types(value, path)
            continue
        check_finite(value, path)
        coerced = coerce(value, tp, path)
        same_type = type(coerced) is type(value) or (type(value) is int and type(coerced) is float)
        if not (coerced == value and same_type) and not isinstance(value, (tuple, Mapping)):
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


def from_json(cls_or_base: Any, data: Mapping[str, Any]) -> Any:
    """Inverse of `to_json`: `merge` of `data` over the defaults of a dataclass type, or over an
    instance's values (fields missing from `data` keep them)."""
    if not isinstance(data, Mapping):
        raise ConfigError("<config>", f"expected a JSON object, got {type(data).__name__}")
    base = _defaults(cls_or_base, "") if isinstance(cls_or_base, type) else cls_or_base
    return merge(base, data)


def dumps(config: Any) -> str:
    """`to_json` as an indented JSON string."""
    return json.dumps(to_json(config), indent=2, sort_keys=False)


def loads(cls_or_base: Any, text: str) -> Any:
    """Inverse of `dumps`."""
    return from_json(cls_or_base, json.loads(text))


# ----------------------------------------------------------------------------- JSON Schema

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def json_schema(cls: type) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of dataclass config `cls`, as `to_json` writes it.

    Each field has its type, its default (from `cls()`) and its description (the field's entry
    in the `Attributes:` section of the docstring of `cls` or a base class); groups of fields are
    nested objects. No field is required: a config is given as overrides of its defaults.
    """
    return _object_schema(cls, _defaults(cls, cls.__name__))


def _object_schema(cls: type, defaults: Any) -> dict[str, Any]:
    docs = _attribute_docs(cls)
    properties = {}
    for name, tp in field_types(cls).items():
        value = getattr(defaults, name)
        if _is_dataclass_instance(value):
            schema = _object_schema(type(value), value)
        else:
            schema = {**_type_schema(tp), "default": to_json(value)}
        if name in docs:
            schema["description"] = docs[name]
        properties[name] = schema
    return {"title": cls.__name__, "type": "object", "properties": properties, "additionalProperties": False}


def _type_schema(tp: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _JSON_TYPES:
        return {"type": _JSON_TYPES[tp]}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_type_schema(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if (origin is tuple or tp is tuple) and len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": _type_schema(args[0])}
    if origin is tuple or tp is tuple:
        items = [_type_schema(a) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)} if items else {
            "type": "array"}
    if origin in (Mapping, dict) or tp in (Mapping, dict):
        return {"type": "object", "additionalProperties": _type_schema(args[1]) if len(args) == 2 else {}}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return json_schema(tp)
    return {}


_ENTRY = re.compile(r"(\w+(?:, \w+)*): (.*)")


def _attribute_docs(cls: type) -> dict[str, str]:
    """Field name -> its text in the Google-style `Attributes:` section of the docstrings of
    `cls` and its bases (`name: text` or `a, b: text`, continued on deeper-indented lines)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's entry wins
        lines = inspect.cleandoc(klass.__dict__.get("__doc__") or "").splitlines()
        start = next((i + 1 for i, line in enumerate(lines) if line.strip() == "Attributes:"), len(lines))
        names: list[str] = []
        for line in lines[start:]:
            if line.strip() and not line.startswith(" "):
                break  # the section ended
            entry = _ENTRY.fullmatch(line.strip()) if line.startswith("  ") and line[2:3] != " " else None
            if entry:
                names = entry.group(1).split(", ")
                docs.update({n: entry.group(2) for n in names})
            elif line.strip():
                docs.update({n: f"{docs[n]} {line.strip()}" for n in names})
    return docs
