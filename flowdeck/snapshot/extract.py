"""Write a pack's contents into the staged files of a pull, each checked against its sha256.

A region of many small contents is extracted from its copy on disk, frame by frame (a few threads each
extract a slice); a region of a few (large) contents is decoded as it streams in, piece by piece, straight
into the staged files. :mod:`flowdeck.snapshot.reader` chooses which, and counts what was written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flowdeck.errors import StorageError
from flowdeck.snapshot.frames import FrameDecoder
from flowdeck.snapshot.layout import Chunk, zstd
from flowdeck.steps.storage.cache import ObjectCache
from flowdeck.steps.storage.remote import Remote

__all__ = ["EXTRACT_THREADS", "Corrupt", "copy_content", "extract_all", "keep_pack", "stream_region"]

EXTRACT_THREADS = 4

#: The error that says the pack being read is corrupt, given why.
Corrupt = Callable[[str], StorageError]


def copy_content(first: Path, staging: Path, rels: list[str]) -> None:
    """Copy the staged file ``first`` to the other files ``rels`` of ``staging`` with the same content."""
    for rel in rels:
        dest = staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(first, dest)


def stream_region(
    remote: Remote,
    key: str,
    start: int,
    end: int,
    members: list[tuple[str, list[Chunk]]],
    need: dict[str, list[str]],
    staging: Path,
    cache: ObjectCache,
    corrupt: Corrupt,
) -> int:
    """Decode the members from the pack ``key``'s bytes ``start:end`` as they stream in, writing their files
    (``need`` names them) into ``staging`` and the cache; returns how many files were written."""
    pieces = remote.iter_range(key, start, end - start)
    stream = _Stream(pieces)
    decoder = FrameDecoder(zstd())
    position = start

    def frame(offset: int, clen: int, ulen: int) -> Iterator[bytes | memoryview]:
        nonlocal position
        if stream.skip(offset - position) != offset - position:  # a gap between two needed contents
            raise corrupt(f"it ends before offset {offset}")
        position = offset + clen
        try:
            yield from decoder.frame(stream.pieces(clen), ulen)
        except ValueError:
            if stream.ended:
                raise corrupt(f"it ends before offset {offset + clen}") from None
            raise

    try:
        written = _write_members(members, need, staging, cache, frame, corrupt)
    except StorageError:
        raise
    except Exception as exc:
        failure = remote.classify(exc, "download", key)
        if failure.transient:
            raise
        raise corrupt(f"it cannot be read as the manifest says ({failure.error.message})") from None
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
    return written


def extract_all(
    source: Path,
    start: int,
    members: list[tuple[str, list[Chunk]]],
    need: dict[str, list[str]],
    staging: Path,
    cache: ObjectCache | None,
    corrupt: Corrupt,
    tally: Callable[[int], None],
) -> None:
    """Extract the members from ``source`` (pack bytes from offset ``start``); ``tally`` is told how many
    files each slice wrote. Writing many small files is bound by the file system's latency, not the CPU: a
    few threads each extract a slice (each with its own file handle and decompressor)."""
    slices = max(1, min(EXTRACT_THREADS, len(members) // 64))
    parts = [members[i::slices] for i in range(slices)]

    def one(part: list[tuple[str, list[Chunk]]]) -> None:
        tally(_extract(source, start, part, need, staging, cache, corrupt))

    if slices == 1:
        one(parts[0])
        return
    with ThreadPoolExecutor(max_workers=slices) as pool:
        for future in [pool.submit(one, part) for part in parts]:
            future.result()


def _extract(
    source: Path,
    start: int,
    members: list[tuple[str, list[Chunk]]],
    need: dict[str, list[str]],
    staging: Path,
    cache: ObjectCache | None,
    corrupt: Corrupt,
) -> int:
    decompressor = zstd().ZstdDecompressor()
    with open(source, "rb") as region:

        def frame(offset: int, clen: int, ulen: int) -> Iterator[bytes]:
            # Small files, mostly: one read and one call per frame is faster than streaming it.
            region.seek(offset - start)
            data = region.read(clen)
            if len(data) != clen:
                raise corrupt(f"it ends before offset {offset + clen}")
            try:
                out: bytes = decompressor.decompress(data, max_output_size=ulen)
            except zstd().ZstdError as exc:
                raise ValueError(f"a frame does not decompress ({exc})") from None
            if len(out) != ulen:
                raise ValueError("a frame has the wrong length")
            yield out

        return _write_members(members, need, staging, cache, frame, corrupt)


def _write_members(
    members: list[tuple[str, list[Chunk]]],
    need: dict[str, list[str]],
    staging: Path,
    cache: ObjectCache | None,
    frame: Callable[[int, int, int], Iterable[bytes | memoryview]],
    corrupt: Corrupt,
) -> int:
    """Write each member's content into the first of its files ``need`` names (verified), keep it in the
    cache, copy it to the others; returns how many files were written."""
    written = 0
    for sha, chunks in members:
        rels = need[sha]
        first = _write_content(sha, chunks, staging, rels[0], frame, corrupt)
        if cache is not None:
            cache.store(sha, first)
        copy_content(first, staging, rels[1:])
        written += len(rels)
    return written


def _write_content(
    sha: str,
    chunks: list[Chunk],
    staging: Path,
    rel: str,
    frame: Callable[[int, int, int], Iterable[bytes | memoryview]],
    corrupt: Corrupt,
) -> Path:
    """Write content ``sha`` into the staged file ``rel`` from its frames (``frame(offset, clen, ulen)``
    gives one frame's decompressed bytes, raising ValueError on a bad frame), checking the whole file's
    sha256; returns that file."""
    first = staging / rel
    first.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(first, "wb") as out:
        for offset, clen, ulen in chunks:
            try:
                for data in frame(offset, clen, ulen):
                    digest.update(data)
                    out.write(data)
            except ValueError as exc:
                raise corrupt(str(exc)) from None
    if digest.hexdigest() != sha:
        raise corrupt(f"{rel} does not match its sha256")
    return first


def keep_pack(local: Path, cached: Path) -> None:
    """Move a downloaded whole pack into the cache (an optimisation: a failure is ignored)."""
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, cached)
    except OSError:
        pass


class _Stream:
    """Reads of exact sizes from an iterator of byte pieces, handing out slices of one piece at a time."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buffer = memoryview(b"")
        self._offset = 0
        self.ended = False

    def pieces(self, size: int) -> Iterator[memoryview]:
        """The next ``size`` bytes as slices (fewer bytes only at the end of the stream)."""
        while size > 0:
            if self._offset >= len(self._buffer):
                piece = next(self._pieces, None)
                if piece is None:
                    self.ended = True
                    return
                self._buffer, self._offset = memoryview(piece), 0
                continue
            take = self._buffer[self._offset : self._offset + size]
            self._offset += len(take)
            size -= len(take)
            yield take

    def skip(self, size: int) -> int:
        """Drop the next ``size`` bytes; how many there were."""
        return sum(len(piece) for piece in self.pieces(size))
