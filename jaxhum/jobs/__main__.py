"""`python -m jaxhum.jobs [--host 127.0.0.1] [--port 8000] [--data DIR] [--token-file PATH] [--allow-path DIR] ...`.

Serves the training-job API (see `jaxhum.jobs.app`) with uvicorn. Bad flags print one line,
`error: <flag>: <constraint>`, on stderr and exit with status 2 before anything starts (the
flags, the token and the host are checked before the data directory is created). One server per
data directory (a lock file refuses a second).

Stopping (SIGINT/Ctrl-C or SIGTERM): the server stops accepting connections and sends its running
jobs SIGTERM at once (each saves a checkpoint and exits; it is then `resumable`), ends every
streaming response (`GET /logs/{id}.log?follow=true`), and exits within `--stop-timeout` seconds
of the signal whatever its clients do: a job still running then is killed (SIGKILL; it loses the
work since its last checkpoint), a request still open is cancelled. A second Ctrl-C exits at once,
without waiting for the jobs (they save their checkpoints on their own; the next server settles them).

With a token (`--token-file PATH`, else the environment variable JAXHUM_JOBS_TOKEN), every
route but /health needs `Authorization: Bearer <token>`. Without one the server binds only a
loopback address, unless `--insecure` says otherwise (it then warns on stderr).

`--allow-path DIR` (repeatable) names the directories a job's `env.model_path` and `init_from`
may point into (default: the data directory alone); each must be an existing directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import ipaddress
import os
import pathlib
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from jaxhum.jobs.limits import TIMESTEPS_MAX, TOKEN_ENV, Limits

_TOKEN_CHARS = 16  # the shortest token accepted; `secrets.token_urlsafe(32)` gives 43
STOP_TIMEOUT_S = 60  # a job's checkpoint (after its first, compiling iteration) fits in it


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    defaults = Limits()
    parser = _Parser(prog="python -m jaxhum.jobs", description="The jaxhum training-job HTTP service.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine "
                        "only); any other than a loopback address needs a token or --insecure")
    parser.add_argument("--port", default="8000", help="TCP port (default 8000)")
    parser.add_argument("--data", default="jaxhum-jobs",
                        help="data directory: jobs.sqlite3, runs/, logs/ (default ./jaxhum-jobs)")
    parser.add_argument("--max-concurrent", default="1", help="jobs running at once; more wait in a queue (default 1)")
    parser.add_argument("--stop-timeout", default=str(STOP_TIMEOUT_S), help="seconds from SIGTERM/SIGINT to the "
                        "server's exit: its jobs have that long to checkpoint before they are killed, its open "
                        f"requests before they are cancelled (default {STOP_TIMEOUT_S})")
    parser.add_argument("--token-file", help=f"file holding the bearer token every route but /health needs "
                        f"(default: the environment variable {TOKEN_ENV}; none: no authentication)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback --host without a token (anyone who reaches it can run jobs)")
    parser.add_argument("--max-body-bytes", default=str(defaults.max_body_bytes),
                        help=f"request body size; larger: 413 (default {defaults.max_body_bytes})")
    parser.add_argument("--max-overrides", default=str(defaults.max_overrides),
                        help=f"items in a request's overrides; more: 413 (default {defaults.max_overrides})")
    parser.add_argument("--max-envs", default=str(defaults.max_envs),
                        help=f"a run's ppo.num_envs (off_policy.num_envs for SAC, TD3); more: 400 "
                        f"(default {defaults.max_envs})")
    parser.add_argument("--max-seeds", default=str(defaults.max_seeds),
                        help=f"a run's num_seeds; more: 400 (default {defaults.max_seeds})")
    parser.add_argument("--max-timesteps", default=str(defaults.max_timesteps),
                        help=f"env steps a run trains to, per seed; more: 400 (default {defaults.max_timesteps})")
    parser.add_argument("--allow-path", action="append", default=[], metavar="DIR",
                        help="a directory a job's env.model_path and init_from may point into (repeatable; "
                        "default: the data directory alone)")
    return parser


@dataclasses.dataclass(frozen=True)
class Settings:
    """The checked command line.

    Attributes:
      host, port: where to listen.
      data_dir: the data directory (absolute; not created yet).
      max_concurrent, stop_timeout: as the flags.
      limits: the request limits (`--max-*`; `--allow-path` as `allowed_roots`, resolved).
      token: the bearer token, None for none.
      insecure: `--insecure` was given and is needed (a non-loopback host without a token).
    """

    host: str
    port: int
    data_dir: pathlib.Path
    max_concurrent: int
    stop_timeout: int
    limits: Limits
    token: str | None
    insecure: bool


def _int(value: str, flag: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise _UsageError(f"{flag}: must be an integer in [{low}, {high}], got {value!r}")
    return number


def _allowed_root(value: str) -> str:
    """An --allow-path value, resolved (os.path.realpath); it must be an existing directory."""
    root = os.path.realpath(value) if value else ""  # realpath('') is the working directory
    if not os.path.isdir(root):
        raise _UsageError(f"--allow-path: must be an existing directory, got {value!r}")
    return root


def _check_folders(data_dir: pathlib.Path) -> None:
    """runs/ and logs/, where they exist, must be directories of their own, not links: the
    service opens a job's files only inside the data directory, never through a link."""
    for name in ("runs", "logs"):
        folder = data_dir / name
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise _UsageError(f"--data: {folder} is a symbolic link or not a directory; the service keeps its "
                              f"runs and logs in directories inside the data directory (point --data elsewhere)")


def _lock(data_dir: pathlib.Path) -> int:
    """Holds an exclusive lock on data_dir/server.lock for the life of the process."""
    try:
        fd = os.open(data_dir / "server.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise _UsageError(f"--data: cannot open {data_dir / 'server.lock'} ({err.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _UsageError(f"--data: {data_dir} is served by another running server") from None
    return fd


def _check_not_served(data_dir: pathlib.Path) -> None:
    """Refuses a data directory another server holds, without creating anything (the lock file is
    only opened if it exists; `_lock` takes it once every other check has passed)."""
    try:
        fd = os.open(data_dir / "server.lock", os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    except OSError as err:
        raise _UsageError(f"--data: cannot open {data_dir / 'server.lock'} ({err.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _UsageError(f"--data: {data_dir} is served by another running server") from None
    finally:
        os.close(fd)  # closing releases the probe's lock


def _check_port(host: str, port: int) -> None:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as err:
        raise _UsageError(f"--host: cannot resolve {host!r} ({err.strerror})") from None
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise _UsageError(f"--port: cannot listen on {host}:{port} ({err.strerror})") from None


def _token(token_file: str | None, environ: Mapping[str, str]) -> str | None:
    """The bearer token from --token-file, else from the environment (an empty variable: none)."""
    if token_file is not None:
        source = "--token-file"
        try:
            token = pathlib.Path(token_file).read_text().strip()
        except OSError as err:
            raise _UsageError(f"--token-file: cannot read {token_file} ({err.strerror})") from None
        except UnicodeDecodeError:
            raise _UsageError(f"--token-file: {token_file} is not a text file") from None
    else:
        source, token = TOKEN_ENV, environ.get(TOKEN_ENV, "").strip()
        if not token:
            return None
    # It travels in a header: printable ASCII without spaces; never echoed in a message.
    if len(token) < _TOKEN_CHARS or not all(33 <= ord(c) <= 126 for c in token):
        raise _UsageError(f"{source}: the token must be at least {_TOKEN_CHARS} printable ASCII characters without "
                          f"spaces, got {len(token)} characters")
    return token


def _is_loopback(host: str, port: int) -> bool:
    """Whether every address `host` names is a loopback one (127.0.0.0/8, ::1)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except socket.gaierror as err:
        raise _UsageError(f"--host: cannot resolve {host!r} ({err.strerror})") from None
    return all(ipaddress.ip_address(a.partition("%")[0]).is_loopback for a in addresses)


def settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The checked command line; reads the token file and resolves the host, creates nothing.

    Raises:
      _UsageError: one line, `<flag>: <constraint>`.
    """
    args = _parser().parse_args(argv)
    port = _int(args.port, "--port", 1, 65535)
    max_concurrent = _int(args.max_concurrent, "--max-concurrent", 1, 1024)
    stop_timeout = _int(args.stop_timeout, "--stop-timeout", 0, 86400)
    limits = Limits(
        max_body_bytes=_int(args.max_body_bytes, "--max-body-bytes", 1024, 1 << 30),
        max_overrides=_int(args.max_overrides, "--max-overrides", 0, 1 << 20),
        max_envs=_int(args.max_envs, "--max-envs", 1, 1 << 31),
        max_seeds=_int(args.max_seeds, "--max-seeds", 1, 1 << 16),
        max_timesteps=_int(args.max_timesteps, "--max-timesteps", 1, TIMESTEPS_MAX),
        allowed_roots=tuple(dict.fromkeys(_allowed_root(p) for p in args.allow_path)),
    )
    token = _token(args.token_file, os.environ if environ is None else environ)
    exposed = not _is_loopback(args.host, port)
    if exposed and token is None and not args.insecure:
        raise _UsageError(f"--host: {args.host} is reachable from other machines; give a token (--token-file "
                          f"or {TOKEN_ENV}), or --insecure to serve it without authentication")
    return Settings(
        host=args.host, port=port, data_dir=pathlib.Path(args.data).resolve(), max_concurrent=max_concurrent,
        stop_timeout=stop_timeout, limits=limits, token=token, insecure=exposed and token is None,
    )


def serve(app: Any, config: Settings) -> None:
    """Runs `app` (create_app's) with uvicorn until a signal stops it (see the module doc)."""
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            app.state.manager.begin_stop()  # at once: uvicorn runs the app's shutdown only after its requests end

    # The graceful wait for open requests starts with the stop, as the jobs' deadline does.
    # A second Ctrl-C skips the app's shutdown: the jobs, signalled already, save their checkpoints
    # on their own, and the next server settles them.
    _Server(uvicorn.Config(app, host=config.host, port=config.port,
                           timeout_graceful_shutdown=config.stop_timeout)).run()


def main(argv: Sequence[str] | None = None, **app_options: Any) -> int:
    """The command line (`argv`; default sys.argv); `app_options`: more arguments of
    `create_app` (tests: a stand-in `program` for the jobs, an `after_spawn` fault)."""
    try:
        config = settings(argv)
        data_dir = config.data_dir
        if data_dir.exists() and not data_dir.is_dir():
            raise _UsageError(f"--data: {data_dir} exists and is not a directory")
        _check_folders(data_dir)
        # Every check that can fail comes before anything is written: a busy port or a data
        # directory held by another server leaves no directory and no lock file behind.
        _check_not_served(data_dir)
        _check_port(config.host, config.port)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _UsageError(f"--data: cannot create {data_dir} ({err.strerror})") from None
        lock = _lock(data_dir)
    except _UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if config.insecure:
        print(f"WARNING: --insecure: serving {config.host}:{config.port} WITHOUT AUTHENTICATION; anyone who can "
              f"reach it can run jobs and read their logs", file=sys.stderr, flush=True)

    from jaxhum.jobs.app import create_app

    try:
        app = create_app(data_dir, config.max_concurrent, config.stop_timeout, limits=config.limits,
                         token=config.token, **app_options)
        serve(app, config)
    finally:
        os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
