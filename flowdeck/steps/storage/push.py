"""Push a project tree to a store folder: walk, hash, plan, upload in parallel, prune, write the manifest.

A file symlink is uploaded with the content of the file it points to, as Prefect does. When that file is
outside the project (``/etc/passwd``, ``~/.ssh/id_rsa``, a credentials file), the push says so with an
:class:`ExternalSymlinkWarning` naming the link and its target, or refuses with ``external_symlinks:
refuse`` (``follow`` uploads silently). The step argument wins over ``FLOWDECK_EXTERNAL_SYMLINKS``;
the default is ``warn``.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from flowdeck.errors import FlowdeckWarning, Location, StorageError
from flowdeck.ignore import IgnoreSpec, WalkEntry
from flowdeck.snapshot.writer import write_snapshot
from flowdeck.steps.storage.destfs import inside
from flowdeck.steps.storage.manifest import MANIFEST_NAME, FileEntry, Manifest, Stamp, hashed_stamp
from flowdeck.steps.storage.remote import Remote, normalise_folder
from flowdeck.steps.storage.transfer import Job, Progress, human_bytes, run_jobs, with_retries, worker_count

__all__ = [
    "EXTERNAL_SYMLINKS_ENV",
    "ExternalSymlinkWarning",
    "PushResult",
    "check_external_symlinks",
    "external_symlinks_policy",
    "local_tree",
    "push_tree",
]

log = logging.getLogger("flowdeck.storage")


@dataclass(frozen=True)
class PushResult:
    """What a push did."""

    files: int
    uploaded: int
    skipped: int
    deleted: int
    bytes_uploaded: int
    seconds: float
    snapshot: str | None = None


def selected_files(root: Path, ignore_file: str | None) -> list[WalkEntry]:
    """The files a push would upload: the tree under ``root`` minus what the ignore file excludes."""
    spec = IgnoreSpec()
    if ignore_file:
        path = Path(ignore_file)
        spec = IgnoreSpec.from_file(path if path.is_absolute() else root / path, display=ignore_file)
    return list(spec.walk(root))


EXTERNAL_SYMLINKS_ENV = "FLOWDECK_EXTERNAL_SYMLINKS"
_POLICIES = ("warn", "refuse", "follow")


class ExternalSymlinkWarning(FlowdeckWarning):
    """A pushed file is a symlink to a file outside the project: its content is uploaded."""


def external_symlinks_policy(value: str | None) -> str:
    """``warn``, ``refuse`` or ``follow``: the step's ``external_symlinks``, else the environment, else warn."""
    source = "external_symlinks"
    if value is None:
        value, source = os.environ.get(EXTERNAL_SYMLINKS_ENV) or "warn", EXTERNAL_SYMLINKS_ENV
    policy = str(value).strip().lower()
    if policy not in _POLICIES:
        raise StorageError(
            f"{source} must be one of {', '.join(_POLICIES)}, got {value!r}",
            hint="use external_symlinks: warn (the default), refuse or follow",
        )
    return policy


def check_external_symlinks(root: Path, entries: list[WalkEntry], policy: str) -> None:
    """Warn about (or refuse) the file symlinks among ``entries`` whose target is outside ``root``."""
    if policy == "follow":
        return
    real_root = os.path.realpath(root)
    for entry in entries:
        if not os.path.islink(entry.path):
            continue
        real = os.path.realpath(entry.path)
        if inside(real, real_root):
            continue
        where = Location(entry.rel, 1, 1)
        link = f"{entry.rel} is a symlink to {os.readlink(entry.path)}"
        if real != os.readlink(entry.path):
            link += f" ({real})"
        if policy == "refuse":
            raise StorageError(
                f"{link}, outside the project: refusing to upload its content",
                location=where,
                hint="remove the link or list it in .prefectignore; external_symlinks: follow uploads it",
            )
        warnings.warn(
            ExternalSymlinkWarning(
                f"{link}, outside the project: its content is uploaded",
                location=where,
                hint="list it in .prefectignore if it should not be, or set external_symlinks: refuse",
            ),
            stacklevel=2,
        )


def local_tree(
    entries: list[WalkEntry], workers: int, stamps: dict[Path, Stamp] | None = None
) -> dict[str, tuple[WalkEntry, FileEntry]]:
    """Hash every file (in parallel: hashlib releases the GIL) and record its size and mode; ``stamps``
    receives the stamp of each file whose stamp proves the bytes hashed (see ``hashed_stamp``)."""

    def describe(entry: WalkEntry) -> tuple[WalkEntry, FileEntry]:
        st, sha, stamp = hashed_stamp(entry.path)
        if stamps is not None and stamp is not None:
            stamps[entry.path] = stamp
        return entry, FileEntry(st.st_size, sha, st.st_mode & 0o777)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, os.cpu_count() or 2, 8))) as pool:
        return {e.rel: (e, f) for e, f in pool.map(describe, entries)}


def push_tree(
    remote: Remote,
    folder: str,
    *,
    root: Path,
    ignore_file: str | None = ".prefectignore",
    prune: bool = False,
    max_workers: int | None = None,
    external_symlinks: str | None = None,
    plain_layout: bool = True,
) -> PushResult:
    """Upload the included files under ``root`` to ``folder``, skipping those already there unchanged, and
    write the tree's snapshot (``plain_layout=False``: the snapshot only, no per-file objects).

    ``external_symlinks`` says what to do with a file symlink leading outside ``root`` (see the module
    docstring)."""
    started = time.monotonic()
    workers = worker_count(max_workers)
    prefix = normalise_folder(folder)
    manifest_key = prefix + MANIFEST_NAME
    entries = selected_files(root, ignore_file)
    check_external_symlinks(root, entries, external_symlinks_policy(external_symlinks))
    stamps: dict[Path, Stamp] = {}
    tree = local_tree(entries, workers, stamps)

    if not plain_layout:
        return _snapshot_only(remote, prefix, tree, workers, started, stamps)
    old_data = with_retries(remote, "read", manifest_key, lambda: remote.read(manifest_key))
    old = Manifest.from_bytes(old_data, remote.url(manifest_key)) if old_data is not None else Manifest()
    listed = with_retries(remote, "list", prefix, lambda: {o.key: o.size for o in remote.list(prefix)})

    def unchanged(rel: str, entry: FileEntry) -> bool:
        known = old.files.get(rel)
        return known is not None and known.sha256 == entry.sha256 and listed.get(prefix + rel) == entry.size

    uploads = [(rel, e, f) for rel, (e, f) in tree.items() if not unchanged(rel, f)]
    wanted = {prefix + rel for rel in tree} | {manifest_key}
    deletions = sorted(k for k in listed if k not in wanted) if prune else []
    new = Manifest({rel: f for rel, (_, f) in tree.items()})

    if uploads or deletions or old_data is None or new.files != old.files or not old.complete:
        # Mark the folder as being rewritten first: a pull during or after a failed push then refuses
        # the folder instead of mixing old and new files, and a re-run knows which files are still good.
        touched = {rel for rel, _, _ in uploads} | {k[len(prefix) :] for k in deletions}
        interim = Manifest(
            {r: f for r, f in old.files.items() if r not in touched and r in tree}, complete=False
        )
        with_retries(remote, "write", manifest_key, lambda: remote.write(manifest_key, interim.to_bytes()))
        jobs = [
            Job(
                "upload",
                prefix + rel,
                f.size,
                partial(remote.upload, e.path, prefix + rel, f.size),
            )
            for rel, e, f in uploads
        ]
        total = sum(f.size for _, _, f in uploads)
        with Progress(f"push {remote.url(prefix)}", total) as progress:
            run_jobs(jobs, remote, workers, progress)
        batches = [deletions[i : i + 1000] for i in range(0, len(deletions), 1000)]
        run_jobs(
            [Job("delete", b[0], 0, partial(remote.delete, b)) for b in batches],
            remote,
            workers,
            progress,
        )
        with_retries(remote, "write", manifest_key, lambda: remote.write(manifest_key, new.to_bytes()))

    snap = write_snapshot(remote, prefix, tree, workers=workers, stamps=stamps)
    result = PushResult(
        snapshot=snap.id,
        files=len(tree),
        uploaded=len(uploads),
        skipped=len(tree) - len(uploads),
        deleted=len(deletions),
        bytes_uploaded=sum(f.size for _, _, f in uploads),
        seconds=time.monotonic() - started,
    )
    log.info(
        "pushed %d files to %s: %d uploaded (%s), %d unchanged skipped, %d deleted, in %.2fs",
        result.files,
        remote.url(prefix),
        result.uploaded,
        human_bytes(result.bytes_uploaded),
        result.skipped,
        result.deleted,
        result.seconds,
    )
    return result


def _snapshot_only(
    remote: Remote,
    prefix: str,
    tree: dict[str, tuple[WalkEntry, FileEntry]],
    workers: int,
    started: float,
    stamps: dict[Path, Stamp],
) -> PushResult:
    """A push with ``plain_layout: false``: the snapshot is the only copy (for deployments only flowdeck
    pulls); the per-file objects Prefect's pull steps read are neither written nor pruned."""
    snap = write_snapshot(remote, prefix, tree, workers=workers, plain_layout=False, stamps=stamps)
    return PushResult(
        snapshot=snap.id,
        files=len(tree),
        uploaded=0,
        skipped=len(tree),
        deleted=0,
        bytes_uploaded=snap.bytes_uploaded,
        seconds=time.monotonic() - started,
    )
