"""The manifest stored beside a pushed tree: every path with its size, sha256 and mode.

It is what makes pushes incremental (a file whose sha256 the manifest already lists is not sent again) and
pulls exact (a pull fetches the manifest's files only, so stale objects left in the folder never come back,
and verifies each one). A push that has started but not finished leaves ``complete: false``, so a pull can
refuse a half-written folder instead of mixing two versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowdeck.errors import StorageError

__all__ = ["MANIFEST_NAME", "FileEntry", "Manifest", "Stamp", "file_sha256", "hashed_stamp", "stamp_of"]

MANIFEST_NAME = ".flowdeck-manifest.json"
FORMAT = 1
_CHUNK = 1024 * 1024
# A file changed this recently may change again within the file system's timestamp granularity without its
# stamp showing it (git's "racy" files): its stamp is not trusted. Kernels update mtime at tick resolution.
_RACY_NS = 2_000_000_000

# What identifies a version of a file's content without reading it: (device, inode, size, mtime, ctime).
Stamp = tuple[int, int, int, int, int]


def stamp_of(st: os.stat_result) -> Stamp:
    """The stamp of a stat result (any write, truncation, replacement or chmod changes it)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks (hashlib releases the GIL, so threads help)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hashed_stamp(path: Path) -> tuple[os.stat_result, str, Stamp | None]:
    """Stat and hash a file: (its stat, its sha256, its stamp when that proves the bytes hashed).

    The stamp is None when the file changed during the hash or so recently that a change may not show in it;
    a reader that finds the same stamp later may then skip hashing the file again."""
    now = time.time_ns()
    before = os.stat(path)
    sha = file_sha256(path)
    after = stamp_of(os.stat(path))
    trusted = after == stamp_of(before) and max(after[3], after[4]) < now - _RACY_NS
    return before, sha, after if trusted else None


@dataclass(frozen=True)
class FileEntry:
    """One file of a tree. ``mode`` keeps the permission bits (the exec bit matters for scripts)."""

    size: int
    sha256: str
    mode: int = 0o644

    @property
    def executable(self) -> bool:
        """True when any exec bit is set."""
        return bool(self.mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))

    def to_json(self) -> dict[str, Any]:
        """The JSON form (mode as an octal string, readable by people)."""
        return {"size": self.size, "sha256": self.sha256, "mode": f"{self.mode:o}"}


@dataclass
class Manifest:
    """A pushed tree: relative POSIX path -> entry."""

    files: dict[str, FileEntry] = field(default_factory=dict)
    complete: bool = True

    def to_bytes(self) -> bytes:
        """Serialise as stable, sorted JSON."""
        body = {
            "format": FORMAT,
            "tool": "flowdeck",
            "complete": self.complete,
            "files": {path: self.files[path].to_json() for path in sorted(self.files)},
        }
        return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Manifest:
        """Parse a stored manifest; anything malformed is a StorageError naming where it came from."""
        try:
            body = json.loads(data)
            if not isinstance(body, Mapping) or body.get("format") != FORMAT:
                raise ValueError(f"unsupported manifest format {body.get('format')!r}")
            files = {
                str(path): FileEntry(int(e["size"]), str(e["sha256"]), int(str(e.get("mode", "644")), 8))
                for path, e in dict(body["files"]).items()
            }
            return cls(files, bool(body.get("complete", True)))
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(
                f"the manifest {where} is not valid: {exc}",
                hint="push the folder again with flowdeck to rewrite it",
            ) from exc
