"""`python -m jaxhum.jobs [--host 127.0.0.1] [--port 8000] [--data DIR] [--max-concurrent N]`.

Serves the training-job API (see `jaxhum.jobs.app`) with uvicorn. Bad flags print one line,
`error: <flag>: <constraint>`, on stderr and exit with status 2 before anything starts. One
server per data directory (a lock file refuses a second). Stopping the server (Ctrl-C, SIGTERM)
stops its running jobs with a checkpoint; they are then `resumable`.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pathlib
import socket
import sys
from collections.abc import Sequence


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m jaxhum.jobs", description="The jaxhum training-job HTTP service.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", default="8000", help="TCP port (default 8000)")
    parser.add_argument("--data", default="jaxhum-jobs",
                        help="data directory: jobs.sqlite3, runs/, logs/ (default ./jaxhum-jobs)")
    parser.add_argument("--max-concurrent", default="1", help="jobs running at once; more wait in a queue (default 1)")
    parser.add_argument("--stop-timeout", default="60", help="seconds a stopping server waits for its jobs to "
                        "checkpoint before killing them (default 60)")
    return parser


def _int(value: str, flag: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise _UsageError(f"{flag}: must be an integer in [{low}, {high}], got {value!r}")
    return number


def _lock(data_dir: pathlib.Path) -> int:
    """Holds an exclusive lock on data_dir/server.lock for the life of the process."""
    fd = os.open(data_dir / "server.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _UsageError(f"--data: {data_dir} is served by another running server") from None
    return fd


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


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        port = _int(args.port, "--port", 1, 65535)
        max_concurrent = _int(args.max_concurrent, "--max-concurrent", 1, 1024)
        stop_timeout = _int(args.stop_timeout, "--stop-timeout", 0, 86400)
        data_dir = pathlib.Path(args.data).resolve()
        if data_dir.exists() and not data_dir.is_dir():
            raise _UsageError(f"--data: {data_dir} exists and is not a directory")
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _UsageError(f"--data: cannot create {data_dir} ({err.strerror})") from None
        lock = _lock(data_dir)
        _check_port(args.host, port)
    except _UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import uvicorn

    from jaxhum.jobs.app import create_app

    try:
        uvicorn.run(create_app(data_dir, max_concurrent, stop_timeout), host=args.host, port=port)
    finally:
        os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
