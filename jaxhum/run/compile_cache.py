"""The persistent XLA compilation cache, on by default for runs and for the tools that load them.

A second run of the same config (or an evaluation, export, sim2sim, falls or robustness run of a
saved one) loads its compiled programs from disk instead of compiling them again. `enable` is
called once per process before the first compile that matters: by `jaxhum.run.loop.train` (every
run, from the command line or from Python) and by `jaxhum.run.checkpoint.load_run(...,
compile_cache=True)` (every tool; a plain `load_run` in a user's code leaves JAX's settings alone).

Where the cache lives, first match wins (`RunConfig.compile_cache`):
  'off'                       no persistent cache (this process compiles everything);
  a path                      that directory;
  '' (the default)            the directory JAX already uses (`JAX_COMPILATION_CACHE_DIR`, or
                              `jax.config.update('jax_compilation_cache_dir', ...)` in code),
                              else `$XDG_CACHE_HOME/jaxhum/xla`, else `~/.cache/jaxhum/xla`.

Small compiles are cached too: JAX skips programs that compiled in under
`jax_persistent_cache_min_compile_time_secs` (1 s by default), and a run has dozens of small
ones (key splits, slicing, the state's transfers) that add up to seconds on a laptop CPU; the
threshold is set to `MIN_COMPILE_TIME_S` unless `JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`
is set. The cache grows without bound (JAX's default; delete the folder to reclaim the space, or
set `JAX_COMPILATION_CACHE_MAX_SIZE` in bytes, which needs the `filelock` package).

The cache never changes a run's results: an entry is the executable XLA compiled for the same
program, options and device, keyed by all of them, and the field is one a resumed run may change.
A cache folder that cannot be created or written degrades to one warning line and no cache. JAX
runs code it loads from the cache: keep the folder private (JAX's own warning).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping

from jaxhum import config as config_lib

__all__ = ["OFF", "MIN_COMPILE_TIME_S", "CacheStats", "check", "default_dir", "enable", "resolve", "stats"]

OFF = "off"
MIN_COMPILE_TIME_S = 0.0  # cache every compile: loading one is a file read, compiling it tens of ms or more
_ENV_DIR = "JAX_COMPILATION_CACHE_DIR"
_ENV_MIN_TIME = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
_HIT, _WRITE = "/jax/compilation_cache/cache_hits", "/jax/compilation_cache/cache_misses"


def default_dir(environ: Mapping[str, str] | None = None) -> pathlib.Path:
    """The user's cache folder for jaxhum's compiles: $XDG_CACHE_HOME/jaxhum/xla or ~/.cache/jaxhum/xla."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "jaxhum" / "xla"


def check(setting: str, field: str = "compile_cache") -> None:
    """A `compile_cache` setting is '' (the default folder), 'off' or a directory path.

    Only what can never work is refused: a path that is an existing file (or holds a NUL byte). A
    directory that turns out not to be writable is a warning at `enable`, not bad input.

    Raises:
      ConfigError: one line naming `field`.
    """
    allowed = f"must be '' (the default folder), '{OFF}' (no cache) or a directory path"
    config_lib.require("\0" not in setting, field, f"{allowed}; got a path holding a NUL byte")
    config_lib.require(setting == setting.strip(), field, f"{allowed} without surrounding spaces, got {setting!r}")
    if setting and setting != OFF:
        path = pathlib.Path(setting).expanduser()
        config_lib.require(not (path.exists() and not path.is_dir()), field,
                           f"{allowed}; {setting} is an existing file, not a directory")


def resolve(setting: str, environ: Mapping[str, str] | None = None) -> pathlib.Path | None:
    """The cache directory a setting names (None: 'off'); see the module docstring for the order."""
    import jax

    if setting == OFF:
        return None
    if setting:
        return pathlib.Path(setting).expanduser().absolute()
    environ = os.environ if environ is None else environ
    current = jax.config.jax_compilation_cache_dir or environ.get(_ENV_DIR)
    return pathlib.Path(current).expanduser().absolute() if current else default_dir(environ)


def _unwritable(path: pathlib.Path) -> str | None:
    """Why JAX could not keep its cache in `path` (None: it can): creates it and writes a probe file."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as err:
        return f"{type(err).__name__}: {err.strerror or err}"
    return None


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


def enable(setting: str = "", warn: Callable[[str], None] = _warn) -> pathlib.Path | None:
    """Turns the persistent compilation cache on in `resolve(setting)` (or off); returns the folder.

    Call it before the first compile: a program compiled earlier in the process is not looked up.
    Idempotent; a different folder than the process already uses takes over from the next compile.
    A folder that cannot be created or written is one `warn` line and no cache (returns None).
    """
    import jax

    path = resolve(setting)
    why = None if path is None else _unwritable(path)
    if why is not None:
        warn(f"compile_cache: cannot use {path} ({why}); compiling without a persistent cache "
             f"(set compile_cache=off, another directory, or {_ENV_DIR}, to silence this)")
        path = None
    if path is None:
        _switch(enabled=False, directory=jax.config.jax_compilation_cache_dir)
        return None
    if _ENV_MIN_TIME not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    _switch(enabled=True, directory=str(path))
    _listen()
    return path


def _switch(enabled: bool, directory: str | None) -> None:
    """Sets JAX's cache flags; resets JAX's cache object when they change, since JAX decides once
    per process, at the first compile, whether and where it caches."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache  # reset_cache: public since jax 0.4.26

    if (jax.config.jax_enable_compilation_cache, jax.config.jax_compilation_cache_dir) == (enabled, directory):
        return
    jax.config.update("jax_enable_compilation_cache", enabled)
    jax.config.update("jax_compilation_cache_dir", directory)
    compilation_cache.reset_cache()


@dataclasses.dataclass
class CacheStats:
    """Programs loaded from the persistent cache (`hits`) and compiled and written to it
    (`writes`) by this process since `enable` first ran, from JAX's monitoring events."""

    hits: int = 0
    writes: int = 0


_STATS = CacheStats()
_LOCK = threading.Lock()


def _count(event: str, **kwargs: object) -> None:
    del kwargs
    if event in (_HIT, _WRITE):
        with _LOCK:
            if event == _HIT:
                _STATS.hits += 1
            else:
                _STATS.writes += 1


_LISTENING: list[bool] = []


def _listen() -> None:
    """Registers the counter with jax.monitoring once per process."""
    import jax

    with _LOCK:
        if not _LISTENING:
            jax.monitoring.register_event_listener(_count)
            _LISTENING.append(True)


def stats() -> CacheStats:
    """A copy of this process's counts (zeros before `enable`)."""
    with _LOCK:
        return dataclasses.replace(_STATS)
