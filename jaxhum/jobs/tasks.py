"""What the service can train, and the checking of a job's command line before it runs.

Tasks are the experiment modules found in the `experiments` package (each has `get_config`,
`PRESETS` and `main`), so a new experiment is servable without touching this package. A job's
command line is checked in-process with `jaxhum.run.main.prepare`, which parses and validates it
exactly as the job's own process will, without compiling or writing anything.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxhum.jobs.limits import INT64_MAX, INT64_MIN, excerpt

__all__ = ["POLICY_TYPES", "SERVER_FIELDS", "InvalidJob", "Task", "discover", "overrides_argv"]

POLICY_TYPES = ("PPO",)  # what the project trains

# Set by the service from the request's own fields (or fixed by it): never as overrides.
SERVER_FIELDS = {
    "out_dir": "the service chooses the run directory",
    "num_timesteps": "use the request's num_timesteps or num_iterations",
    "seed": "use the request's seed",
}
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_FIELD_CHARS = 100  # far longer than any dotted field name of a run config
_INTEGER = re.compile(r"\s*[+-]?\d[\d_]*\s*")  # an item the runner may read as an int (underscores too)


class InvalidJob(ValueError):
    """A job request the service refuses; `str(err)` is one line, `<field>: <constraint>`."""


@dataclasses.dataclass(frozen=True)
class Task:
    """One experiment module: `python -m experiments.<name>`."""

    name: str
    get_config: Callable[[str | None], Any]
    presets: tuple[str, ...]

    def prepare(self, argv: Sequence[str]) -> Any:
        """`jaxhum.run.main.prepare` on this experiment's command line.

        Raises:
          InvalidJob: the runner's one-line message (bad flag, field, value or resume directory).
        """
        from jaxhum.config import ConfigError
        from jaxhum.run import cli as run_cli_lib
        from jaxhum.run import main as run_main
        from jaxhum.run.checkpoint import CheckpointError

        try:
            return run_main.prepare(self.get_config, list(argv), self.name, self.presets)
        except (ConfigError, CheckpointError, run_cli_lib.UsageError) as err:
            raise InvalidJob(" ".join(str(err).split())) from None


def discover(package: str = "experiments") -> dict[str, Task]:
    """Experiment modules of `package` that define get_config, PRESETS and main, by name."""
    pkg = importlib.import_module(package)
    found = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        if all(hasattr(module, a) for a in ("get_config", "PRESETS", "main")):
            found[info.name] = Task(info.name, module.get_config, tuple(module.PRESETS))
    return found


def _value_text(value: Any) -> str:
    """An override value as the runner's command line reads it (lists as 'a,b')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_value_text(v) for v in value)
    return str(value)


def overrides_argv(overrides: Sequence[str] | Mapping[str, Any]) -> list[str]:
    """Request overrides as `field=value` command-line items, checked for form and ownership.

    A mapping `{"ppo.num_envs": 4}` and a list `["ppo.num_envs=4"]` give the same items. Every
    item must start with a dotted field name, so none can pass as a flag (`--resume=...`).

    Raises:
      InvalidJob: a malformed item, a field the service sets itself (SERVER_FIELDS) or an
        integer (or an integer item of a list) outside the 64-bit range.
    """
    if isinstance(overrides, Mapping):
        items = [f"{k}={_value_text(v)}" for k, v in overrides.items()]
    else:
        items = list(overrides)
    out = []
    for item in items:
        field, sep, value = item.partition("=")
        field = field.strip()
        if not sep or not _FIELD.fullmatch(field):
            raise InvalidJob(f"overrides: expected field=value with a dotted field name, got {excerpt(item)}")
        if len(field) > _FIELD_CHARS:  # every message below names it
            raise InvalidJob(f"overrides: a field name has at most {_FIELD_CHARS} characters, got {excerpt(field)}")
        if any(ord(c) < 32 for c in value):
            raise InvalidJob(f"{field}: control characters are not allowed in a value")
        if field in SERVER_FIELDS:
            raise InvalidJob(f"{field}: cannot be set as an override ({SERVER_FIELDS[field]})")
        _check_integers(field, value)
        out.append(f"{field}={value.strip()}")
    return out


def _check_integers(field: str, value: str) -> None:
    """Integers in an override's text (a list's items too) must fit in 64 bits: larger ones
    would overflow the job table (and JAX's int32/int64 arrays) instead of being refused."""
    for piece in value.split(","):
        if not _INTEGER.fullmatch(piece):
            continue
        digits = piece.strip().lstrip("+-").replace("_", "").lstrip("0")
        # 19 digits hold every int64; int() of a longer text is slow (and refused past 4300 digits).
        if len(digits) > 19 or not INT64_MIN <= int(piece.replace("_", "")) <= INT64_MAX:
            raise InvalidJob(f"{field}: integers must be in [{INT64_MIN}, {INT64_MAX}] (64 bits), "
                             f"got {excerpt(piece.strip())}")
