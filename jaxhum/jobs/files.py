"""The files the service opens: inside its data directory, never through a symbolic link; and
the paths a request may name.

Logs, run directories and checkpoints are reached from the data directory one name at a time
(`os.open(name, O_NOFOLLOW | ..., dir_fd=parent)`), so a symbolic link anywhere below the data
directory (the file itself, a linked `logs/` or run directory) is refused, not followed, and
a name swapped for a link between a check and the open cannot be reached through either. Only
regular files with a single name are read or appended to (a hard link is another name of a
file that may lie anywhere on the disk).

A request's `env.model_path` and `init_from` must be absolute and, resolved
(`os.path.realpath`), lie under one of the operator's roots (`--allow-path`; `allowed`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import shutil
import stat
from collections.abc import Iterator, Sequence

__all__ = ["Refused", "allowed", "check_dir", "first_link", "is_file", "open_file", "read_tail", "remove",
           "subdirs"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LINKED = (errno.ELOOP, errno.ENOTDIR)  # what O_NOFOLLOW (| O_DIRECTORY) answers for a link


class Refused(Exception):
    """A path the service does not open (one line: the path and why)."""


def _parts(root: pathlib.Path, path: str | os.PathLike) -> tuple[str, ...]:
    """`path`'s names below `root` (empty for root itself); Refused if it is not below it."""
    try:
        parts = pathlib.PurePath(path).relative_to(root).parts
    except ValueError:
        raise Refused(f"{path} is not inside {root}") from None
    if ".." in parts:  # relative_to is lexical: runs/../../etc would climb out
        raise Refused(f"{path} is not inside {root}")
    return parts


@contextlib.contextmanager
def _dir_fd(root: pathlib.Path, parts: Sequence[str]) -> Iterator[int]:
    """An fd of the directory root/parts..., each name opened without following a link.

    Raises:
      FileNotFoundError: a name is missing. Refused: a name is a link or not a directory.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as err:
                if err.errno in _LINKED:
                    where = root.joinpath(*parts[:i + 1])
                    raise Refused(f"{where} is a symbolic link or not a directory") from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def open_file(root: pathlib.Path, path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
    """An fd of the regular file `path` below `root` (`flags` as os.open's, O_CREAT included),
    reached without following any link; the caller closes it.

    Raises:
      FileNotFoundError: the file (or a directory on the way) is missing.
      Refused: a link, not a regular file, a file with more than one name, or not below root.
    """
    parts = _parts(root, path)
    if not parts:
        raise Refused(f"{path} is a directory, not a file")
    with _dir_fd(root, parts[:-1]) as parent:
        try:
            # O_NONBLOCK: a FIFO planted there is refused below instead of blocking the open.
            fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=parent)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise Refused(f"{path} is a symbolic link") from None
            if err.errno in (errno.EISDIR, errno.ENXIO):  # a directory; a FIFO without a reader
                raise Refused(f"{path} is not a regular file") from None
            raise
    info = os.fstat(fd)
    why = ("is not a regular file" if not stat.S_ISREG(info.st_mode)
           else "has another name (a hard link)" if info.st_nlink != 1 else "")
    if why:
        os.close(fd)
        raise Refused(f"{path} {why}")
    os.set_blocking(fd, True)
    return fd


def is_file(root: pathlib.Path, path: str | os.PathLike) -> bool:
    """Whether `path` is a regular file below `root` that `open_file` would read."""
    try:
        os.close(open_file(root, path, os.O_RDONLY))
    except (OSError, Refused):
        return False
    return True


def read_tail(root: pathlib.Path, path: str | os.PathLike, limit: int) -> tuple[bytes, os.stat_result | None]:
    """(the last `limit` bytes, the file's stat) of `path` via `open_file`; (b'', None) if missing.

    Raises:
      Refused: as `open_file`.
    """
    try:
        fd = open_file(root, path, os.O_RDONLY)
    except FileNotFoundError:
        return b"", None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        f.seek(max(0, info.st_size - limit))
        return f.read(limit), info


def check_dir(root: pathlib.Path, path: str | os.PathLike) -> bool:
    """Whether the directory `path` (below or equal to `root`) exists, reached without links.

    Raises:
      Refused: a name on the way (or `path` itself) is a link or not a directory, or not below root.
    """
    try:
        with _dir_fd(root, _parts(root, path)):
            return True
    except FileNotFoundError:
        return False


def subdirs(root: pathlib.Path, path: str | os.PathLike) -> list[str]:
    """Names of the real directories (not links to one) in `path`; [] if it is missing.

    Raises:
      Refused: as `check_dir`.
    """
    try:
        with _dir_fd(root, _parts(root, path)) as fd, os.scandir(fd) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def first_link(root: pathlib.Path, path: str | os.PathLike) -> str | None:
    """The first symbolic link in the tree at `path` (relative to it), None without one (or
    without the tree); the walk never follows a link.

    Raises:
      Refused: as `check_dir`.
    """
    try:
        with _dir_fd(root, _parts(root, path)) as fd, contextlib.closing(os.fwalk(".", dir_fd=fd)) as walk:
            for top, dirs, names, top_fd in walk:
                for name in dirs + names:
                    with contextlib.suppress(FileNotFoundError):
                        if stat.S_ISLNK(os.stat(name, dir_fd=top_fd, follow_symlinks=False).st_mode):
                            return os.path.normpath(os.path.join(top, name))
    except (FileNotFoundError, NotADirectoryError):  # no tree (root itself missing or a file)
        pass
    return None


def remove(root: pathlib.Path, path: str | os.PathLike) -> bool:
    """Deletes the file or directory tree `path` below `root`; a link there is removed itself,
    its target left alone. False (nothing removed) when a folder on the way is a link or
    `path` is not below root; True otherwise, also when there was nothing to remove."""
    try:
        parts = _parts(root, path)
        if not parts:
            return False
        with _dir_fd(root, parts[:-1]) as parent:
            info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(parts[-1], dir_fd=parent)  # fd-based: never follows a link inside the tree
            else:
                os.unlink(parts[-1], dir_fd=parent)
    except FileNotFoundError:
        pass
    except Refused:
        return False
    return True


def allowed(value: str, roots: Sequence[str]) -> bool:
    """Whether `value` is an absolute path that resolves (os.path.realpath: every link on the
    way followed) to one of `roots` (resolved directories) or below one.

    Says nothing about whether the path exists: a missing path under a root is allowed (the
    runner then reports it), one outside every root is refused either way.
    """
    if not value or not os.path.isabs(value):
        return False
    try:
        real = os.path.realpath(value)
    except (OSError, ValueError):  # a NUL byte, a name too long
        return False
    return any(os.path.commonpath([real, root]) == root for root in roots)
