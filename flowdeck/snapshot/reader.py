"""Fetch a snapshot into a pull's staging directory: verified, from the worker's cache where possible.

Only contents the cache lacks are downloaded. For each pack, the frames needed are coalesced into regions and
fetched with ranged GETs, or the whole pack in one GET when the regions cover most of it. A region of a few
(large) contents is decoded as it streams in, piece by piece, straight into the staged files (memory per
stream: a piece and a zstd window, a few hundred KiB on S3); a region of many small ones is staged on disk and
extracted frame by frame. Every file is checked against its sha256 before it can be swapped in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from flowdeck.errors import StorageError
from flowdeck.paths import cache_dir
from flowdeck.snapshot.frames import FrameDecoder
from flowdeck.snapshot.layout import Chunk, SnapshotManifest, is_id, snapshot_root, zstd
from flowdeck.snapshot.pin import current_pin
from flowdeck.steps.storage.cache import ObjectCache
from flowdeck.steps.storage.manifest import FileEntry
from flowdeck.steps.storage.remote import Remote
from flowdeck.steps.storage.transfer import Job, Progress, run_jobs, with_retries

__all__ = ["FetchCounts", "SnapshotSource", "load_snapshot", "snapshot_for_pull"]

log = logging.getLogger("flowdeck.storage")

GAP = 512 * 1024  # read through gaps smaller than this rather than send another request
EXTRACT_THREADS = 4
STREAMS = 16  # large-file streams at once, at most
STREAM_BUDGET = 24 * 1024 * 1024  # bytes of buffers for all streams: about a piece and a frame window each
STREAM_MEMBERS = 8  # regions of at most this many contents are streamed, not staged on disk
WHOLE = 0.5  # fetch the whole pack when the needed regions cover at least this share of it
_HINT = (
    "deploy the code again with `flowdeck deploy` (or roll back to another version); "
    "`flowdeck snapshot ls` shows the snapshots the store holds"
)


@dataclass
class FetchCounts:
    """Files downloaded, files copied from the cache, bytes downloaded."""

    downloaded: int = 0
    cached: int = 0
    bytes: int = 0


def _manifest_cache(sid: str) -> Path:
    return cache_dir() / "storage" / "snapshots" / f"{sid}.json"


def load_snapshot(remote: Remote, prefix: str, sid: str, what: str) -> SnapshotManifest:
    """Read and verify snapshot ``sid`` (from the local cache when it was seen before: ids are hashes)."""
    local = _manifest_cache(sid)
    try:
        return SnapshotManifest.from_bytes(local.read_bytes(), str(local), sid)
    except (OSError, StorageError):
        pass
    key = f"{snapshot_root(prefix)}snapshots/{sid}.json"
    data = with_retries(remote, "read", key, lambda: remote.read(key))
    if data is None:
        raise StorageError(f"{what}: the snapshot {remote.url(key)} does not exist", hint=_HINT)
    try:
        manifest = SnapshotManifest.from_bytes(data, remote.url(key), sid)
    except StorageError as exc:
        raise StorageError(f"{what}: {exc.message}", hint=_HINT) from None
    try:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}")
        tmp.write_bytes(data)
        os.replace(tmp, local)
    except OSError:
        pass
    return manifest


def snapshot_for_pull(remote: Remote, prefix: str) -> SnapshotSource | None:
    """The snapshot a pull of this folder must fetch: the one pinned by the version being pulled, else the
    last pushed one when that push did not write the plain per-file layout; None means the plain layout."""
    location = remote.url(prefix)
    pin = current_pin()
    if pin is not None:
        sid = pin.for_location(location)
        if sid is not None:
            what = f"{pin.version}: snapshot {sid[:12]}…"
            return SnapshotSource(remote, prefix, load_snapshot(remote, prefix, sid, what), what)
    head_key = snapshot_root(prefix) + "HEAD"
    data = with_retries(remote, "read", head_key, lambda: remote.read(head_key))
    if data is None:
        return None
    try:
        head = json.loads(data)
        sid, plain = str(head["snapshot"]), bool(head.get("plain_layout", True))
    except (ValueError, KeyError, TypeError):
        return None
    if plain or not is_id(sid):
        return None
    what = f"the last push to {location} (snapshot {sid[:12]}…)"
    return SnapshotSource(remote, prefix, load_snapshot(remote, prefix, sid, what), what)


class SnapshotSource:
    """One verified snapshot manifest, ready to be fetched into a staging directory."""

    def __init__(self, remote: Remote, prefix: str, manifest: SnapshotManifest, what: str) -> None:
        self.remote = remote
        self.root = snapshot_root(prefix)
        self.manifest = manifest
        self.what = what
        # S3 streams 256 KiB pieces, Azure and GCS 4 MiB ones: as many streams as the budget holds.
        piece = int(getattr(remote, "range_piece", 4 * 1024 * 1024))
        self._slots = threading.BoundedSemaphore(max(2, min(STREAMS, STREAM_BUDGET // (piece + 1024 * 1024))))

    @property
    def id(self) -> str:
        """The snapshot id."""
        return self.manifest.id

    def fetch(
        self, todo: list[tuple[str, FileEntry]], staging: Path, scratch: Path, cache: ObjectCache, workers: int
    ) -> FetchCounts:
        """Write the files ``todo`` names into ``staging`` (``scratch`` holds downloaded regions)."""
        counts = FetchCounts()
        by_content: dict[str, list[str]] = {}
        for rel, entry in todo:
            by_content.setdefault(entry.sha256, []).append(rel)
        empty = hashlib.sha256(b"").hexdigest()
        need: dict[str, list[str]] = {}
        for sha, rels in by_content.items():
            first = staging / rels[0]
            first.parent.mkdir(parents=True, exist_ok=True)
            if sha == empty:
                first.touch()
            elif cache.fetch(sha, first):
                counts.cached += len(rels)
                self._copies(first, staging, rels[1:])
                continue
            else:
                need[sha] = rels
                continue
            self._copies(first, staging, rels[1:])

        locations = self.manifest.locations()
        per_pack: dict[str, list[tuple[str, list[Chunk]]]] = {}
        for sha in need:
            if sha not in locations:
                raise StorageError(f"{self.what}: the manifest has no pack for content {sha[:12]}…", hint=_HINT)
            pack, chunks = locations[sha]
            per_pack.setdefault(pack, []).append((sha, chunks))

        lock = threading.Lock()
        jobs: list[Job] = []
        for pack, items in per_pack.items():
            for start, end, members in self._regions(self.manifest.packs[pack].size, items):
                key = f"{self.root}packs/{pack}.pack"
                run = partial(self._region, key, pack, start, end, members, need, staging, scratch, cache, counts, lock)
                jobs.append(Job("download", key, end - start, run))
        total = sum(j.size for j in jobs)
        try:
            with Progress(f"pull {self.remote.url(self.root)}", total) as progress:
                run_jobs(jobs, self.remote, workers, progress)
        except StorageError as exc:
            if exc.message.startswith(self.what):
                raise
            raise StorageError(f"{self.what}: {exc.message}", hint=_HINT) from None
        return counts

    @staticmethod
    def _copies(first: Path, staging: Path, rels: list[str]) -> None:
        for rel in rels:
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first, dest)

    @staticmethod
    def _regions(
        size: int, items: list[tuple[str, list[Chunk]]]
    ) -> list[tuple[int, int, list[tuple[str, list[Chunk]]]]]:
        """Coalesce the contents' frames into (start, end, contents) byte ranges of the pack."""
        items = sorted(items, key=lambda item: item[1][0][0])
        regions: list[tuple[int, int, list[tuple[str, list[Chunk]]]]] = []
        for sha, chunks in items:
            start, end = chunks[0][0], chunks[-1][0] + chunks[-1][1]
            if regions and start - regions[-1][1] <= GAP:
                s, _, members = regions[-1]
                regions[-1] = (s, max(end, regions[-1][1]), [*members, (sha, chunks)])
            else:
                regions.append((start, end, [(sha, chunks)]))
        if sum(e - s for s, e, _ in regions) >= WHOLE * size:
            return [(0, size, [m for _, _, ms in regions for m in ms])]
        return regions

    def _region(
        self,
        key: str,
        pack: str,
        start: int,
        end: int,
        members: list[tuple[str, list[Chunk]]],
        need: dict[str, list[str]],
        staging: Path,
        scratch: Path,
        cache: ObjectCache,
        counts: FetchCounts,
        lock: threading.Lock,
    ) -> None:
        size = self.manifest.packs[pack].size
        cached = cache.root.parent / "packs" / f"{pack}.pack"
        if cache.enabled and cached.is_file():
            # The whole pack was pulled before: extract from the local copy, nothing is downloaded.
            try:
                self._extract_all(cached, 0, pack, members, need, staging, None, lock, counts, from_cache=True)
                return
            except StorageError:
                cached.unlink(missing_ok=True)  # damaged: download it again
        if len(members) <= STREAM_MEMBERS:
            # A few (large) files: decompress straight from the response into the staged files, so their
            # bytes are written once and never held whole in memory; the files themselves are cached.
            with self._slots:  # bounds memory: each stream holds a piece and a frame or two
                written = self._stream(key, pack, start, end, members, need, staging, cache)
            with lock:
                counts.downloaded += written
                counts.bytes += end - start
            return
        local = scratch / f"{pack}-{start}"
        try:
            whole = start == 0 and end == size
            if whole:
                self.remote.download(key, local)
            else:
                self.remote.download_range(key, local, start, end - start)
            got = local.stat().st_size
            if got != end - start:
                raise self._corrupt(pack, f"expected {end - start} bytes at offset {start}, got {got}")
            if whole and cache.enabled:
                # One cache entry per pack, not one per file: on a slow file system, thousands of cache
                # links cost as much as the pull itself. Kept once every content taken from it checked out;
                # the others are checked whenever a later pull extracts them.
                self._extract_all(local, 0, pack, members, need, staging, None, lock, counts, from_cache=False)
                _keep_pack(local, cached)
            else:
                self._extract_all(local, start, pack, members, need, staging, cache, lock, counts, from_cache=False)
            with lock:
                counts.bytes += got
        finally:
            local.unlink(missing_ok=True)

    def _stream(
        self,
        key: str,
        pack: str,
        start: int,
        end: int,
        members: list[tuple[str, list[Chunk]]],
        need: dict[str, list[str]],
        staging: Path,
        cache: ObjectCache,
    ) -> int:
        pieces = self.remote.iter_range(key, start, end - start)
        stream = _Stream(pieces)
        decoder = FrameDecoder(zstd())
        position, written = start, 0

        def frame(offset: int, clen: int, ulen: int) -> Iterator[bytes | memoryview]:
            nonlocal position
            if stream.skip(offset - position) != offset - position:  # a gap between two needed contents
                raise self._corrupt(pack, f"it ends before offset {offset}")
            position = offset + clen
            try:
                yield from decoder.frame(stream.pieces(clen), ulen)
            except ValueError:
                if stream.ended:
                    raise self._corrupt(pack, f"it ends before offset {offset + clen}") from None
                raise

        try:
            for sha, chunks in members:
                rels = need[sha]
                first = self._write_content(pack, sha, chunks, staging, rels[0], frame)
                cache.store(sha, first)
                self._copies(first, staging, rels[1:])
                written += len(rels)
        except StorageError:
            raise
        except Exception as exc:
            failure = self.remote.classify(exc, "download", key)
            if failure.transient:
                raise
            raise self._corrupt(pack, f"it cannot be read as the manifest says ({failure.error.message})") from None
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        return written

    def _extract_all(
        self,
        source: Path,
        start: int,
        pack: str,
        members: list[tuple[str, list[Chunk]]],
        need: dict[str, list[str]],
        staging: Path,
        cache: ObjectCache | None,
        lock: threading.Lock,
        counts: FetchCounts,
        *,
        from_cache: bool,
    ) -> None:
        """Extract the members from ``source`` (pack bytes from offset ``start``). Writing many small files is
        bound by the file system's latency, not the CPU: a few threads each extract a slice (each with its own
        file handle and decompressor)."""
        slices = max(1, min(EXTRACT_THREADS, len(members) // 64))
        parts = [members[i::slices] for i in range(slices)]

        def one(part: list[tuple[str, list[Chunk]]]) -> None:
            written = self._extract(source, start, pack, part, need, staging, cache)
            with lock:
                if from_cache:
                    counts.cached += written
                else:
                    counts.downloaded += written

        if slices == 1:
            one(parts[0])
            return
        with ThreadPoolExecutor(max_workers=slices) as pool:
            for future in [pool.submit(one, part) for part in parts]:
                future.result()

    def _extract(
        self,
        source: Path,
        start: int,
        pack: str,
        members: list[tuple[str, list[Chunk]]],
        need: dict[str, list[str]],
        staging: Path,
        cache: ObjectCache | None,
    ) -> int:
        decompressor = zstd().ZstdDecompressor()
        written = 0
        with open(source, "rb") as region:

            def frame(offset: int, clen: int, ulen: int) -> Iterator[bytes]:
                # Small files, mostly: one read and one call per frame is faster than streaming it.
                region.seek(offset - start)
                data = region.read(clen)
                if len(data) != clen:
                    raise self._corrupt(pack, f"it ends before offset {offset + clen}")
                try:
                    out: bytes = decompressor.decompress(data, max_output_size=ulen)
                except zstd().ZstdError as exc:
                    raise ValueError(f"a frame does not decompress ({exc})") from None
                if len(out) != ulen:
                    raise ValueError("a frame has the wrong length")
                yield out

            for sha, chunks in members:
                rels = need[sha]
                first = self._write_content(pack, sha, chunks, staging, rels[0], frame)
                if cache is not None:
                    cache.store(sha, first)
                self._copies(first, staging, rels[1:])
                written += len(rels)
        return written

    def _write_content(
        self,
        pack: str,
        sha: str,
        chunks: list[Chunk],
        staging: Path,
        rel: str,
        frame: Callable[[int, int, int], Iterable[bytes | memoryview]],
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
                    raise self._corrupt(pack, str(exc)) from None
        if digest.hexdigest() != sha:
            raise self._corrupt(pack, f"{rel} does not match its sha256")
        return first

    def _corrupt(self, pack: str, why: str) -> StorageError:
        return StorageError(
            f"{self.what}: pack {self.remote.url(f'{self.root}packs/{pack}.pack')} is corrupt: {why}", hint=_HINT
        )


def _keep_pack(local: Path, cached: Path) -> None:
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
