"""Deployment version history in the local store: versions, the live one, rollback and promote.

A deployment (``flow-name/deployment-name``) has numbered revisions. Each revision holds everything a
worker needs (the *record*) and a content hash; one revision is live. Schedules, ``paused`` and the
concurrency limit belong to the deployment itself, so a rollback never resurrects an old schedule.
All writes happen in one ``BEGIN IMMEDIATE`` transaction, so concurrent deploys never lose a revision.

The value types of every registry (embedded or a Prefect server) are defined here, :class:`RunRow` included;
the runs of the local store are kept by :mod:`flowdeck.runs`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flowdeck.errors import HistoryError, StoreRowError
from flowdeck.jsontypes import describe, dumps_sorted
from flowdeck.snapshot.refs import SnapshotRef, refs_in_record
from flowdeck.store import db_path, decode_json, open_store, transaction
from flowdeck.suggest import did_you_mean

__all__ = [
    "DeploymentRow",
    "PendingVersion",
    "RunRow",
    "VersionRow",
    "delete_deployment",
    "find_deployment",
    "get_version",
    "list_deployments",
    "list_versions",
    "pick_version",
    "record_versions",
    "set_live",
    "snapshot_references",
]



@dataclass(frozen=True)
class DeploymentRow:
    """A deployment and its live revision."""

    name: str
    flow_name: str
    deployment_name: str
    live_revision: int | None
    schedules: list[Any]
    paused: bool
    concurrency_limit: Any
    latest_revision: int | None
    updated_at: str


@dataclass(frozen=True)
class VersionRow:
    """One revision of a deployment."""

    deployment: str
    revision: int
    label: str
    content_hash: str
    record: dict[str, Any]
    version_info: dict[str, Any]
    created_at: str
    live: bool


@dataclass(frozen=True)
class PendingVersion:
    """A version to record (built by :mod:`flowdeck.deploy`)."""

    name: str
    flow_name: str
    deployment_name: str
    label: str
    content_hash: str
    record: dict[str, Any]
    version_info: dict[str, Any]
    schedules: list[Any]
    paused: bool
    concurrency_limit: Any
    force: bool = False
    promote: bool = True
    #: On a Prefect server: create a missing work pool (``--create-pool``) instead of failing.
    create_pool: bool = False


@dataclass(frozen=True)
class RecordOutcome:
    """What recording one pending version did."""

    name: str
    status: str  # created | updated | unchanged
    revision: int
    label: str
    live: bool


@dataclass(frozen=True)
class RunRow:
    """One flow run started by ``flowdeck run`` (a Prefect server's runs have UUID ids)."""

    id: int | str
    deployment: str
    revision: int
    run_name: str | None
    idempotency_key: str | None
    status: str
    parameters: dict[str, Any]
    result: Any
    error: str | None
    directory: str | None
    started_at: str
    ended_at: str | None


def _dumps(value: Any) -> str:
    return dumps_sorted(value, separators=(",", ":"))


def _deployment_row(row: sqlite3.Row | tuple[Any, ...]) -> DeploymentRow:
    entry = f"deployment {row[0]}"
    remedy = f"remove it with `flowdeck deployment rm {row[0]}` and deploy it again"
    return DeploymentRow(row[0], row[1], row[2], row[3],
                         decode_json(row[4], entry=f"{entry} (schedules)", remedy=remedy, shape=list), bool(row[5]),
                         decode_json(row[6], entry=f"{entry} (concurrency limit)", remedy=remedy) if row[6] else None,
                         row[7], row[8])


_DEPLOYMENT_SELECT = (
    "SELECT d.name, d.flow_name, d.deployment_name, d.live_revision, d.schedules, d.paused, d.concurrency_limit, "
    "(SELECT MAX(revision) FROM versions v WHERE v.deployment = d.name), d.updated_at FROM deployments d"
)


def list_deployments() -> list[DeploymentRow]:
    """Every deployment, by name."""
    with open_store(create=False) as conn:
        if conn is None:
            return []
        rows = conn.execute(_DEPLOYMENT_SELECT + " ORDER BY d.name").fetchall()
    return [_deployment_row(r) for r in rows]


def _resolve_name(name: str) -> str:
    """The full name of a deployment given as ``flow/name`` or by its unambiguous name alone.

    Reads names only, so that a deployment whose other columns are damaged can still be removed.
    """
    with open_store(create=False) as conn:
        pairs: list[tuple[str, str]] = [] if conn is None else [
            (str(r[0]), str(r[1]))
            for r in conn.execute("SELECT name, deployment_name FROM deployments ORDER BY name").fetchall()
        ]
    if any(full == name for full, _ in pairs):
        return name
    by_short = [full for full, short in pairs if short == name]
    if len(by_short) == 1:
        return by_short[0]
    if len(by_short) > 1:
        raise HistoryError(f"'{name}' is ambiguous", hint=f"use one of: {', '.join(by_short)}")
    names = [full for full, _ in pairs] + [short for _, short in pairs]
    hint = did_you_mean(name, names) or ("deploy it first with `flowdeck deploy`" if not pairs else
                                          f"the deployments are: {', '.join(full for full, _ in pairs)}")
    raise HistoryError(f"no deployment named '{name}'", hint=hint)


def find_deployment(name: str) -> DeploymentRow:
    """A deployment by ``flow/name`` or by its name alone when that is unambiguous."""
    full = _resolve_name(name)
    with open_store(create=False) as conn:
        row = None if conn is None else conn.execute(_DEPLOYMENT_SELECT + " WHERE d.name = ?", (full,)).fetchone()
    if row is None:  # removed by another process in between
        raise HistoryError(f"no deployment named '{name}'", hint="deploy it first with `flowdeck deploy`")
    return _deployment_row(row)


# What a worker reads from a record, and the JSON types deploy writes there.
_RECORD_SHAPE: dict[str, tuple[type, ...]] = {
    "name": (str,), "entrypoint": (str,), "parameters": (dict,), "pull_steps": (list,), "tags": (list,),
    "work_pool": (dict,),
}
_KIND_NAMES: dict[type, str] = {str: "a string", dict: "a mapping", list: "a list"}


def _version_row(row: tuple[Any, ...], live_revision: int | None) -> VersionRow:
    entry = f"revision {row[1]} of deployment {row[0]}"
    remedy = f"remove the deployment with `flowdeck deployment rm {row[0]}` and deploy it again"
    record: dict[str, Any] = decode_json(row[4], entry=f"{entry} (record)", remedy=remedy, shape=dict)
    if "entrypoint" not in record:
        raise StoreRowError(f"the store {db_path()} holds a damaged entry: {entry} (record) has no entrypoint",
                            hint=f"{remedy}; or restore the store from a copy")
    for key, kinds in _RECORD_SHAPE.items():
        if key not in record or record[key] is None or isinstance(record[key], kinds):
            continue
        raise StoreRowError(
            f"the store {db_path()} holds a damaged entry: {entry} (record): its {key} is "
            f"{describe(record[key])}, not {_KIND_NAMES[kinds[0]]}",
            hint=f"{remedy}; or restore the store from a copy",
        )
    return VersionRow(row[0], row[1], str(row[2]), str(row[3]), record,
                      decode_json(row[5], entry=f"{entry} (version info)", remedy=remedy, shape=dict),
                      str(row[6]), row[1] == live_revision)


_VERSION_SELECT = ("SELECT deployment, revision, label, content_hash, record, version_info, created_at "
                   "FROM versions WHERE deployment = ?")


def list_versions(name: str) -> list[VersionRow]:
    """Every revision of a deployment, oldest first."""
    dep = find_deployment(name)
    with open_store() as conn:
        assert conn is not None
        rows = conn.execute(_VERSION_SELECT + " ORDER BY revision", (dep.name,)).fetchall()
    return [_version_row(r, dep.live_revision) for r in rows]


def snapshot_references() -> list[SnapshotRef]:
    """Every snapshot any version of any deployment names, in one read (``snapshot ls / show / gc``).

    A damaged record is an error, not an empty list: gc must not delete what it cannot rule out.
    """
    with open_store(create=False) as conn:
        rows = [] if conn is None else conn.execute(
            "SELECT deployment, revision, label, record FROM versions ORDER BY deployment, revision").fetchall()
    found: list[SnapshotRef] = []
    for deployment, revision, label, raw in rows:
        record = decode_json(raw, entry=f"revision {revision} of deployment {deployment} (record)",
                             remedy=f"remove the deployment with `flowdeck deployment rm {deployment}` and deploy "
                                    "it again", shape=dict)
        found.extend(refs_in_record(str(deployment), str(label), record))
    return found


def get_version(name: str, version: str | None = None) -> VersionRow:
    """The live revision, or the one given by number (``3``) or label (latest with that label)."""
    versions = list_versions(name)
    if version is None:
        live = [v for v in versions if v.live]
        if not live:
            raise HistoryError(f"deployment '{name}' has no live version",
                               hint=f"promote one with `flowdeck deployment promote {name} --to REVISION`")
        return live[0]
    found = pick_version(versions, version)
    if found is not None:
        return found
    known = ", ".join(f"{v.revision} ({v.label})" for v in versions)
    raise HistoryError(f"deployment '{name}' has no version '{version}'", hint=f"its versions are: {known}")


def pick_version(versions: Sequence[VersionRow], version: str) -> VersionRow | None:
    """The version ``version`` names among ``versions``: a revision number (``3``), else a label (the latest
    with that label); None when it names none of them."""
    if version.isdigit():
        for v in versions:
            if v.revision == int(version):
                return v
    labelled = [v for v in versions if v.label == version]
    if labelled:
        return labelled[-1]
    return None


def record_versions(pending: Sequence[PendingVersion]) -> list[RecordOutcome]:
    """Record new versions, all in one transaction (atomic for ``deploy --all``).

    A version whose content hash equals the live one (or, with ``promote=False``, the latest) is not
    recorded unless ``force``; the outcome says ``unchanged``.
    """
    outcomes: list[RecordOutcome] = []
    with open_store() as conn:
        assert conn is not None
        with transaction(conn):
            for item in pending:
                outcomes.append(_record_one(conn, item))
    return outcomes


def _record_one(conn: sqlite3.Connection, item: PendingVersion) -> RecordOutcome:
    row = conn.execute("SELECT live_revision FROM deployments WHERE name = ?", (item.name,)).fetchone()
    latest = conn.execute("SELECT MAX(revision) FROM versions WHERE deployment = ?", (item.name,)).fetchone()[0]
    if row is None:
        conn.execute(
            "INSERT INTO deployments (name, flow_name, deployment_name, schedules, paused, concurrency_limit) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (item.name, item.flow_name, item.deployment_name, _dumps(item.schedules), int(item.paused),
             _dumps(item.concurrency_limit) if item.concurrency_limit is not None else None))
        live_revision = None
    else:
        live_revision = row[0]
        conn.execute(
            "UPDATE deployments SET schedules = ?, paused = ?, concurrency_limit = ?, "
            "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE name = ?",
            (_dumps(item.schedules), int(item.paused),
             _dumps(item.concurrency_limit) if item.concurrency_limit is not None else None, item.name))
    compare_to = live_revision if item.promote else latest
    if compare_to is not None and not item.force:
        current = conn.execute("SELECT content_hash, label FROM versions WHERE deployment = ? AND revision = ?",
                               (item.name, compare_to)).fetchone()
        if current is not None and current[0] == item.content_hash:
            return RecordOutcome(item.name, "unchanged", compare_to, current[1], compare_to == live_revision)
    revision = (latest or 0) + 1
    conn.execute(
        "INSERT INTO versions (deployment, revision, label, content_hash, record, version_info) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (item.name, revision, item.label, item.content_hash, _dumps(item.record), _dumps(item.version_info)))
    if item.promote:
        conn.execute("UPDATE deployments SET live_revision = ? WHERE name = ?", (revision, item.name))
    status = "created" if latest is None else "updated"
    return RecordOutcome(item.name, status, revision, item.label, item.promote)


def set_live(name: str, version: str | None, *, previous: bool = False) -> VersionRow:
    """Make a version live: the given one, or (``previous``) the revision before the live one."""
    dep = find_deployment(name)
    versions = list_versions(dep.name)
    if previous and version is None:
        older = [v for v in versions if dep.live_revision is None or v.revision < dep.live_revision]
        if not older:
            raise HistoryError(f"deployment '{dep.name}' has no version before the live one "
                               f"({dep.live_revision})", hint="see `flowdeck deployment history`")
        target = older[-1]
    else:
        target = get_version(dep.name, version)
    with open_store() as conn:
        assert conn is not None
        with transaction(conn):
            conn.execute("UPDATE deployments SET live_revision = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', "
                         "'now') WHERE name = ?", (target.revision, dep.name))
    return VersionRow(target.deployment, target.revision, target.label, target.content_hash, target.record,
                      target.version_info, target.created_at, True)


def delete_deployment(name: str) -> str:
    """Remove a deployment and all its versions (runs stay, for the record); return its full name.

    Works on a deployment whose stored rows are damaged: that is how to repair them.
    """
    full = _resolve_name(name)
    with open_store() as conn:
        assert conn is not None
        with transaction(conn):
            conn.execute("DELETE FROM versions WHERE deployment = ?", (full,))
            conn.execute("DELETE FROM deployments WHERE name = ?", (full,))
    return full
