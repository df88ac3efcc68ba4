"""A pack of incompressible contents, uploaded straight from the files it packs.

A pack whose chunks are all stored as raw blocks (see :mod:`.frames`) is the files' bytes with a few header
bytes between them, so its layout and index follow from the file sizes and a 16 KiB sample of each chunk.
Such a pack is not written to a temporary file first: :class:`RawPackBody` is a seekable request body that
reads the files as the upload asks for bytes. Measured on 20 x 10 MiB, the temporary file was two more copies
of every byte (write, then read back) and the page-cache allocation of 200 MiB, about 0.15 to 0.25 s of CPU
per push on a machine whose two cores the store's server shares.

Only files whose stamp proves them unchanged since they were hashed take this path (see
``flowdeck.steps.storage.manifest.hashed_stamp``); their stamps are checked again after the upload, so a file
changed meanwhile fails the push as before. Anything else is packed through a temporary file.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from flowdeck.errors import StorageError
from flowdeck.snapshot.frames import (
    RAW_BLOCK,
    SAMPLE,
    encode,
    raw_block_header,
    raw_frame_header,
    raw_frame_size,
    stored_raw,
)
from flowdeck.snapshot.layout import CHUNK, Chunk, PackInfo
from flowdeck.steps.storage.manifest import Stamp, stamp_of

__all__ = ["READ", "RawPackBody"]

READ = 128 * 1024  # the most one read hands out (see S3's _SmallReads on why reads stay this small)
# Chunks of at most SAMPLE bytes are always compressed (the tail of a file, or a small file): their frames
# are made up front and held in memory, up to this many bytes per pack (more: a temporary file is used).
HELD = 1024 * 1024
# (offset in the pack, constant bytes or (index of the file, offset in the file, length))
_Segment = tuple[int, bytes | tuple[int, int, int]]


class RawPackBody:
    """The bytes of a pack of raw frames, read from its files on demand (``read``/``seek``/``tell``)."""

    def __init__(self, files: list[tuple[int, Path]], segments: list[_Segment]) -> None:
        self._files = files  # (descriptor, path): open for the body's life
        self._starts = [start for start, _ in segments]
        self._segments = segments
        self.size = segments[-1][0] + _length(segments[-1][1]) if segments else 0
        self._position = 0

    @classmethod
    def open(
        cls, items: list[tuple[str, Path, int]], stamps: Mapping[Path, Stamp], compressor: Any
    ) -> tuple[RawPackBody, PackInfo] | None:
        """The body and index of a pack of ``items`` (sha256, path, size), or None when one of them has no
        matching stamp, a chunk of more than SAMPLE bytes compresses, or the small chunks' frames would hold
        more than HELD bytes (that pack is then built through a temporary file)."""
        files: list[tuple[int, Path]] = []
        segments: list[_Segment] = []
        blobs: dict[str, list[Chunk]] = {}
        offset = held = 0
        try:
            for sha, path, size in items:
                fd = os.open(path, os.O_RDONLY)
                files.append((fd, path))
                if stamps.get(path) is None or stamp_of(os.fstat(fd)) != stamps[path] or size <= 0:
                    raise _NotRaw
                chunks: list[Chunk] = []
                for start in range(0, size, CHUNK):
                    length = min(CHUNK, size - start)
                    if length <= SAMPLE:
                        frame = encode(compressor, os.pread(fd, length, start))
                        held += len(frame)
                        if held > HELD:
                            raise _NotRaw
                        chunks.append((offset, len(frame), length))
                        segments.append((offset, frame))
                        offset += len(frame)
                        continue
                    if not stored_raw(compressor, os.pread(fd, SAMPLE, start), length):
                        raise _NotRaw
                    chunks.append((offset, raw_frame_size(length), length))
                    header = raw_frame_header(length)
                    segments.append((offset, header))
                    offset += len(header)
                    for block in range(start, start + length, RAW_BLOCK):
                        part = min(RAW_BLOCK, start + length - block)
                        segments.append((offset, raw_block_header(part, block + part >= start + length)))
                        segments.append((offset + 3, (len(files) - 1, block, part)))
                        offset += 3 + part
                blobs[sha] = chunks
        except _NotRaw:
            _close(files)
            return None
        except BaseException:
            _close(files)
            raise
        return cls(files, segments), PackInfo(offset, blobs)

    def read(self, size: int = -1) -> bytes:
        """Up to ``min(size, READ)`` bytes (all that is left for a negative size)."""
        want = self.size - self._position if size is None or size < 0 else min(size, READ)
        want = min(want, self.size - self._position)
        parts: list[bytes] = []
        while want > 0:
            at = bisect.bisect_right(self._starts, self._position) - 1
            start, what = self._segments[at]
            skip = self._position - start
            if isinstance(what, bytes):
                piece = what[skip : skip + want]
            else:
                index, file_offset, length = what
                fd, path = self._files[index]
                count = min(want, length - skip)
                piece = os.pread(fd, count, file_offset + skip)
                if len(piece) != count:
                    raise StorageError(
                        f"{path} changed while it was being pushed", hint="push again once the file is stable"
                    )
            parts.append(piece)
            self._position += len(piece)
            want -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move to ``offset`` (from the start, the current position or the end)."""
        base = {0: 0, 1: self._position, 2: self.size}[whence]
        self._position = max(0, min(self.size, base + offset))
        return self._position

    def tell(self) -> int:
        """The current position."""
        return self._position

    def check_unchanged(self, stamps: Mapping[Path, Stamp]) -> None:
        """Raise StorageError when a file's stamp changed since it was hashed (it changed during the push)."""
        for fd, path in self._files:
            if stamp_of(os.fstat(fd)) != stamps.get(path):
                raise StorageError(
                    f"{path} changed while it was being pushed", hint="push again once the file is stable"
                )

    def close(self) -> None:
        """Close the files."""
        _close(self._files)
        self._files = []

    def __enter__(self) -> RawPackBody:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _NotRaw(Exception):
    """A pack that cannot be streamed from its files."""


def _length(what: bytes | tuple[int, int, int]) -> int:
    return len(what) if isinstance(what, bytes) else what[-1]


def _close(files: list[tuple[int, Path]]) -> None:
    for fd, _ in files:
        try:
            os.close(fd)
        except OSError:
            pass
