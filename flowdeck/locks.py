"""Advisory file locks (``flock``) for the worker's hot path: git clones, the git cache, pull destinations.

The ``filelock`` package (still used by the embedded store) takes about 20 ms to import since its 4.x
releases, which a flow run on a worker would pay before its first line for one ``flock`` call. This is that
call, with a deadline and a message. It is the same lock as ``filelock``'s on POSIX (``flock`` on the same
file), so a Prefect process holding ``<dir>.lock`` through ``filelock`` and flowdeck exclude each other.
Where ``fcntl`` does not exist (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

__all__ = ["LockTimeout", "held"]

_POLL = 0.05


class LockTimeout(Exception):
    """The lock stayed taken for longer than the wait allowed; the caller turns it into its own error."""


@contextlib.contextmanager
def held(path: Path | str, *, wait: float, remove: bool = False, mode: int = 0o644,
         on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed, never through a symlink).

    Waits at most ``wait`` seconds, then raises :class:`LockTimeout`; ``on_wait`` is called once, when the
    lock is first found taken. With ``remove``, the file is deleted on release (a waiter that opened the
    old file notices and locks the new one); leave it off for files other programs lock too, which may
    not check.
    """
    if fcntl is None:
        yield
        return
    deadline = time.monotonic() + wait
    told = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() > deadline:
                raise LockTimeout(str(path)) from None
            if not told and on_wait is not None:
                on_wait()
            told = True
            time.sleep(_POLL)
            continue
        if not remove:
            break
        # The holder before us may have deleted the file after we opened it: lock the one in place.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        if remove:
            with contextlib.suppress(OSError):
                os.unlink(path)
        os.close(fd)  # closing releases the lock
