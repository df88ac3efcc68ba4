"""Where snapshots live in a store, and the snapshot manifest format.

For a push step's folder ``F`` (key prefix ``F/``), everything lives under ``.flowdeck-snapshots/F/``, a
sibling of the user's files rather than inside the folder, so Prefect's own pull steps (which download every
object under ``F/``) never download packs:

* ``packs/<sha256>.pack``: zstd frames, one per 1 MiB chunk of a file's content, back to back (compressed, or
  raw blocks for data that does not compress: see :mod:`.frames`). The name is the sha256 of the pack's index
  (packs written before the index naming are named by the sha256 of their bytes; both read the same).
* ``packs/<sha256>.idx``: which contents a pack holds (written after its pack: an index implies its pack).
* ``snapshots/<id>.json``: a snapshot manifest, written after every pack it names (never a dangling one).
* ``HEAD``: the last snapshot pushed, for pulls that are not pinned to a version.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowdeck.errors import StorageError
from flowdeck.steps.storage.manifest import FileEntry

__all__ = [
    "CHUNK",
    "LEVEL",
    "ROOT",
    "Chunk",
    "PackInfo",
    "SnapshotManifest",
    "snapshot_root",
    "tree_id",
    "zstd",
]

ROOT = ".flowdeck-snapshots/"
FORMAT = 1
CHUNK = 1024 * 1024  # uncompressed bytes per zstd frame: bounds memory per transfer thread
LEVEL = 3  # zstd level: see docs/storage.md ("Snapshots") for the measurement behind it
_ID = re.compile(r"[0-9a-f]{64}")

# (offset in the pack, compressed length, uncompressed length) of one frame
Chunk = tuple[int, int, int]


def zstd() -> Any:
    """The ``zstandard`` module (imported lazily: ``flowdeck --help`` stays fast)."""
    try:
        import zstandard
    except ImportError:
        from flowdeck.steps.storage.remote import missing_sdk

        raise missing_sdk("code snapshots", "zstandard", "s3") from None
    return zstandard


def snapshot_root(prefix: str) -> str:
    """The key prefix of the snapshots of the folder with key prefix ``prefix`` (``""`` or ``a/b/``)."""
    return ROOT + prefix


def is_id(text: str) -> bool:
    """True for a well-formed snapshot id (64 lowercase hex digits)."""
    return bool(_ID.fullmatch(text))


def tree_id(files: Mapping[str, FileEntry]) -> str:
    """The snapshot id: sha256 of the sorted file list (path, size, sha256, mode)."""
    body = [[p, files[p].size, files[p].sha256, files[p].mode & 0o7777] for p in sorted(files)]
    return hashlib.sha256(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


@dataclass
class PackInfo:
    """One pack: its size in bytes and, per content sha256, the frames holding that content."""

    size: int
    blobs: dict[str, list[Chunk]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"size": self.size, "blobs": {s: [list(c) for c in self.blobs[s]] for s in sorted(self.blobs)}}

    @classmethod
    def from_json(cls, body: Any) -> PackInfo:
        """Parse (raises ValueError, KeyError or TypeError on malformed input)."""
        blobs = {
            str(sha): [(int(c[0]), int(c[1]), int(c[2])) for c in chunks]
            for sha, chunks in dict(body["blobs"]).items()
        }
        return cls(int(body["size"]), blobs)


@dataclass
class SnapshotManifest:
    """A snapshot: its files and, per pack, where the contents of those files are."""

    id: str
    files: dict[str, FileEntry]
    packs: dict[str, PackInfo]
    created: str = ""

    def to_bytes(self) -> bytes:
        """Stable JSON."""
        body = {
            "format": FORMAT,
            "tool": "flowdeck",
            "id": self.id,
            "created": self.created,
            "files": {p: self.files[p].to_json() for p in sorted(self.files)},
            "packs": {k: self.packs[k].to_json() for k in sorted(self.packs)},
        }
        return (json.dumps(body, indent=None, separators=(",", ":"), sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str, expected_id: str | None = None) -> SnapshotManifest:
        """Parse and verify: the file list must hash to the id (and to ``expected_id`` when given)."""
        try:
            body = json.loads(data)
            if not isinstance(body, Mapping) or body.get("format") != FORMAT:
                raise ValueError(f"unsupported snapshot format {body.get('format')!r}")
            files = {
                str(p): FileEntry(int(e["size"]), str(e["sha256"]), int(str(e.get("mode", "644")), 8))
                for p, e in dict(body["files"]).items()
            }
            packs = {str(k): PackInfo.from_json(v) for k, v in dict(body["packs"]).items()}
            manifest = cls(str(body["id"]), files, packs, str(body.get("created", "")))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise StorageError(
                f"the snapshot manifest {where} is not valid: {exc}",
                hint="push again to write a new snapshot",
            ) from exc
        actual = tree_id(files)
        if actual != manifest.id or (expected_id is not None and actual != expected_id):
            raise StorageError(
                f"the snapshot manifest {where} is corrupt: its files hash to {actual[:12]}…, "
                f"not {(expected_id or manifest.id)[:12]}…",
                hint="push again to write a new snapshot",
            )
        return manifest

    def locations(self) -> dict[str, tuple[str, list[Chunk]]]:
        """content sha256 -> (pack, frames), for every content of the snapshot."""
        found: dict[str, tuple[str, list[Chunk]]] = {}
        for pack, info in self.packs.items():
            for sha, chunks in info.blobs.items():
                found.setdefault(sha, (pack, chunks))
        return found
