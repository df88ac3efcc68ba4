"""Runs of deployments as flow runs on a Prefect server, and their log lines as the server's logs.

A run flowdeck starts itself is created ``RUNNING``, so no worker takes it too; its deployment, revision
and version label are flow run labels (``flowdeck.deployment``, ...), so the history can name them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from flowdeck.errors import HistoryError
from flowdeck.history import RunRow
from flowdeck.redact import redact
from flowdeck.registry.server.client import PrefectClient
from flowdeck.registry.server.records import ServerRecords, utc_now
from flowdeck.registry.server.versions import find_deployment, list_versions
from flowdeck.runlogs import RunLog

__all__ = ["finish_run", "list_runs", "run_row", "send_run_logs", "start_run"]

_STATUS = {"RUNNING": "running", "COMPLETED": "completed", "FAILED": "failed", "CRASHED": "failed",
           "CANCELLED": "cancelled", "CANCELLING": "cancelled", "PENDING": "running", "SCHEDULED": "scheduled",
           "PAUSED": "paused"}
_STATE = {"completed": "COMPLETED", "failed": "FAILED", "cancelled": "CANCELLED", "running": "RUNNING"}


def run_row(run: Mapping[str, Any], deployment: str | None = None) -> RunRow:
    """A flow run as a :class:`~flowdeck.history.RunRow` (its result is read back from the state message)."""
    state = run.get("state") or {}
    labels = run.get("labels") or {}
    status = _STATUS.get(str(run.get("state_type") or state.get("type")), "running")
    result = None
    message = state.get("message")
    if status == "completed" and message and message.startswith("result: "):
        try:
            result = json.loads(message[len("result: "):])
        except ValueError:
            result = message
    return RunRow(str(run["id"]), deployment or str(labels.get("flowdeck.deployment", "")),
                  int(labels.get("flowdeck.revision") or 0), run.get("name"), run.get("idempotency_key"),
                  status, dict(run.get("parameters") or {}), result,
                  message if status == "failed" else None, None,
                  str(run.get("start_time") or run.get("created") or ""), run.get("end_time"))


def _log(client: PrefectClient, run_id: str, level: int, message: str) -> None:
    client.post("logs/", [{"name": "flowdeck", "level": level, "message": redact(message),
                           "timestamp": utc_now(), "flow_run_id": run_id}])


def start_run(records: ServerRecords, deployment: str, revision: int, parameters: dict[str, Any],
              run_name: str | None, idempotency_key: str | None) -> tuple[RunRow, bool]:
    """Create a flow run of the deployment on the server, already RUNNING (no worker takes it)."""
    client = records.client
    dep = records.deployment(deployment)
    if dep is None:
        raise HistoryError(f"deployment '{deployment}' is not on {records.description}",
                           hint="deploy it with `flowdeck deploy`")
    label = next((v.label for v in list_versions(records, deployment) if v.revision == revision), "")
    body: dict[str, Any] = {"parameters": parameters, "state": {"type": "RUNNING", "name": "Running"},
                            "labels": {"flowdeck.deployment": deployment, "flowdeck.revision": str(revision),
                                       "flowdeck.version": label}}
    if run_name:
        body["name"] = run_name
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    run = client.post(f"deployments/{dep['id']}/create_flow_run", body,
                      what=f"a run of deployment '{deployment}'",
                      hint="check the parameters against the flow's signature")
    # 201: a new run; 200: the idempotency key was used before and this is that run.
    fresh = client.last_status == 201
    row = run_row(run, deployment)
    if fresh:
        _log(client, str(run["id"]), 20, f"flowdeck: running revision {revision} ({label}) of {deployment}")
    return row, fresh


def send_run_logs(client: PrefectClient, run_id: int | str, entries: Sequence[RunLog]) -> None:
    """POST the batch to ``/logs/`` as logs of the flow run: Prefect's UI shows them with the run."""
    if entries:
        client.post("logs/", [{"name": e.name, "level": e.level, "message": redact(e.message),
                               "timestamp": e.timestamp, "flow_run_id": str(run_id)} for e in entries],
                    what=f"the logs of flow run {run_id}")


def finish_run(client: PrefectClient, run_id: int | str, status: str, *, result: Any = None,
               error: str | None = None, directory: str | None = None) -> RunRow:
    """Report the final state (and the error, as a log) of a run on the server."""
    run_id = str(run_id)
    if error:
        _log(client, run_id, 40, error)
    else:
        _log(client, run_id, 20, f"flowdeck: run {status}")
    message = error if status != "completed" else "result: " + json.dumps(result, default=str)[:2000]
    client.post(f"flow_runs/{run_id}/set_state",
                {"state": {"type": _STATE.get(status, "FAILED"), "message": redact(message or "")},
                 "force": True}, what=f"the state of flow run {run_id}")
    run = client.get(f"flow_runs/{run_id}")
    row = run_row(run)
    return RunRow(row.id, row.deployment, row.revision, row.run_name, row.idempotency_key, row.status,
                  row.parameters, row.result, row.error, directory, row.started_at, row.ended_at)


def list_runs(records: ServerRecords, deployment: str | None = None, limit: int = 50) -> list[RunRow]:
    """The most recent flow runs (of one deployment), newest first."""
    body: dict[str, Any] = {"limit": limit, "sort": "ID_DESC"}
    name = None
    if deployment:
        name = find_deployment(records, deployment).name
        dep = records.deployment(name)
        if dep is None:
            return []
        body["deployments"] = {"id": {"any_": [dep["id"]]}}
    runs = records.client.post("flow_runs/filter", body, what="flow runs")
    return [run_row(r, name) for r in runs]
