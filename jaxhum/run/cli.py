"""The one command-line helper every jaxhum command uses: argparse with one-line errors.

    parser = ArgumentParser(prog="python -m jaxhum.evaluate", description=...)
    parser.add_argument("run_dir", type=run_dir_arg)
    ...
    except (UsageError, ConfigError) as err: print(f"error: {err}", file=sys.stderr); return 2

A bad command line (unknown flag, missing value) raises `UsageError` with argparse's message,
instead of printing the usage and exiting, so every command reports bad input as one
`error: ...` line with exit status 2.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any, NoReturn


class UsageError(Exception):
    """A bad command line (unknown flag, missing value): one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose errors raise `UsageError` (one line) instead of exiting.

    `error_prefix` starts each such message (the after-training tools say `arguments: ...`).
    """

    def __init__(self, *args: Any, error_prefix: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.error_prefix = error_prefix

    def error(self, message: str) -> NoReturn:  # argparse prints the usage and exits; we want one line
        raise UsageError(f"{self.error_prefix}{message}")


def run_dir_arg(value: str | pathlib.Path) -> pathlib.Path:
    """A run directory (one with a checkpoints/ folder), or a UsageError naming `run_dir`."""
    from jaxhum.run.checkpoint import CHECKPOINT_DIR

    path = pathlib.Path(value)
    if not path.is_dir():
        raise UsageError(f"run_dir: no such directory: {path}")
    if not (path / CHECKPOINT_DIR).is_dir():
        raise UsageError(f"run_dir: {path} is not a run directory (no {CHECKPOINT_DIR}/)")
    return path
