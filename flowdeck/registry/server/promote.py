"""Making a recorded version live on a Prefect server: write the deployment, move the pointer, check who won.

Used by a deploy (:mod:`~flowdeck.registry.server.recording`) for its new versions, and by rollback and
promote (:func:`set_live`) for a recorded one. Why the deployment decides which version is live when two
deploys race: :mod:`~flowdeck.registry.server.live`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flowdeck.errors import HistoryError, RegistryError
from flowdeck.history import PendingVersion, VersionRow
from flowdeck.registry.server.live import converge, deployment_fields, recorded_fields, warn_overtaken
from flowdeck.registry.server.payload import deployment_body
from flowdeck.registry.server.pools import upsert_flow
from flowdeck.registry.server.records import ServerRecords, concurrency_of, split_name
from flowdeck.registry.server.versions import find_deployment, get_version, list_versions, version_row

__all__ = ["make_live", "restore", "set_live", "settle", "write_live"]


def write_live(records: ServerRecords, name: str, body: dict[str, Any], existing: Mapping[str, Any] | None,
               artifact_id: str, label: str, content_hash: str, revision: int | None, *,
               flow_id: str | None = None) -> None:
    """Make one version live: write the deployment (``body``, created if ``existing`` is None), then move the
    live pointer to it. ``flow_id`` saves the flow's upsert when the caller already made it.

    ``revision`` None (a version just recorded) is counted here, after the deployment write: counted at once,
    a concurrent deploy's version stamped earlier but stored later would be missing from the count."""
    flow, dep = split_name(name)
    what = f"deployment '{name}'"
    if existing is None:
        if flow_id is None:
            flow_id = upsert_flow(records.client, flow)
        records.client.post("deployments/", {"name": dep, "flow_id": flow_id, **body}, what=what)
    else:
        records.client.patch(f"deployments/{existing['id']}", body, what=what)
    if revision is None:
        revision = records.revision_of(name, artifact_id)
    records.point(name, artifact_id, label, content_hash, revision)


def settle(records: ServerRecords, written: Sequence[tuple[str, str, str]]) -> dict[str, str | None]:
    """After making versions live (``(name, artifact id, its fields)``): the version each deployment ends up
    on, once the deployment and its live pointer agree (a concurrent deploy may have won).

    Re-reading the deployments (one request for one, two batched ones per 100) checks them all: a deployment
    that still holds what this process pointed at agrees with the pointer, or a later pointer write will be
    checked by its own writer; only a deployment that holds another version costs more (:func:`converge`).
    """
    if not written:
        return {}
    states = records.states([name for name, _, _ in written], pointers=False)
    settled: dict[str, str | None] = {}
    for name, artifact_id, fields in written:
        dep, _pointer = states[name]
        if dep is not None and deployment_fields(dep) == fields:
            settled[name] = artifact_id
            continue
        settled[name] = converge(records, name, artifact_id, dep)
        if settled[name] != artifact_id:
            warn_overtaken(records, name, artifact_id, settled[name])
    return settled


def make_live(records: ServerRecords, name: str, artifact_id: str, existing: Mapping[str, Any] | None) -> VersionRow:
    """Write the recorded version ``artifact_id`` of ``name`` into its deployment (``existing``, else read)
    and point at it; the version as a row, live unless a concurrent deploy won."""
    versions = records.versions(name)
    for index, art in enumerate(versions):
        if art.get("id") == artifact_id:
            data = art.get("data") or {}
            record = dict(data.get("record") or {})
            label = str(data.get("label", ""))
            current = existing if existing is not None else records.deployment(name)
            pending = PendingVersion(
                name=name, flow_name=split_name(name)[0], deployment_name=split_name(name)[1], label=label,
                content_hash=str(data.get("content_hash", "")), record=record,
                version_info=dict(data.get("version_info") or {}),
                # Schedules, paused and the concurrency limit belong to the deployment: keep today's.
                schedules=[dict(s.get("schedule") or {}, active=s.get("active", True), slug=s.get("slug"))
                           for s in (current or {}).get("schedules") or []],
                paused=bool((current or {}).get("paused", False)),
                concurrency_limit=concurrency_of(current or {}))
            write_live(records, name, deployment_body(pending, record, label), current, artifact_id, label,
                       pending.content_hash, index + 1)
            now = settle(records, [(name, artifact_id, recorded_fields(record, label))]).get(name)
            return version_row(name, index + 1, art, now)
    raise HistoryError(f"deployment '{name}' has no version {artifact_id}")


def restore(records: ServerRecords,
            done: Sequence[tuple[PendingVersion, dict[str, Any] | None, dict[str, Any] | None]]) -> None:
    """Best effort: put back what was live before a deploy (``(version, deployment, pointer)`` as read before
    it); a deployment it created is removed. Errors are ignored: the server may be gone."""
    for item, existing, pointer in reversed(done):
        try:
            if existing is None:
                now = records.deployment(item.name)
                if now is not None:
                    records.client.delete(f"deployments/{now['id']}")
                continue
            if pointer:
                make_live(records, item.name, str(pointer["artifact_id"]), existing)
        except RegistryError:
            continue


def set_live(records: ServerRecords, name: str, version: str | None, *, previous: bool = False) -> VersionRow:
    """Make a recorded version live by updating the deployment on the server (rollback, promote)."""
    versions = list_versions(records, name)
    full = versions[0].deployment if versions else find_deployment(records, name).name
    live = next((v for v in versions if v.live), None)
    if previous and version is None:
        older = [v for v in versions if live is None or v.revision < live.revision]
        if not older:
            raise HistoryError(f"deployment '{full}' has no version before the live one "
                               f"({live.revision if live else '-'})", hint="see `flowdeck deployment history`")
        target = older[-1]
    else:
        target = get_version(records, full, version)
    raw = records.versions(full)[target.revision - 1]
    return make_live(records, full, str(raw["id"]), None)
