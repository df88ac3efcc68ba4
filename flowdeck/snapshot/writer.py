"""Write a snapshot of a pushed tree: pack the contents no earlier pack holds, then the manifest, then HEAD.

Order is what makes a snapshot safe to name: packs first, each pack's index after its pack, the snapshot
manifest after every pack it names. A push killed at any point leaves at most unreferenced packs (which
``flowdeck snapshot gc`` removes), never a manifest naming a missing pack, and ``deploy`` records a version
only after the push step returned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from flowdeck.errors import StorageError
from flowdeck.ignore import WalkEntry
from flowdeck.paths import cache_dir
from flowdeck.snapshot.frames import SAMPLE, write_frame
from flowdeck.snapshot.layout import CHUNK, LEVEL, Chunk, PackInfo, SnapshotManifest, snapshot_root, tree_id, zstd
from flowdeck.snapshot.packbody import HELD, RawPackBody
from flowdeck.snapshot.pin import remember
from flowdeck.steps.storage.manifest import FileEntry, Stamp, stamp_of
from flowdeck.steps.storage.remote import Remote, RemoteObject
from flowdeck.steps.storage.transfer import Job, Progress, human_bytes, run_jobs, with_retries

__all__ = ["PACK_TARGET", "SnapshotResult", "known_packs", "write_snapshot"]

log = logging.getLogger("flowdeck.storage")

# A pack is closed once it holds this many compressed bytes; see docs/storage.md ("Snapshots").
PACK_TARGET = 16 * 1024 * 1024
MIN_PACK = 1024 * 1024
# Packs uploaded at once, at most (and a push smaller than this many PACK_TARGETs is split into this many
# packs): 4 streams left a 200 x 256 KiB push behind rclone's 16; 16 were no faster than 8 here and cost more
# memory, and more packs make a pull of small files slower (docs/storage.md, "Benchmark").
UPLOADS = 8


@dataclass(frozen=True)
class SnapshotResult:
    """What writing a snapshot did."""

    id: str
    files: int
    packs_uploaded: int
    bytes_uploaded: int
    contents_reused: int
    seconds: float


def _index_cache(root_url: str) -> Path:
    # Pack indexes are immutable (named by their pack's hash), so a local copy never goes stale.
    return cache_dir() / "storage" / "packidx" / hashlib.sha256(root_url.encode()).hexdigest()[:16]


def _list_packs(remote: Remote, root: str) -> dict[str, RemoteObject]:
    prefix = root + "packs/"
    return with_retries(remote, "list", prefix, lambda: {o.key[len(prefix) :]: o for o in remote.list(prefix)})


def known_packs(remote: Remote, root: str, workers: int) -> dict[str, PackInfo]:
    """Every complete pack of this location (its index and the pack both present) with its contents."""
    listed = _list_packs(remote, root)
    names = [n[:-4] for n in listed if n.endswith(".idx") and f"{n[:-4]}.pack" in listed]
    local = _index_cache(remote.url(root))
    found: dict[str, PackInfo] = {}
    missing: list[str] = []
    for name in names:
        try:
            found[name] = PackInfo.from_json(json.loads((local / f"{name}.json").read_bytes()))
        except (OSError, ValueError, KeyError, TypeError):
            missing.append(name)

    def fetch(name: str) -> tuple[str, PackInfo | None]:
        key = f"{root}packs/{name}.idx"
        data = with_retries(remote, "read", key, lambda: remote.read(key))
        if data is None:
            return name, None
        try:
            info = PackInfo.from_json(json.loads(data))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring the damaged pack index %s", remote.url(key))
            return name, None
        _save_index(local, name, data)
        return name, info

    if missing:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(missing)))) as pool:
            for name, info in pool.map(fetch, missing):
                if info is not None:
                    found[name] = info
    return found


def _save_index(local: Path, name: str, data: bytes) -> None:
    try:
        local.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, local / f"{name}.json")
    except OSError:
        pass  # only an optimisation


def _plan_packs(contents: list[tuple[str, Path, int]], threads: int) -> list[list[tuple[str, Path, int]]]:
    """Split the new contents into packs of about PACK_TARGET bytes, in path order (files of one directory
    tend to change together, so a later pull needs fewer regions). A smaller push is still split into one
    pack per thread (of at least MIN_PACK bytes), so that packing, and the pull's extraction, run in
    parallel."""
    total = sum(size for _, _, size in contents)
    target = min(PACK_TARGET, max(MIN_PACK, -(-total // threads)))
    packs: list[list[tuple[str, Path, int]]] = []
    current: list[tuple[str, Path, int]] = []
    filled = 0
    for item in contents:
        if current and filled + item[2] > target:
            packs.append(current)
            current, filled = [], 0
        current.append(item)
        filled += item[2]
    if current:
        packs.append(current)
    return packs


def _build_pack(
    items: list[tuple[str, Path, int]], workdir: Path, stamps: Mapping[Path, Stamp]
) -> tuple[Path, str, PackInfo, bytes]:
    """Encode the contents into one local pack file, 1 MiB frame by frame (memory stays flat); return it, its
    name, its index and the index's bytes.

    The name is the sha256 of the index (each content's sha256 and the offset and lengths of its frames), not
    of the pack's bytes: that saves a hash of every byte pushed, and is as safe, because a pull checks every
    content against its sha256, and two packs with one index hold the same frames (a rewrite of a pack by a
    concurrent push of the same contents leaves every index naming it true).

    A file whose stamp (``stamps``, taken when it was hashed) is the same before and after it is packed is
    not hashed again: that is a second read of every byte pushed through sha256 saved (0.13 s of CPU per
    200 MiB here). Any other file is hashed again as it is packed."""
    compressor = zstd().ZstdCompressor(level=LEVEL)
    blobs: dict[str, list[Chunk]] = {}
    offset = 0
    buffer = bytearray(CHUNK)  # one read buffer per pack, reused for every chunk
    view = memoryview(buffer)
    fd, tmp = tempfile.mkstemp(dir=workdir, suffix=".pack")
    with os.fdopen(fd, "wb") as out:
        for sha, path, _size in items:
            chunks: list[Chunk] = []
            with open(path, "rb", buffering=0) as fh:
                known = stamps.get(path)
                if known is not None and stamp_of(os.fstat(fh.fileno())) != known:
                    known = None
                check = hashlib.sha256() if known is None else None
                while got := fh.readinto(buffer):
                    data = view[:got]
                    if check is not None:
                        check.update(data)
                    length = write_frame(out, compressor, data)
                    chunks.append((offset, length, got))
                    offset += length
                unchanged = stamp_of(os.fstat(fh.fileno())) == known if check is None else check.hexdigest() == sha
            if not unchanged:
                raise StorageError(
                    f"{path} changed while it was being pushed", hint="push again once the file is stable"
                )
            blobs[sha] = chunks
    info = PackInfo(offset, blobs)
    name, idx = _index(info)
    return Path(tmp), name, info, idx


def _index(info: PackInfo) -> tuple[str, bytes]:
    """A pack's name and the bytes of its index."""
    idx = json.dumps(info.to_json(), separators=(",", ":")).encode()
    return hashlib.sha256(idx).hexdigest(), idx


def _streamed_pack(
    remote: Remote, items: list[tuple[str, Path, int]], stamps: Mapping[Path, Stamp]
) -> tuple[RawPackBody, PackInfo, Callable[[RawPackBody, str, int], None]] | None:
    """The pack of ``items`` as a body read from the files themselves, and the store's way to upload it, when
    the store can upload a body of its size in one request (S3 below 16 MiB: ``upload_body`` and
    ``stream_limit``) and every chunk is stored raw (see :mod:`.packbody`); else None."""
    send = getattr(remote, "upload_body", None)
    limit = int(getattr(remote, "stream_limit", 0))
    if send is None or sum(size for _, _, size in items) >= limit or not all(p in stamps for _, p, _ in items):
        return None
    # Small files and tails (at most SAMPLE bytes) are compressed frames held in memory: a pack of many small
    # files would be read and compressed up to HELD bytes before falling back, for nothing.
    if sum(tail for _, _, size in items if 0 < (tail := size % CHUNK or CHUNK) <= SAMPLE) > HELD:
        return None
    opened = RawPackBody.open(items, stamps, zstd().ZstdCompressor(level=LEVEL))
    if opened is None:
        return None
    if opened[0].size >= limit:
        opened[0].close()
        return None
    return opened[0], opened[1], send


def write_snapshot(
    remote: Remote,
    prefix: str,
    tree: Mapping[str, tuple[WalkEntry, FileEntry]],
    *,
    workers: int,
    plain_layout: bool = True,
    stamps: Mapping[Path, Stamp] | None = None,
) -> SnapshotResult:
    """Write the snapshot of ``tree`` for the folder with key prefix ``prefix``; return its id and costs.

    ``stamps`` holds the stamps of files taken when they were hashed (see ``_build_pack``)."""
    started = time.monotonic()
    root = snapshot_root(prefix)
    files = {rel: f for rel, (_, f) in tree.items()}
    sid = tree_id(files)
    manifest_key = f"{root}snapshots/{sid}.json"

    packs = known_packs(remote, root, workers)
    where: dict[str, str] = {}
    for name, info in packs.items():
        for sha in info.blobs:
            where.setdefault(sha, name)

    new: dict[str, tuple[str, Path, int]] = {}
    for rel in sorted(tree):
        entry, f = tree[rel]
        if f.size and f.sha256 not in where and f.sha256 not in new:
            new[f.sha256] = (f.sha256, entry.path, f.size)
    # Compression is CPU work (zstandard releases the GIL): more packs built at once than cores only add
    # memory. Uploads wait on the network, so more of them run at once.
    builders = threading.BoundedSemaphore(max(1, min(workers, (os.cpu_count() or 2) + 2)))
    uploads = max(1, min(workers, UPLOADS))
    plan = _plan_packs(list(new.values()), uploads)

    built: dict[str, PackInfo] = {}
    uploaded = 0
    if plan:
        workdir = Path(tempfile.mkdtemp(prefix="flowdeck-packs-"))
        try:

            def one(items: list[tuple[str, Path, int]]) -> None:
                nonlocal uploaded
                streamed = _streamed_pack(remote, items, stamps or {})
                local: Path | None = None
                if streamed is not None:
                    body, info, send = streamed
                    name, idx = _index(info)
                    key = f"{root}packs/{name}.pack"
                    with body:
                        with_retries(remote, "upload", key, partial(send, body, key, body.size))
                        body.check_unchanged(stamps or {})
                else:
                    with builders:
                        local, name, info, idx = _build_pack(items, workdir, stamps or {})
                try:
                    if local is not None:
                        key = f"{root}packs/{name}.pack"
                        with_retries(remote, "upload", key, partial(remote.upload, local, key, info.size))
                    idx_key = f"{root}packs/{name}.idx"
                    with_retries(remote, "write", idx_key, partial(remote.write, idx_key, idx))
                    _save_index(_index_cache(remote.url(root)), name, idx)
                finally:
                    if local is not None:
                        local.unlink(missing_ok=True)
                built[name] = info
                uploaded += info.size

            total = sum(size for _, _, size in new.values())
            jobs = [Job("pack", f"{root}packs/", sum(i[2] for i in p), partial(one, p)) for p in plan]
            with Progress(f"snapshot {remote.url(root)}", total) as progress:
                run_jobs(jobs, remote, min(uploads, len(plan)), progress)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        for name, info in built.items():
            for sha in info.blobs:
                where.setdefault(sha, name)
            packs[name] = info

    needed: dict[str, PackInfo] = {}
    for f in files.values():
        if not f.size:
            continue
        name = where[f.sha256]
        info = needed.setdefault(name, PackInfo(packs[name].size))
        info.blobs[f.sha256] = packs[name].blobs[f.sha256]

    existing = with_retries(remote, "read", manifest_key, lambda: remote.read(manifest_key))
    body: bytes | None = None
    if existing is not None:
        try:
            old = SnapshotManifest.from_bytes(existing, remote.url(manifest_key), sid)
            listed = _list_packs(remote, root)
            if all(f"{n}.pack" in listed for n in old.packs):
                body = existing  # the same tree again: keep the manifest byte for byte (and its packs)
        except StorageError:
            body = None
    if body is None:
        created = datetime.now(UTC).isoformat(timespec="seconds")
        body = SnapshotManifest(sid, files, needed, created).to_bytes()
    # Written even when it exists: a fresh last-modified time keeps gc's grace period away from a snapshot
    # a running deploy is about to record.
    final = body
    with_retries(remote, "write", manifest_key, lambda: remote.write(manifest_key, final))

    referenced = SnapshotManifest.from_bytes(final, remote.url(manifest_key), sid).packs
    listed = _list_packs(remote, root)
    gone = sorted(n for n in referenced if f"{n}.pack" not in listed)
    if gone:
        # A concurrent `snapshot gc` removed a pack this push reused: do not leave a manifest naming it.
        with_retries(remote, "delete", manifest_key, lambda: remote.delete([manifest_key]))
        raise StorageError(
            f"pack {gone[0][:12]}… of {remote.url(root)} was deleted while this push reused it "
            "(a `flowdeck snapshot gc` ran at the same time)",
            hint="push again",
        )
    head_key = root + "HEAD"
    head = json.dumps({"snapshot": sid, "plain_layout": plain_layout}).encode()
    with_retries(remote, "write", head_key, lambda: remote.write(head_key, head))
    remember(sid, remote.url(prefix))

    result = SnapshotResult(
        id=sid,
        files=len(files),
        packs_uploaded=len(built),
        bytes_uploaded=uploaded,
        contents_reused=len({f.sha256 for f in files.values() if f.size}) - len(new),
        seconds=time.monotonic() - started,
    )
    log.info(
        "snapshot %s of %d files at %s: %d packs uploaded (%s), %d contents reused, in %.2fs",
        sid[:12],
        result.files,
        remote.url(root),
        result.packs_uploaded,
        human_bytes(result.bytes_uploaded),
        result.contents_reused,
        result.seconds,
    )
    return result
