"""Pull a store folder into a directory: exactly the pushed tree, verified, cached, and swapped in safely.

What happens to the target directory (the working directory, as in Prefect):

* Files of the pulled tree are written (overwriting local files of the same path), with their exec bits.
* Nothing is replaced until every file has been downloaded and verified into a staging directory inside the
  target (same filesystem, so each file is swapped in with one atomic rename). A failed pull leaves the
  previous contents untouched.
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
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from flowdeck.errors import StorageError
from flowdeck.snapshot.reader import snapshot_for_pull
from flowdeck.steps.storage.cache import ObjectCache
from flowdeck.steps.storage.manifest import MANIFEST_NAME, FileEntry, Manifest, file_sha256
from flowdeck.steps.storage.remote import Remote, normalise_folder
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
    """Refuse, before touching anything, a tree that cannot be written: a directory where a file goes, a
    file where a directory goes, or a symlinked directory leading outside the target."""
    real_target = target.resolve()
    for rel in rels:
        dest = target / rel
        if dest.is_dir() and not dest.is_symlink():
            raise StorageError(
                f"cannot pull {rel!r}: a directory of that name exists in {target}",
                hint="move the directory away, then pull again",
            )
        parent = dest.parent
        if parent.exists():
            if not parent.is_dir():
                raise StorageError(
                    f"cannot pull {rel!r}: a parent path is a file in {target}",
                    hint="move that file away, then pull again",
                )
            if not parent.resolve().is_relative_to(real_target):
                raise StorageError(
                    f"cannot pull {rel!r}: its directory is a link leading outside {target}",
                    hint="remove the symlink, then pull again",
                )
        else:
            ancestor = parent
            while not ancestor.exists():
                ancestor = ancestor.parent
            if not ancestor.is_dir():
                raise StorageError(
                    f"cannot pull {rel!r}: a parent path is a file in {target}",
                    hint="move that file away, then pull again",
                )


def pull_tree(remote: Remote, folder: str, *, target: Path, max_workers: int | None = None) -> PullResult:
    """Make ``target`` hold the tree stored under ``folder`` (see the module docstring for the rules)."""
    started = time.monotonic()
    workers = worker_count(max_workers)
    prefix = normalise_folder(folder)
    # Snapshot hook: a pinned version (or a push without the plain layout) is pulled from its snapshot.
    source = snapshot_for_pull(remote, prefix)
    wanted: dict[str, tuple[str, FileEntry | None]]
    if source is not None:
        wanted = {safe_relpath(r, r): (r, e) for r, e in source.manifest.files.items()}
        has_manifest = True
    else:
        wanted, has_manifest = _wanted(remote, prefix)
    previous = _read_record(target)
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

    staging = Path(tempfile.mkdtemp(dir=target, prefix=".flowdeck-pull-"))
    counts = {"downloaded": 0, "cached": 0, "bytes": 0}
    counts_lock = threading.Lock()
    record: dict[str, dict[str, Any]] = dict(unchanged)
    try:

        def fetch(rel: str, key: str, entry: FileEntry | None) -> None:
            staged = staging / rel
            staged.parent.mkdir(parents=True, exist_ok=True)
            if entry is not None and cache.fetch(entry.sha256, staged):
                with counts_lock:
                    counts["cached"] += 1
                return
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

        if source is not None:
            scratch = Path(tempfile.mkdtemp(dir=target, prefix=".flowdeck-pull-"))
            try:
                got = source.fetch([(r, e) for r, _, e in todo if e is not None], staging, scratch, cache, workers)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            counts.update(downloaded=got.downloaded, cached=got.cached, bytes=got.bytes)
        else:
            jobs = [
                Job("download", key, entry.size if entry else 0, partial(fetch, rel, key, entry))
                for rel, key, entry in todo
            ]
            total = sum(e.size for _, _, e in todo if e is not None)
            with Progress(f"pull {remote.url(prefix)}", total) as progress:
                run_jobs(jobs, remote, workers, progress)

        # Every file is here and verified: swap them in, one atomic rename each.
        for rel, _, entry in todo:
            staged, dest = staging / rel, target / rel
            mode = entry.mode if entry is not None else None
            if mode is not None:
                os.chmod(staged, mode & 0o777)
            sha = entry.sha256 if entry is not None else file_sha256(staged)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, dest)
            st = dest.stat()
            record[rel] = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    removed = 0
    for rel, prev in previous.items():
        if rel in wanted:
            continue
        path = target / rel
        if _still_as_pulled(path, prev):
            path.unlink()
            removed += 1
            _prune_empty_dirs(path.parent, target)
        elif path.exists():
            log.warning(
                "keeping %s: it was pulled before but was edited since, and the new tree lacks it", rel
            )
    _write_record(target, remote.url(prefix), record)

    result = PullResult(
        files=len(wanted),
        downloaded=counts["downloaded"],
        from_cache=counts["cached"],
        unchanged=len(unchanged),
        removed=removed,
        bytes_downloaded=counts["bytes"],
        seconds=time.monotonic() - started,
    )
    log.info(
        "pulled %d files from %s%s: %d downloaded (%s), %d from cache, %d unchanged, %d removed, in %.2fs",
        result.files,
        remote.url(prefix),
        f" (snapshot {source.id[:12]})" if source is not None else "" if has_manifest else " (no flowdeck manifest)",
        result.downloaded,
        human_bytes(result.bytes_downloaded),
        result.from_cache,
        result.unchanged,
        result.removed,
        result.seconds,
    )
    return result


def _prune_empty_dirs(directory: Path, stop: Path) -> None:
    while directory != stop and stop in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
