"""Writing inside a pull's destination without ever following a symlink out of it.

A destination may hold symlinks: a link inside it that leads to another place inside it is followed, as
before; a link that leads outside it is never written through. Paths are walked one directory at a time
from a descriptor of the destination (``openat``-style, with ``O_NOFOLLOW``), so that neither a link
created on the way (``link/sub`` where ``sub`` does not exist yet) nor one swapped in after a check can
send a file elsewhere. A file that is itself a symlink is replaced by the pulled file (a rename replaces
the link, it does not write through it).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from flowdeck.errors import StorageError

__all__ = ["inside", "open_parent", "replace_into", "unlink_from"]

_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# Platforms without *at() calls (Windows) fall back to checking resolved paths. `os.replace` is never listed
# in `os.supports_dir_fd` (CPython lists `os.rename` for renameat, which both use), so ask for that.
_AT = all(f in os.supports_dir_fd for f in (os.open, os.mkdir, os.rename, os.unlink))


def inside(path: str, root: str) -> bool:
    """True when the resolved ``path`` is ``root`` or below it (both already resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _outside(rel: str, where: str, target: Path) -> StorageError:
    return StorageError(
        f"cannot pull {rel!r}: {where} is a symlink leading outside {target}",
        hint="remove that symlink (or replace it with a directory), then pull again",
    )


def _not_a_directory(rel: str, where: str, target: Path) -> StorageError:
    return StorageError(
        f"cannot pull {rel!r}: {where} is a file in {target}, where the tree has a directory",
        hint="move that file away, then pull again",
    )


@contextlib.contextmanager
def open_parent(target: Path, rel: str, *, create: bool) -> Iterator[tuple[int | None, str]]:
    """Yield ``(dir_fd, name)`` for writing ``rel`` under ``target``: the descriptor of its directory
    (created when ``create``, never through a link leading outside) and the last component.

    Raises StorageError for a link leading outside, FileNotFoundError when a directory is missing and
    ``create`` is false. Without ``*at()`` support ``dir_fd`` is None and ``name`` an absolute path.
    """
    parts = rel.split("/")
    real_root = os.path.realpath(target)
    if not _AT:
        yield None, _checked_path(target, real_root, rel, parts, create)
        return
    fd = os.open(real_root, _O_DIR)
    try:
        for depth, part in enumerate(parts[:-1], start=1):
            child = _step(fd, part, target, real_root, rel, "/".join(parts[:depth]), create)
            os.close(fd)
            fd = child
        yield fd, parts[-1]
    finally:
        os.close(fd)


def _step(fd: int, part: str, target: Path, real_root: str, rel: str, walked: str, create: bool) -> int:
    """Open the directory ``part`` below ``fd``, refusing a link that leads outside."""
    try:
        return os.open(part, _O_DIR | _O_NOFOLLOW, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o777, dir_fd=fd)
        return os.open(part, _O_DIR | _O_NOFOLLOW, dir_fd=fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            raise
    # A symlink (ELOOP under O_NOFOLLOW) or a file: only a link that stays inside is followed.
    path = os.path.join(real_root, walked)
    if not os.path.islink(path):
        raise _not_a_directory(rel, walked, target)
    real = os.path.realpath(path)
    if not inside(real, real_root):
        raise _outside(rel, walked, target)
    if not os.path.isdir(real):
        raise _not_a_directory(rel, walked, target)
    return os.open(real, _O_DIR)


def _checked_path(target: Path, real_root: str, rel: str, parts: list[str], create: bool) -> str:
    for depth in range(1, len(parts)):
        walked = "/".join(parts[:depth])
        path = os.path.join(real_root, *parts[:depth])
        if os.path.lexists(path):
            if not inside(os.path.realpath(path), real_root):
                raise _outside(rel, walked, target)
            if not os.path.isdir(path):
                raise _not_a_directory(rel, walked, target)
        elif create:
            os.mkdir(path)
        else:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
    return os.path.join(real_root, *parts)


def replace_into(target: Path, rel: str, source: Path) -> None:
    """Move ``source`` to ``target/rel`` with one atomic rename, creating the directories on the way."""
    with open_parent(target, rel, create=True) as (fd, name):
        if fd is None:
            os.replace(source, name)
        else:
            os.replace(source, name, dst_dir_fd=fd)


def unlink_from(target: Path, rel: str) -> None:
    """Delete ``target/rel`` (a link is deleted, not what it points to)."""
    with open_parent(target, rel, create=False) as (fd, name):
        if fd is None:
            os.unlink(name)
        else:
            os.unlink(name, dir_fd=fd)
