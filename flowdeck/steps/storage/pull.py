"""Pull a store folder into a directory: exactly the pushed tree, verified, cached, and swapped in safely.

What happens to the target directory (the working directory, as in Prefect):

* Files of the pulled tree are written (overwriting local files of the same path), with their exec bits.
* Nothing is replaced until every file has been downloaded and verified into a staging directory inside the
  target (same filesystem, so each file is swapped in with one atomic rename). A failed pull leaves the
  previous contents untouched. The swap is journaled and pulls of one directory hold a lock, so a pull
  that is killed (even during the swap) is cleaned up or finished by the next pull of that directory
  before it does anything else (see :mod:`flowdeck.steps.storage.staging`).
* Nothing is ever written through a symlink that leads outside the target: such a link on the way to a
  pulled file is an error naming it; a pulled file replaces a symlink of its name (see
  :mod:`flowdeck.steps.storage.destfs`). Links that stay inside the target are followed.
* Files that a previous flowdeck pull wrote into this directory and that the new tree no longer has are
  deleted (unless they were edited since), so a file deleted from the project disappears on the worker too.
  Every other local file is left alone. The record of what was pulled is ``.flowdeck-pull.json``.
* With a flowdeck manifest in the folder only the manifest's files are fetched: stale objects left in the
  bucket do not come back. Without one (a folder pushed by Prefect), every object under ``folder/`` is.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from flowdeck.errors import StorageError
from flowdeck.snapshot.pin import step_pin
from flowdeck.snapshot.reader import SnapshotSource, snapshot_for_pull
from flowdeck.steps.storage.cache import ObjectCache
from flowdeck.steps.storage.destfs import inside
from flowdeck.steps.storage.manifest import MANIFEST_NAME, FileEntry, Manifest, file_sha256
from flowdeck.steps.storage.remote import Remote, normalise_folder
from flowdeck.steps.storage.staging import FILES, Swap, locked_destination, recover_stale, staging_dir
from flowdeck.steps.storage.transfer import Job, Progress, human_bytes, run_jobs, with_retries, worker_count

__all__ = ["PULL_RECORD", "PullResult", "pull_tree", "safe_relpath"]

log = logging.getLogger("flowdeck.storage")

PULL_RECORD = ".flowdeck-pull.json"


@dataclass(frozen=True)
class PullResult:
    """What a pull did."""

    files: int
    downloaded: int
    from_cache: int
    unchanged: int
    removed: int
    bytes_downloaded: int
    seconds: float


def safe_relpath(key: str, rel: str) -> str:
    """Check that an object's relative name stays inside the target directory; return it with ``/`` only."""
    text = rel.replace("\\", "/")
    parts = text.split("/")
    if (
        text.startswith("/")
        or PurePosixPath(text).is_absolute()
        or ".." in parts
        or (len(parts[0]) >= 2 and parts[0][1] == ":")
    ):
        raise StorageError(
            f"refusing to pull {key!r}: its name would write outside the target directory",
            hint="remove or rename that object in the store",
        )
    clean = "/".join(p for p in parts if p not in ("", "."))
    if not clean:
        raise StorageError(f"refusing to pull {key!r}: it has no file name", hint="remove that object")
    return clean


def _read_record(target: Path) -> dict[str, dict[str, Any]]:
    try:
        body = json.loads((target / PULL_RECORD).read_text(encoding="utf-8"))
        files = body["files"]
        return {str(k): dict(v) for k, v in files.items()} if isinstance(files, dict) else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_record(target: Path, source: str, files: dict[str, dict[str, Any]]) -> None:
    fd, tmp = tempfile.mkstemp(dir=target, prefix=".flowdeck-pull-record-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"source": source, "files": files}, fh, indent=1, sort_keys=True)
    os.replace(tmp, target / PULL_RECORD)


def _still_as_pulled(path: Path, record: dict[str, Any] | None) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return (
        record is not None and st.st_size == record.get("size") and st.st_mtime_ns == record.get("mtime_ns")
    )


def _wanted(remote: Remote, prefix: str) -> tuple[dict[str, tuple[str, FileEntry | None]], bool]:
    """rel -> (key, entry or None), and whether a manifest said so."""
    manifest_key = prefix + MANIFEST_NAME
    data = with_retries(remote, "read", manifest_key, lambda: remote.read(manifest_key))
    if data is not None:
        manifest = Manifest.from_bytes(data, remote.url(manifest_key))
        if not manifest.complete:
            raise StorageError(
                f"the last push to {remote.url(prefix)} did not finish, "
                "so the folder holds a mix of two trees",
                hint="run the push step again, then pull",
            )
        return {safe_relpath(prefix + r, r): (prefix + r, e) for r, e in manifest.files.items()}, True
    objects = with_retries(remote, "list", prefix, lambda: list(remote.list(prefix)))
    wanted: dict[str, tuple[str, FileEntry | None]] = {}
    for obj in objects:
        rel = obj.key[len(prefix) :]
        if not rel or rel.endswith("/") or rel == MANIFEST_NAME:
            continue
        wanted[safe_relpath(obj.key, rel)] = (obj.key, None)
    return wanted, False


def _check_swap(target: Path, rels: list[str]) -> None:
    """Refuse, before downloading anything, a tree that cannot be written: a directory where a file goes, a
    file where a directory goes, or a symlinked directory leading outside the target (the swap checks
    again, one directory at a time, as it writes)."""
    real_target = os.path.realpath(target)
    for rel in rels:
        dest = target / rel
        if dest.is_dir() and not dest.is_symlink():
            raise StorageError(
                f"cannot pull {rel!r}: a directory of that name exists in {target}",
                hint="move the directory away, then pull again",
            )
        # Every existing directory on the way, not only the parent: ``link/new/file.py`` with ``link``
        # leading outside would otherwise create ``new/`` out there.
        ancestor = dest.parent
        while not os.path.lexists(ancestor):
            ancestor = ancestor.parent
        if ancestor != target and not inside(os.path.realpath(ancestor), real_target):
            below = [p for p in [ancestor, *ancestor.parents] if p != target and target in p.parents]
            link = next((p for p in reversed(below) if p.is_symlink()), ancestor)
            raise StorageError(
                f"cannot pull {rel!r}: {link.relative_to(target).as_posix()} is a symlink leading outside "
                f"{target}",
                hint="remove that symlink (or replace it with a directory), then pull again",
            )
        if not ancestor.is_dir():
            raise StorageError(
                f"cannot pull {rel!r}: a parent path is a file in {target}",
                hint="move that file away, then pull again",
            )


def pull_tree(remote: Remote, folder: str, *, target: Path, max_workers: int | None = None,
              snapshots: list[Any] | None = None) -> PullResult:
    """Make ``target`` hold the tree stored under ``folder`` (see the module docstring for the rules).

    ``snapshots`` (``[{"location", "id"}]``, the pull step's own input) pins this pull to a version's snapshot.
    """
    started = time.monotonic()
    workers = worker_count(max_workers)
    prefix = normalise_folder(folder)
    # Snapshot hook: a pinned version (or a push without the plain layout) is pulled from its snapshot.
    # Read before taking the lock: a missing or damaged snapshot fails with the directory untouched.
    with step_pin(snapshots):
        snap = snapshot_for_pull(remote, prefix)

    write_record = partial(_write_record, target)
    with locked_destination(target):
        # Before reading what was pulled: finish or remove what a killed pull left behind.
        recover_stale(target, _still_as_pulled, write_record)
        wanted: dict[str, tuple[str, FileEntry | None]]
        if snap is not None:
            wanted = {safe_relpath(r, r): (r, e) for r, e in snap.manifest.files.items()}
            has_manifest = True
        else:
            wanted, has_manifest = _wanted(remote, prefix)
        previous = _read_record(target)
        counts, unchanged, removed = _pull_locked(
            remote, prefix, target, wanted, previous, workers, write_record, snap
        )

    result = PullResult(
        files=len(wanted),
        downloaded=counts["downloaded"],
        from_cache=counts["cached"],
        unchanged=unchanged,
        removed=removed,
        bytes_downloaded=counts["bytes"],
        seconds=time.monotonic() - started,
    )
    log.info(
        "pulled %d files from %s%s: %d downloaded (%s), %d from cache, %d unchanged, %d removed, in %.2fs",
        result.files,
        remote.url(prefix),
        f" (snapshot {snap.id[:12]})" if snap is not None else "" if has_manifest else " (no flowdeck manifest)",
        result.downloaded,
        human_bytes(result.bytes_downloaded),
        result.from_cache,
        result.unchanged,
        result.removed,
        result.seconds,
    )
    return result


def _from_cache(
    todo: list[tuple[str, str, FileEntry | None]], files: Path, cache: ObjectCache
) -> list[tuple[str, str, FileEntry | None]]:
    """Copy the files the worker's cache holds into ``files``; return the others, to download.

    On this thread, one after another: a cached file is a local copy of a few kilobytes, and handing
    each to a thread pool cost more than the copy (a warm pull of 850 files took 0.57 s in a pool of 16,
    0.23 s in turn).
    """
    missing: list[tuple[str, str, FileEntry | None]] = []
    made: set[Path] = set()
    for rel, key, entry in todo:
        if entry is None or not cache.enabled:
            missing.append((rel, key, entry))
            continue
        staged = files / rel
        if staged.parent not in made:
            staged.parent.mkdir(parents=True, exist_ok=True)
            made.add(staged.parent)
        if not cache.fetch(entry.sha256, staged):
            missing.append((rel, key, entry))
    return missing


def _pull_locked(
    remote: Remote,
    prefix: str,
    target: Path,
    wanted: dict[str, tuple[str, FileEntry | None]],
    previous: dict[str, dict[str, Any]],
    workers: int,
    write_record: Callable[[str, dict[str, Any]], None],
    snap: SnapshotSource | None = None,
) -> tuple[dict[str, int], int, int]:
    """Download into staging, then swap in (holding the destination's lock): (counts, unchanged, removed)."""
    cache = ObjectCache()
    unchanged: dict[str, dict[str, Any]] = {}
    todo: list[tuple[str, str, FileEntry | None]] = []
    for rel, (key, entry) in sorted(wanted.items()):
        prev = previous.get(rel)
        if (
            entry is not None
            and prev is not None
            and prev.get("sha256") == entry.sha256
            and _still_as_pulled(target / rel, prev)
        ):
            unchanged[rel] = prev
        else:
            todo.append((rel, key, entry))
    _check_swap(target, [rel for rel, _, _ in todo])

    staging = staging_dir(target)
    files = staging / FILES
    counts = {"downloaded": 0, "cached": 0, "bytes": 0}
    counts_lock = threading.Lock()
    try:

        def fetch(rel: str, key: str, entry: FileEntry | None) -> None:
            staged = files / rel
            staged.parent.mkdir(parents=True, exist_ok=True)
            remote.download(key, staged)
            if entry is not None:
                actual = file_sha256(staged)
                if actual != entry.sha256:
                    raise StorageError(
                        f"{remote.url(key)} does not match the manifest (sha256 {actual[:12]}…, "
                        f"expected {entry.sha256[:12]}…): it was changed after the push",
                        hint="push the folder again, then pull",
                    )
                cache.store(entry.sha256, staged)
            size = staged.stat().st_size
            with counts_lock:
                counts["downloaded"] += 1
                counts["bytes"] += size

        if snap is not None:
            # Downloaded pack regions live inside staging, so a killed pull's are cleaned up with it.
            scratch = staging / "scratch"
            scratch.mkdir()
            got = snap.fetch([(r, e) for r, _, e in todo if e is not None], files, scratch, cache, workers)
            counts.update(downloaded=got.downloaded, cached=got.cached, bytes=got.bytes)
        else:
            missing = _from_cache(todo, files, cache)
            counts["cached"] = len(todo) - len(missing)
            jobs = [
                Job("download", key, entry.size if entry else 0, partial(fetch, rel, key, entry))
                for rel, key, entry in missing
            ]
            total = sum(e.size for _, _, e in missing if e is not None)
            with Progress(f"pull {remote.url(prefix)}", total) as progress:
                run_jobs(jobs, remote, workers, progress)

        # Every file is here and verified: record what the directory will hold, journal the swap, swap.
        record: dict[str, dict[str, Any]] = dict(unchanged)
        for rel, _, entry in todo:
            staged = files / rel
            st = staged.stat()
            # Most files are created with their mode already (0o644 under the usual umask): a chmod per file
            # is a tenth of a small-file pull.
            if entry is not None and st.st_mode & 0o777 != entry.mode & 0o777:
                os.chmod(staged, entry.mode & 0o777)
            sha = entry.sha256 if entry is not None else file_sha256(staged)
            record[rel] = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        swap = Swap(
            remote.url(prefix),
            [rel for rel, _, _ in todo],
            {rel: prev for rel, prev in previous.items() if rel not in wanted},
            record,
        )
        swap.write(staging)
        removed = swap.apply(target, staging, _still_as_pulled, write_record)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts, len(unchanged), removed


