"""What really happened when the local store (:mod:`flowdeck.store`) fails: a full disk, a damaged file, or else.

SQLite reports a full filesystem in several ways (``SQLITE_FULL``, a generic "disk I/O error" when a WAL or
shared-memory file cannot grow, ``ENOSPC``); each is a :class:`DiskFullError` naming the path. A file that
is not a usable store is a :class:`StoreCorruptError` naming it and how to move it aside.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from flowdeck.errors import DiskFullError, StoreCorruptError, StoreError

__all__ = ["corrupt", "failure"]


def _free_bytes(path: Path) -> int | None:
    for candidate in (path, *path.parents):
        try:
            info = os.statvfs(candidate)
        except OSError:
            continue
        return info.f_bavail * info.f_frsize
    return None


# Below this much free space an I/O error of SQLite is taken to be the disk being full: SQLite reports
# a failed WAL or shared-memory extension as a generic "disk I/O error", not SQLITE_FULL.
_NEARLY_FULL = 1 << 20


def failure(exc: BaseException, path: Path, doing: str) -> StoreError:
    """The StoreError that says what really happened to the store at ``path``."""
    name = str(getattr(exc, "sqlite_errorname", ""))
    text = str(exc)
    free = _free_bytes(path.parent)
    full = (
        name.startswith("SQLITE_FULL") or "database or disk is full" in text
        or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT))
        or ((name.startswith("SQLITE_IOERR") or "disk I/O error" in text or isinstance(exc, OSError))
            and free is not None and free < _NEARLY_FULL)
    )
    if full:
        return DiskFullError(
            f"the disk is full: {doing} failed because the filesystem holding {path} has "
            f"{free if free is not None else 'no'} bytes free; nothing was written",
            hint=f"free some space on the filesystem of {path.parent} (or set FLOWDECK_HOME to another "
            "one) and retry; " + ("no store was created" if doing == "creating the store"
                                  else "the store itself is intact"),
        )
    if (name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in text or "not a database" in text
            or "no such table" in text or "no such column" in text):
        return corrupt(path, text)
    if isinstance(exc, OSError):
        return StoreError(f"{doing} failed: cannot use {path}: {exc.strerror or exc}",
                          hint="check FLOWDECK_HOME and the permissions of that directory")
    return StoreError(f"{doing} failed on the store {path}: {text}", hint="retry; report a bug if it persists")


def corrupt(path: Path, what: str) -> StoreCorruptError:
    """The error for a store file that is damaged (``what`` says how): flowdeck never starts over it."""
    return StoreCorruptError(
        f"the store {path} is damaged ({what}); flowdeck will not start a new store over it",
        hint=f"move it aside (`mv {path} {path}.damaged`; flowdeck then creates a new, empty store) and "
        "recreate your blocks and variables; `sqlite3 FILE .recover` may rescue data from the damaged copy",
    )
