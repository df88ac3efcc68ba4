"""List, show and garbage-collect the snapshots of one storage location (``flowdeck snapshot ...``).

A location is a push step's folder as a URL: ``s3://bucket/folder``, ``az://container/folder`` or
``gs://bucket/folder``. Versions reference snapshots through their records, wherever those are kept: in
flowdeck's store and, when one is configured (``--api``, ``FLOWDECK_API_URL``, ``PREFECT_API_URL``), on the
Prefect server. Both are read (:func:`version_registries`); if either cannot be read completely, ``ls``,
``show`` and ``gc`` fail and gc deletes nothing.

``gc`` deletes snapshot manifests that no version references, that are not the location's HEAD and that are
older than the grace period, then the packs no remaining manifest names and older than the grace period.
It is safe while a deploy runs: a push writes (or rewrites) its manifest before the deploy records the
version naming it, on the store or the server, so until then that manifest is younger than the grace period;
the snapshots are listed again just before anything is deleted, so a manifest rewritten meanwhile is kept
and a manifest written meanwhile keeps its packs; and a push checks after writing its manifest that every
pack it reused still exists (failing, so that no version is recorded, if a gc removed one).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowdeck.errors import FlowdeckError, RegistryError, StorageError
from flowdeck.snapshot.layout import SnapshotManifest, is_id, snapshot_root
from flowdeck.snapshot.reader import load_snapshot
from flowdeck.steps.storage.remote import Remote, RemoteObject, normalise_folder
from flowdeck.steps.storage.transfer import DEFAULT_WORKERS, with_retries

if TYPE_CHECKING:
    from flowdeck.registry.base import Registry

__all__ = [
    "GcResult",
    "Location",
    "SnapshotInfo",
    "collect_garbage",
    "list_snapshots",
    "open_location",
    "referencing_versions",
    "show_snapshot",
    "version_registries",
]

DEFAULT_GRACE = 3600.0


@dataclass(frozen=True)
class Location:
    """An opened storage location: its backend and the folder's key prefix."""

    remote: Remote
    prefix: str

    @property
    def url(self) -> str:
        """The folder's display URL (what version records name)."""
        return self.remote.url(self.prefix)


def open_location(url: str, credentials: Mapping[str, Any] | None = None, endpoint_url: str | None = None) -> Location:
    """Open ``s3://``, ``az://`` or ``gs://`` ``name/folder`` with the given credentials (a block's values),
    else the SDK's defaults (for Azure: ``AZURE_STORAGE_CONNECTION_STRING``)."""
    scheme, sep, rest = url.partition("://")
    name, _, folder = rest.partition("/")
    if not sep or not name or scheme not in {"s3", "az", "gs"}:
        raise StorageError(
            f"{url!r} is not a storage location",
            hint="give s3://bucket/folder, az://container/folder or gs://bucket/folder",
        )
    creds = dict(credentials or {})
    if scheme == "s3":
        from flowdeck.steps.storage.s3 import S3Remote

        params = {"endpoint_url": endpoint_url} if endpoint_url else None
        return Location(S3Remote(name, creds, params, DEFAULT_WORKERS), normalise_folder(folder))
    if scheme == "az":
        from flowdeck.steps.storage.azure import AzureRemote

        if not creds and os.environ.get("AZURE_STORAGE_CONNECTION_STRING"):
            creds = {"connection_string": os.environ["AZURE_STORAGE_CONNECTION_STRING"]}
        return Location(AzureRemote(name, creds), normalise_folder(folder))
    from flowdeck.steps.storage.gcs import GcsRemote

    return Location(GcsRemote(name, creds, None, DEFAULT_WORKERS), normalise_folder(folder))


def version_registries() -> list[Registry]:
    """Where versions that may name snapshots are kept: flowdeck's store, and the configured Prefect server.

    Both, not only the one other commands use: versions deployed to the store before a team moved to a
    server still pin their snapshots there.
    """
    from flowdeck.registry.choose import current
    from flowdeck.registry.embedded import EmbeddedRegistry

    chosen = current()
    return [chosen] if isinstance(chosen, EmbeddedRegistry) else [EmbeddedRegistry(), chosen]


def referencing_versions(
    location: str, registries: Sequence[Registry] | None = None, *, consequence: str = ""
) -> dict[str, list[str]]:
    """snapshot id -> the versions (``deployment label``) that name it at ``location``, in every registry.

    A registry that cannot be read completely is an error (``consequence`` is added to its message):
    what it holds is unknown, so nothing may be treated as unreferenced.
    """
    found: dict[str, list[str]] = {}
    for registry in version_registries() if registries is None else registries:
        try:
            refs = registry.snapshot_references()
        except FlowdeckError as exc:
            raise RegistryError(
                f"cannot tell which versions on {registry.description} use the snapshots of {location}"
                f"{consequence}: {exc.message}",
                hint=exc.hint or "fix that, then run the command again",
            ) from exc
        for ref in refs:
            if ref.location == location and ref.version not in found.get(ref.id, []):
                found.setdefault(ref.id, []).append(ref.version)
    return found


@dataclass(frozen=True)
class SnapshotInfo:
    """One stored snapshot."""

    id: str
    created: str
    modified: float | None
    files: int
    size: int
    packs: int
    versions: list[str]
    head: bool


def _list(remote: Remote, prefix: str) -> dict[str, RemoteObject]:
    return with_retries(remote, "list", prefix, lambda: {o.key[len(prefix) :]: o for o in remote.list(prefix)})


def _head(location: Location) -> str | None:
    key = snapshot_root(location.prefix) + "HEAD"
    data = with_retries(location.remote, "read", key, lambda: location.remote.read(key))
    try:
        sid = str(json.loads(data)["snapshot"]) if data is not None else None
    except (ValueError, KeyError, TypeError):
        return None
    return sid if sid is not None and is_id(sid) else None


def _snapshot_objects(location: Location) -> dict[str, RemoteObject]:
    listed = _list(location.remote, snapshot_root(location.prefix) + "snapshots/")
    return {n[:-5]: o for n, o in listed.items() if n.endswith(".json") and is_id(n[:-5])}


def _load_many(location: Location, ids: list[str]) -> dict[str, SnapshotManifest | None]:
    def one(sid: str) -> tuple[str, SnapshotManifest | None]:
        try:
            return sid, load_snapshot(location.remote, location.prefix, sid, f"snapshot {sid[:12]}…")
        except StorageError:
            return sid, None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(one, ids))


def list_snapshots(location: Location, registries: Sequence[Registry] | None = None) -> list[SnapshotInfo]:
    """Every snapshot of the location, oldest first, with the versions (in ``registries``, by default
    :func:`version_registries`) that use it."""
    versions = referencing_versions(location.url, registries)
    objects = _snapshot_objects(location)
    manifests = _load_many(location, sorted(objects))
    head = _head(location)
    infos = []
    for sid, obj in objects.items():
        manifest = manifests.get(sid)
        infos.append(
            SnapshotInfo(
                sid,
                manifest.created if manifest else "(unreadable)",
                obj.modified,
                len(manifest.files) if manifest else 0,
                sum(f.size for f in manifest.files.values()) if manifest else 0,
                len(manifest.packs) if manifest else 0,
                versions.get(sid, []),
                sid == head,
            )
        )
    return sorted(infos, key=lambda i: (i.created, i.id))


def show_snapshot(
    location: Location, sid: str, registries: Sequence[Registry] | None = None
) -> tuple[SnapshotManifest, list[str]]:
    """One snapshot's manifest (verified) and the versions that use it; a unique id prefix is enough."""
    if not is_id(sid):
        matches = [s for s in _snapshot_objects(location) if s.startswith(sid)]
        if len(matches) != 1:
            raise StorageError(
                f"{'no' if not matches else 'more than one'} snapshot of {location.url} starts with {sid!r}",
                hint="`flowdeck snapshot ls` lists them",
            )
        sid = matches[0]
    manifest = load_snapshot(location.remote, location.prefix, sid, f"snapshot {sid[:12]}…")
    return manifest, referencing_versions(location.url, registries).get(sid, [])


@dataclass
class GcResult:
    """What gc deleted (or, with ``dry_run``, would delete) and what it kept."""

    snapshots: list[str] = field(default_factory=list)
    packs: list[str] = field(default_factory=list)
    bytes: int = 0
    kept_snapshots: int = 0
    kept_packs: int = 0
    #: Where the versions whose references were honoured were read (registry descriptions).
    consulted: list[str] = field(default_factory=list)


def collect_garbage(
    location: Location,
    *,
    grace: float = DEFAULT_GRACE,
    dry_run: bool = False,
    registries: Sequence[Registry] | None = None,
) -> GcResult:
    """Delete snapshots no version in ``registries`` (by default :func:`version_registries`) references, and
    packs no kept snapshot needs, older than ``grace`` seconds (see the module docstring)."""
    remote, root = location.remote, snapshot_root(location.prefix)
    now = time.time()

    def young(obj: RemoteObject) -> bool:
        return obj.modified is None or now - obj.modified < grace

    # The references first: a version recorded after this read names a manifest its push has just
    # (re)written, which the listing below sees as younger than the grace period.
    registries = version_registries() if registries is None else registries
    referenced = set(referencing_versions(location.url, registries, consequence=", so gc deleted nothing"))
    head = _head(location)
    objects = _snapshot_objects(location)
    doomed = sorted(s for s, o in objects.items() if s not in referenced and s != head and not young(o))
    kept = [s for s in objects if s not in doomed]
    manifests = _load_many(location, kept)
    unreadable = [s for s, m in manifests.items() if m is None]
    if unreadable and any(s in referenced for s in unreadable):
        # A referenced manifest we cannot read might name any pack: deleting packs could break it further.
        raise StorageError(
            f"the snapshot {unreadable[0][:12]}… of {location.url} that a version uses cannot be read, "
            "so gc cannot tell which packs are still needed",
            hint="deploy that version's code again, or delete the version, then run gc",
        )
    needed = {p for m in manifests.values() if m is not None for p in m.packs}

    packs = _list(remote, root + "packs/")
    candidates = sorted({n.rsplit(".", 1)[0] for n in packs} - needed)
    candidates = [
        n for n in candidates if all(not young(packs[f"{n}.{ext}"]) for ext in ("pack", "idx") if f"{n}.{ext}" in packs)
    ]
    relisted = _snapshot_objects(location)
    # A doomed manifest rewritten since the first listing is being pushed again by a running deploy: keep it.
    rewritten = {s for s in doomed if s in relisted and relisted[s].modified != objects[s].modified}
    doomed = [s for s in doomed if s in relisted and s not in rewritten]
    # Snapshots written since the first listing (a deploy running now), or rewritten, keep their packs.
    for sid in sorted((set(relisted) - set(objects)) | rewritten):
        later = _load_many(location, [sid]).get(sid)
        if later is None:
            candidates = []  # cannot tell what it needs: keep every pack this time
            break
        candidates = [n for n in candidates if n not in later.packs]

    result = GcResult(
        snapshots=doomed,
        packs=candidates,
        bytes=sum(packs[f"{n}.pack"].size for n in candidates if f"{n}.pack" in packs),
        kept_snapshots=len(kept) + len(rewritten),
        kept_packs=len({n.rsplit(".", 1)[0] for n in packs}) - len(candidates),
        consulted=[r.description for r in registries],
    )
    if dry_run:
        return result
    manifest_keys = [f"{root}snapshots/{s}.json" for s in doomed]
    if manifest_keys:
        with_retries(remote, "delete", manifest_keys[0], lambda: remote.delete(manifest_keys))
    # Each index before its pack: from that moment no push can choose to reuse the pack.
    idx = [f"{root}packs/{n}.idx" for n in candidates if f"{n}.idx" in packs]
    if idx:
        with_retries(remote, "delete", idx[0], lambda: remote.delete(idx))
    data = [f"{root}packs/{n}.pack" for n in candidates if f"{n}.pack" in packs]
    if data:
        with_retries(remote, "delete", data[0], lambda: remote.delete(data))
    return result
