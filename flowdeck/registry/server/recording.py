"""Recording new versions on a Prefect server (a deploy), and removing a deployment with its versions.

A deploy is all or nothing: reads first, then every version record, then every deployment; if a write fails
midway, what was live before is put back and the new records are removed (:func:`record_versions`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flowdeck.errors import FlowdeckWarning, RegistryError
from flowdeck.history import PendingVersion, RecordOutcome
from flowdeck.registry.server.live import deployment_fields, recorded_fields
from flowdeck.registry.server.payload import deployed_by, deployment_body, history_key, live_key
from flowdeck.registry.server.pools import WorkPools, upsert_flow
from flowdeck.registry.server.promote import restore, settle, write_live
from flowdeck.registry.server.records import ServerRecords, utc_now
from flowdeck.registry.server.scan import VERSION_TYPE
from flowdeck.registry.server.versions import find_deployment

__all__ = ["delete_deployment", "record_versions"]

# A SQLite-backed server answers 503 when many writers queue; a few parallel writers are the sweet spot.
_WORKERS = 2

#: A version to write, with its deployment and live pointer as read before any write.
_State = tuple[PendingVersion, dict[str, Any] | None, dict[str, Any] | None]
#: The same, with the version artifact recorded for it.
_Posted = tuple[PendingVersion, dict[str, Any] | None, dict[str, Any] | None, dict[str, Any]]


def _parallel(fn: Callable[[Any], Any], items: Sequence[Any]) -> tuple[list[Any], RegistryError | None]:
    """``fn`` over ``items`` on a few threads; the results (None where it failed) and the first error."""
    results: list[Any] = [None] * len(items)
    first: RegistryError | None = None
    if not items:
        return results, None
    with ThreadPoolExecutor(max_workers=min(_WORKERS, len(items))) as pool:
        futures = {pool.submit(fn, item): index for index, item in enumerate(items)}
        for future in futures:
            try:
                results[futures[future]] = future.result()
            except RegistryError as exc:
                first = first or exc
    return results, first


def _post_version(records: ServerRecords, item: PendingVersion) -> dict[str, Any]:
    """Record ``item`` as a version artifact (not live yet)."""
    info = dict(item.version_info)
    info.setdefault("deployed_by", deployed_by())
    data = {"flowdeck": 1, "deployment": item.name, "label": item.label, "content_hash": item.content_hash,
            "record": item.record, "version_info": info, "deployed_at": utc_now()}
    commit = str(info.get("commit_sha") or "")[:12]
    description = (f"flowdeck version **{item.label}** of `{item.name}`, deployed by {info['deployed_by']}"
                   + (f" from commit `{commit}`" if commit else ""))
    art = records.client.post("artifacts/", {
        "key": history_key(item.name), "type": VERSION_TYPE, "data": data, "description": description,
        "metadata_": {"label": item.label, "content_hash": item.content_hash, "commit": commit}},
        what=f"a version record of '{item.name}'")
    return dict(art)


def _forget(records: ServerRecords, posted: Sequence[_Posted]) -> None:
    """Best effort: remove the version artifacts of a failed deploy (they were never live)."""
    for *_, art in posted:
        try:
            records.client.delete(f"artifacts/{art['id']}")
        except RegistryError:
            pass


def _unchanged(records: ServerRecords, item: PendingVersion, existing: dict[str, Any] | None,
               pointer: dict[str, Any] | None) -> RecordOutcome | None:
    """The outcome of ``item`` when it has nothing to write (its content is already recorded), else None."""
    same = bool(pointer and pointer.get("content_hash") == item.content_hash)
    if item.promote and existing is not None and pointer and same:
        # Unchanged only if the deployment still holds the live version: one changed outside
        # flowdeck (or left by a deploy killed midway) is written again.
        if deployment_fields(existing) == recorded_fields(item.record, str(pointer.get("label"))):
            return RecordOutcome(item.name, "unchanged", int(pointer.get("revision") or 0),
                                 str(pointer.get("label")), True)
        warnings.warn(FlowdeckWarning(
            f"deployment '{item.name}' on {records.description} does not hold its live version "
            f"(revision {pointer.get('revision')}): it was changed outside flowdeck (or by a deploy still "
            f"running); deploying it again",
            hint=f"`flowdeck deployment history {item.name}` shows the versions"),
            # Past this function, record_versions and the registry's method: the deploy that asked for it.
            stacklevel=4)
    if not item.promote:
        versions = records.versions(item.name)
        last = versions[-1] if versions else None
        if last and (last.get("data") or {}).get("content_hash") == item.content_hash:
            live = bool(pointer and pointer.get("artifact_id") == last.get("id"))
            return RecordOutcome(item.name, "unchanged", len(versions), str(last["data"].get("label")), live)
    return None


def record_versions(records: ServerRecords, pools: WorkPools, pending: Sequence[PendingVersion]) -> list[RecordOutcome]:
    """Record versions on the server; if a write fails midway, restore what was live before.

    Reads come first (a few requests for any number of deployments) and nothing is written if they fail
    or a work pool is missing. Then every version record is written, then every deployment is updated;
    deployments are written in parallel, each in its own order.
    """
    states: list[_State] = []
    outcomes: dict[str, RecordOutcome] = {}
    read = records.states([item.name for item in pending])
    for item in pending:
        existing, pointer = read[item.name]
        if not item.force:
            outcome = _unchanged(records, item, existing, pointer)
            if outcome is not None:
                outcomes[item.name] = outcome
                continue
        # Only a deployment that changes needs its pool (an unchanged redeploy costs reads only).
        pool = (item.record.get("work_pool") or {}).get("name")
        if pool and item.promote:
            pools.check(str(pool), item.create_pool)
        states.append((item, existing, pointer))
    if not states:
        return [outcomes[item.name] for item in pending]

    # Record every version (not live yet); on failure remove what this call recorded.
    def record(state: _State) -> dict[str, Any]:
        return _post_version(records, state[0])

    recorded, error = _parallel(record, states)
    posted: list[_Posted] = [(*state, result) for state, result in zip(states, recorded, strict=True)
                             if result is not None]
    if error is not None:
        _forget(records, posted)
        raise error
    # The flows of new deployments, once each (an upsert on the name).
    flow_ids: dict[str, str] = {}
    try:
        for item, existing, _pointer, _art in posted:
            if existing is None and item.promote and item.flow_name not in flow_ids:
                flow_ids[item.flow_name] = upsert_flow(records.client, item.flow_name)
    except RegistryError:
        _forget(records, posted)
        raise

    # Make them live; if any write fails, restore the previous live versions.
    def make_live(entry: _Posted) -> bool:
        item, existing, _pointer, art = entry
        if item.promote:
            write_live(records, item.name, deployment_body(item, item.record, item.label), existing,
                       art["id"], item.label, item.content_hash, None,
                       flow_id=flow_ids.get(item.flow_name))
        return True

    applied, error = _parallel(make_live, posted)
    if error is not None:
        done = [(item, existing, pointer)
                for (item, existing, pointer, _art), ok in zip(posted, applied, strict=True) if ok and item.promote]
        restore(records, done)
        # The versions of a failed deploy were never live: leave no trace of them.
        _forget(records, posted)
        raise error
    settled = settle(records, [(item.name, str(art["id"]), recorded_fields(item.record, item.label))
                               for item, _existing, _pointer, art in posted if item.promote])
    # The numbers again, now: the server stamps a version's creation time before it waits for its database
    # lock, so a concurrent deploy's version stamped earlier can be stored after this one was counted (and
    # come before it in every later count). By now, several round trips later, it is stored.
    revisions = records.revisions({item.name: str(art["id"]) for item, _e, _p, art in posted})
    for item, existing, pointer, art in posted:
        status = "created" if existing is None and pointer is None else "updated"
        outcomes[item.name] = RecordOutcome(item.name, status, revisions.get(item.name, 0), item.label,
                                            item.promote and settled.get(item.name) == art["id"])
    return [outcomes[item.name] for item in pending if item.name in outcomes]


def delete_deployment(records: ServerRecords, name: str) -> str:
    """Remove the deployment from the server, with flowdeck's version records; its full name."""
    row = find_deployment(records, name)
    dep = records.deployment(row.name)
    if dep is not None:
        records.client.delete(f"deployments/{dep['id']}", what=f"deployment '{row.name}'")
    for key in (history_key(row.name), live_key(row.name)):
        for art in records.client.post("artifacts/filter", {"artifacts": {"key": {"any_": [key]}}, "limit": 200}):
            records.client.delete(f"artifacts/{art['id']}")
    return row.name
