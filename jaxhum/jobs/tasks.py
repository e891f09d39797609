"""What the service can train, and the checking of a job's command line before it runs.

Tasks are the experiment modules found in the `experiments` package (each has `get_config`,
`PRESETS` and `main`), so a new experiment is servable without touching this package. A job's
command line is checked in-process with `jaxhum.run.main.prepare`, which parses and validates it
exactly as the job's own process will, without compiling or writing anything. Before that, the
files a command line names (`PATH_FIELDS`) are checked against the operator's roots without
opening them (`Task.check_paths`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pathlib
import pkgutil
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxhum.jobs import files
from jaxhum.jobs.limits import INT64_MAX, INT64_MIN, excerpt

__all__ = ["PATH_FIELDS", "POLICY_TYPES", "SERVER_FIELDS", "InvalidJob", "Task", "algorithm_argv", "discover",
           "outside_roots", "overrides_argv", "policy_of"]

# What the project trains: the run config's `algorithm`, in upper case (a request may use any case).
POLICY_TYPES = ("PPO", "SAC", "TD3")

# Set by the service from the request's own fields (or fixed by it): never as overrides.
SERVER_FIELDS = {
    "out_dir": "the service chooses the run directory",
    "num_timesteps": "use the request's num_timesteps or num_iterations",
    "seed": "use the request's seed",
    "algorithm": "use the request's policy_type",
    "compile_cache": "the server's environment chooses the compile cache (JAX runs the code it loads from it)",
}
# Fields that name a file or directory the run (and the in-process check) opens: a request may
# point them only under the operator's roots (`--allow-path`). `env.robot` is a path only when it
# names a spec file (not a registered robot); navigate's `env.low_level` except `untrained`.
PATH_FIELDS = ("env.model_path", "env.robot", "env.low_level", "eval_env.model_path", "eval_env.robot",
               "eval_env.low_level", "init_from")
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

    def requested_paths(self, argv: Sequence[str]) -> dict[str, str]:
        """The PATH_FIELDS a new run's command line (as the service builds it: overrides,
        --preset, --seed, --num-timesteps) sets to a non-empty value, by field; parsed as
        `prepare` does but not validated (a task's own checks may open a file: a robot spec),
        so nothing is built and no file is opened.

        Raises:
          InvalidJob: the runner's one-line message for a command line it refuses.
        """
        from jaxhum import config as config_lib
        from jaxhum.config import ConfigError
        from jaxhum.run import cli as run_cli_lib
        from jaxhum.run import main as run_main

        try:
            args = run_main.make_parser(self.name, self.presets).parse_intermixed_args(list(argv))
            flags = {"seed": args.seed, "num_timesteps": args.num_timesteps}
            overrides = {k: v for k, v in flags.items() if v is not None}
            overrides.update(config_lib.parse_overrides([*args.overrides, *args.positional]))
            config = config_lib.apply_overrides(self.get_config(args.preset), overrides)
        except (ConfigError, run_cli_lib.UsageError) as err:
            raise InvalidJob(" ".join(str(err).split())) from None
        found = {}
        for field in PATH_FIELDS:
            try:
                value = config_lib.get(config, field)
            except ConfigError:  # the task has no such field
                continue
            if value and _names_a_file(field, str(value)):
                found[field] = str(value)
        return found

    def check_paths(self, argv: Sequence[str], roots: Sequence[str]) -> None:
        """Every path the command line names (`requested_paths`) must be absolute and resolve
        under one of `roots` (resolved directories); an `init_from` run's checkpoints/ must hold
        no symbolic link (the runner reads it).

        Raises:
          InvalidJob: `outside_roots(field)` for a path outside the roots, the same line whether
            the path exists or not (nothing but os.path.realpath has looked at it); one naming
            the link for a link in init_from's checkpoints.
        """
        paths = self.requested_paths(argv)
        for field, value in paths.items():
            if not files.allowed(value, roots):
                raise InvalidJob(outside_roots(field))
        if "init_from" in paths:
            source = pathlib.Path(os.path.realpath(paths["init_from"]))
            try:
                link = files.first_link(source, source / "checkpoints")
            except files.Refused as err:
                raise InvalidJob(f"init_from: {err}; a checkpoint is read only without symbolic links") from None
            if link is not None:
                raise InvalidJob(f"init_from: {source / 'checkpoints' / link} is a symbolic link; a checkpoint is "
                                 f"read only without symbolic links")


def _names_a_file(field: str, value: str) -> bool:
    """Whether a PATH_FIELDS value is a path (a registered robot's name and navigate's `untrained`
    low level are not)."""
    from jaxhum import robots

    name = field.rpartition(".")[2]
    if name == "robot":
        return value not in robots.ROBOTS and value not in robots.SPEC_FILES
    if name == "low_level":
        return value != "untrained"
    return True


def outside_roots(field: str) -> str:
    """The one line that refuses a path outside the allowed roots (never says whether it exists)."""
    return f"{field}: must be an absolute path under an allowed root (--allow-path)"


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


def policy_of(policy_type: str) -> str | None:
    """The POLICY_TYPES entry `policy_type` names in any case ('sac' -> 'SAC'), or None."""
    return next((p for p in POLICY_TYPES if p.lower() == policy_type.lower()), None)


def algorithm_argv(policy: str) -> list[str]:
    """The command-line items that make a run train with `policy` (a POLICY_TYPES entry):
    `algorithm=sac|td3`; none for PPO, the runner's default, so a PPO job's command line is unchanged."""
    return [] if policy == "PPO" else [f"algorithm={policy.lower()}"]


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
