"""Runs started by ``flowdeck run`` in the local store: started, finished, listed.

A run is only a record (the deployment and revision it ran, its parameters, result or error); removing a
deployment keeps its runs. Secrets in what is stored are masked: the run itself got the real values.
"""

from __future__ import annotations

from typing import Any

from flowdeck.history import RunRow, find_deployment
from flowdeck.jsontypes import dumps_sorted
from flowdeck.redact import redact, redact_value
from flowdeck.store import decode_json, open_store, transaction

__all__ = ["finish_run", "list_runs", "start_run"]


def _compact(value: Any) -> str:
    # As the history stores its JSON: sorted keys, no spaces.
    return dumps_sorted(value, separators=(",", ":"))


def _run_row(row: tuple[Any, ...]) -> RunRow:
    entry = f"run {row[0]}"
    remedy = (f"runs are only a record: delete this one with `sqlite3 FLOWDECK_HOME/flowdeck.db "
              f"'DELETE FROM runs WHERE id = {row[0]}'`")
    return RunRow(row[0], row[1], row[2], row[3], row[4], str(row[5]),
                  decode_json(row[6], entry=f"{entry} (parameters)", remedy=remedy, shape=dict),
                  decode_json(row[7], entry=f"{entry} (result)", remedy=remedy) if row[7] is not None else None,
                  row[8], row[9], row[10], row[11])


_RUN_SELECT = ("SELECT id, deployment, revision, run_name, idempotency_key, status, parameters, result, error, "
               "directory, started_at, ended_at FROM runs")


def start_run(deployment: str, revision: int, parameters: dict[str, Any], run_name: str | None,
              idempotency_key: str | None) -> tuple[RunRow, bool]:
    """Record a run as started; with an idempotency key already used, return that run and False.

    Parameter values that show a registered secret are stored masked (the run itself gets the real ones).
    """
    parameters = redact_value(parameters)
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
                (deployment, revision, run_name, idempotency_key, _compact(parameters)))
            row = conn.execute(_RUN_SELECT + " WHERE id = ?", (cursor.lastrowid,)).fetchone()
    return _run_row(row), True


def finish_run(run_id: int, status: str, *, result: Any = None, error: str | None = None,
               directory: str | None = None) -> RunRow:
    """Record how a run ended (secrets in the result or the error are masked: the store keeps none)."""
    result = redact_value(result)
    error = redact(error) if error is not None else None
    with open_store() as conn:
        assert conn is not None
        with transaction(conn):
            conn.execute(
                "UPDATE runs SET status = ?, result = ?, error = ?, directory = ?, "
                "ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
                (status, _compact(result) if result is not None else None, error, directory, run_id))
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
