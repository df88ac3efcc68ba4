"""What a flow run executor asks of the Prefect server: the run, its deployment, state changes and logs.

Built on the registry's :class:`~flowdeck.registry.server.client.PrefectClient` (the same URL and
credentials as every other flowdeck command); every call is one REST request.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flowdeck.registry.server.client import PrefectClient, ServerConfig

__all__ = ["FINAL_STATES", "FlowRunApi", "StateResult"]

#: States a run never leaves.
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
_NAMES = {"RUNNING": "Running", "COMPLETED": "Completed", "FAILED": "Failed", "CRASHED": "Crashed",
          "CANCELLED": "Cancelled", "CANCELLING": "Cancelling"}


@dataclass(frozen=True)
class StateResult:
    """The server's answer to a proposed state: ACCEPT, REJECT, ABORT or WAIT, and the run's state now."""

    status: str
    state_type: str | None
    reason: str | None


def now_iso() -> str:
    """The current UTC time in the server's format."""
    return dt.datetime.now(dt.UTC).isoformat()


class FlowRunApi:
    """One flow run on one server. Not shared between threads: each thread makes its own."""

    def __init__(self, config: ServerConfig, flow_run_id: str, *, version_checked: bool = False) -> None:
        """``version_checked``: the executor's first client already checked the server (see
        :class:`PrefectClient`): the log shipper's and the cancellation watcher's do not ask again."""
        self.client = PrefectClient(config, retries=5, version_checked=version_checked)
        self.flow_run_id = flow_run_id

    def close(self) -> None:
        """Close the connection."""
        self.client.close()

    def read_flow_run(self) -> dict[str, Any]:
        """``GET /flow_runs/{id}``."""
        run: dict[str, Any] = self.client.get(f"flow_runs/{self.flow_run_id}", what=f"flow run {self.flow_run_id}",
                                              hint="check PREFECT__FLOW_RUN_ID and PREFECT_API_URL")
        return run

    def read_flow_run_checked(self) -> dict[str, Any]:
        """:meth:`read_flow_run` while the server's version is checked (one round trip instead of two); a
        server flowdeck does not speak fails with the version's error, whatever the read answered."""
        version_checked = self.client.check_version_in_background()
        try:
            run = self.read_flow_run()
        except BaseException:
            version_checked()  # a wrong server explains a failed read better than the read does
            raise
        version_checked()
        return run

    def read_deployment(self, deployment_id: str) -> dict[str, Any]:
        """``GET /deployments/{id}``."""
        deployment: dict[str, Any] = self.client.get(f"deployments/{deployment_id}",
                                                     what=f"deployment {deployment_id}")
        return deployment

    def state_type(self) -> str | None:
        """The run's current state type (``RUNNING``, ``CANCELLING`` ...)."""
        state = self.read_flow_run().get("state") or {}
        value = state.get("type")
        return str(value) if value else None

    def set_state(self, state_type: str, message: str | None = None, *, force: bool = False) -> StateResult:
        """Propose a state (``POST /flow_runs/{id}/set_state``); the server's orchestration rules decide."""
        state: dict[str, Any] = {"type": state_type, "name": _NAMES.get(state_type, state_type.title())}
        if message:
            state["message"] = message[:5000]
        answer = self.client.post(f"flow_runs/{self.flow_run_id}/set_state", {"state": state, "force": force},
                                  what=f"flow run {self.flow_run_id}")
        answer = answer if isinstance(answer, dict) else {}
        now = answer.get("state") or {}
        details = answer.get("details") or {}
        return StateResult(str(answer.get("status", "")), now.get("type"), details.get("reason"))

    def send_logs(self, records: list[dict[str, Any]]) -> None:
        """``POST /logs/`` (each record: name, level, message, timestamp)."""
        if records:
            self.client.post("logs/", [{**r, "flow_run_id": self.flow_run_id} for r in records],
                             what="flow run logs")
