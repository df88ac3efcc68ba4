"""Deployment version history in the local store: versions, the live one, rollback and promote, runs.

A deployment (``flow-name/deployment-name``) has numbered revisions. Each revision holds everything a
worker needs (the *record*) and a content hash; one revision is live. Schedules, ``paused`` and the
concurrency limit belong to the deployment itself, so a rollback never resurrects an old schedule.
All writes happen in one ``BEGIN IMMEDIATE`` transaction, so concurrent deploys never lose a revision.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flowdeck.errors import HistoryError
from flowdeck.store import open_store, transaction
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
    "list_runs",
    "list_versions",
    "record_versions",
    "set_live",
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
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _deployment_row(row: sqlite3.Row | tuple[Any, ...]) -> DeploymentRow:
    return DeploymentRow(row[0], row[1], row[2], row[3], json.loads(row[4]), bool(row[5]),
                         json.loads(row[6]) if row[6] else None, row[7], row[8])


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


def find_deployment(name: str) -> DeploymentRow:
    """A deployment by ``flow/name`` or by its name alone when that is unambiguous."""
    rows = list_deployments()
    exact = [r for r in rows if r.name == name]
    if exact:
        return exact[0]
    by_short = [r for r in rows if r.deployment_name == name]
    if len(by_short) == 1:
        return by_short[0]
    if len(by_short) > 1:
        raise HistoryError(f"'{name}' is ambiguous", hint=f"use one of: {', '.join(r.name for r in by_short)}")
    names = [r.name for r in rows] + [r.deployment_name for r in rows]
    hint = did_you_mean(name, names) or ("deploy it first with `flowdeck deploy`" if not rows else
                                          f"the deployments are: {', '.join(r.name for r in rows)}")
    raise HistoryError(f"no deployment named '{name}'", hint=hint)


def _version_row(row: tuple[Any, ...], live_revision: int | None) -> VersionRow:
    return VersionRow(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]), row[6],
                      row[1] == live_revision)


_VERSION_SELECT = ("SELECT deployment, revision, label, content_hash, record, version_info, created_at "
                   "FROM versions WHERE deployment = ?")


def list_versions(name: str) -> list[VersionRow]:
    """Every revision of a deployment, oldest first."""
    dep = find_deployment(name)
    with open_store() as conn:
        assert conn is not None
        rows = conn.execute(_VERSION_SELECT + " ORDER BY revision", (dep.name,)).fetchall()
    return [_version_row(r, dep.live_revision) for r in rows]


def get_version(name: str, version: str | None = None) -> VersionRow:
    """The live revision, or the one given by number (``3``) or label (latest with that label)."""
    versions = list_versions(name)
    if version is None:
        live = [v for v in versions if v.live]
        if not live:
            raise HistoryError(f"deployment '{name}' has no live version",
                               hint=f"promote one with `flowdeck deployment promote {name} --to REVISION`")
        return live[0]
    if version.isdigit():
        for v in versions:
            if v.revision == int(version):
                return v
    labelled = [v for v in versions if v.label == version]
    if labelled:
        return labelled[-1]
    known = ", ".join(f"{v.revision} ({v.label})" for v in versions)
    raise HistoryError(f"deployment '{name}' has no version '{version}'", hint=f"its versions are: {known}")


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


def delete_deployment(name: str) -> DeploymentRow:
    """Remove a deployment and all its versions (runs stay, for the record)."""
    dep = find_deployment(name)
    with open_store() as conn:
        assert conn is not None
        with transaction(conn):
            conn.execute("DELETE FROM versions WHERE deployment = ?", (dep.name,))
            conn.execute("DELETE FROM deployments WHERE name = ?", (dep.name,))
    return dep


# ------------------------------------------------------------------------------------------------- runs


def _run_row(row: tuple[Any, ...]) -> RunRow:
    return RunRow(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]),
                  json.loads(row[7]) if row[7] is not None else None, row[8], row[9], row[10], row[11])


_RUN_SELECT = ("SELECT id, deployment, revision, run_name, idempotency_key, status, parameters, result, error, "
               "directory, started_at, ended_at FROM runs")


def start_run(deployment: str, revision: int, parameters: dict[str, Any], run_name: str | None,
              idempotency_key: str | None) -> tuple[RunRow, bool]:
    """Record a run as started; with an idempotency key already used, return that run and False."""
    with open_store() as conn:
        assert conn is not None
        with transaction(conn):
            if idempotency_key is not None:
                existing = conn.execute(_RUN_SELECT + " WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
                if existing is not None:
                    return _run_row(existing), False
            cursor = conn.execute(
                "INSERT INTO runs (deployment, revision, run_name, idempotency_key, status, parameters) "
                "VALUES (?, ?, ?, ?, 'running', ?)",
                (deployment, revision, run_name, idempotency_key, _dumps(parameters)))
            row = conn.execute(_RUN_SELECT + " WHERE id = ?", (cursor.lastrowid,)).fetchone()
    return _run_row(row), True


def finish_run(run_id: int, status: str, *, result: Any = None, error: str | None = None,
               directory: str | None = None) -> RunRow:
    """Record how a run ended."""
    with open_store() as conn:
        assert conn is not None
        with transaction(conn):
            conn.execute(
                "UPDATE runs SET status = ?, result = ?, error = ?, directory = ?, "
                "ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
                (status, _dumps(result) if result is not None else None, error, directory, run_id))
            row = conn.execute(_RUN_SELECT + " WHERE id = ?", (run_id,)).fetchone()
    return _run_row(row)


def list_runs(deployment: str | None = None, limit: int = 50) -> list[RunRow]:
    """The most recent runs, newest first."""
    with open_store(create=False) as conn:
        if conn is None:
            return []
        if deployment:
            name = find_deployment(deployment).name
            rows = conn.execute(_RUN_SELECT + " WHERE deployment = ? ORDER BY id DESC LIMIT ?",
                                (name, limit)).fetchall()
        else:
            rows = conn.execute(_RUN_SELECT + " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [_run_row(r) for r in rows]
