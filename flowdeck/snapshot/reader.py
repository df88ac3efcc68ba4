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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from flowdeck.errors import StorageError
from flowdeck.paths import cache_dir
from flowdeck.snapshot.extract import copy_content, extract_all, keep_pack, stream_region
from flowdeck.snapshot.layout import Chunk, SnapshotManifest, is_id, snapshot_root
from flowdeck.snapshot.pin import current_pin
from flowdeck.steps.storage.cache import ObjectCache
from flowdeck.steps.storage.manifest import FileEntry
from flowdeck.steps.storage.remote import Remote
from flowdeck.steps.storage.transfer import Job, Progress, run_jobs, with_retries

__all__ = ["FetchCounts", "SnapshotSource", "load_snapshot", "snapshot_for_pull"]

log = logging.getLogger("flowdeck.storage")

GAP = 512 * 1024  # read through gaps smaller than this rather than send another request
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
                copy_content(first, staging, rels[1:])
                continue
            else:
                need[sha] = rels
                continue
            copy_content(first, staging, rels[1:])

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
        corrupt = partial(self._corrupt, pack)
        cached = cache.root.parent / "packs" / f"{pack}.pack"
        if cache.enabled and cached.is_file():
            # The whole pack was pulled before: extract from the local copy, nothing is downloaded.
            try:
                extract_all(cached, 0, members, need, staging, None, corrupt, _tally(counts, lock, from_cache=True))
                return
            except StorageError:
                cached.unlink(missing_ok=True)  # damaged: download it again
        if len(members) <= STREAM_MEMBERS:
            # A few (large) files: decompress straight from the response into the staged files, so their
            # bytes are written once and never held whole in memory; the files themselves are cached.
            with self._slots:  # bounds memory: each stream holds a piece and a frame or two
                written = stream_region(self.remote, key, start, end, members, need, staging, cache, corrupt)
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
                raise corrupt(f"expected {end - start} bytes at offset {start}, got {got}")
            downloaded = _tally(counts, lock, from_cache=False)
            if whole and cache.enabled:
                # One cache entry per pack, not one per file: on a slow file system, thousands of cache
                # links cost as much as the pull itself. Kept once every content taken from it checked out;
                # the others are checked whenever a later pull extracts them.
                extract_all(local, 0, members, need, staging, None, corrupt, downloaded)
                keep_pack(local, cached)
            else:
                extract_all(local, start, members, need, staging, cache, corrupt, downloaded)
            with lock:
                counts.bytes += got
        finally:
            local.unlink(missing_ok=True)

    def _corrupt(self, pack: str, why: str) -> StorageError:
        return StorageError(
            f"{self.what}: pack {self.remote.url(f'{self.root}packs/{pack}.pack')} is corrupt: {why}", hint=_HINT
        )


def _tally(counts: FetchCounts, lock: threading.Lock, *, from_cache: bool) -> Callable[[int], None]:
    """Adds the files an extraction wrote to ``counts``: taken from the cache, or downloaded."""

    def add(written: int) -> None:
        with lock:
            if from_cache:
                counts.cached += written
            else:
                counts.downloaded += written

    return add
