"""The registry seam: one interface for wherever deployments, versions, runs, blocks and variables live.

Two implementations exist: :class:`~flowdeck.registry.embedded.EmbeddedRegistry` (the SQLite store under
``FLOWDECK_HOME``, the default) and :class:`~flowdeck.registry.server.registry.ServerRegistry` (a Prefect
server or Prefect Cloud). :func:`flowdeck.registry.choose.current` picks one; ``deploy``, ``history``,
``pull``, ``run``, ``block``, ``variable`` and ``snapshot`` code only ever sees this interface.

The value types are those of :mod:`flowdeck.history`, :mod:`flowdeck.block_store`, :mod:`flowdeck.variables`
and :mod:`flowdeck.snapshot.refs`, re-exported here so an implementation needs nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from flowdeck.block_store import BlockRecord
from flowdeck.history import DeploymentRow, PendingVersion, RecordOutcome, RunRow, VersionRow
from flowdeck.runlogs import RunLog
from flowdeck.snapshot.refs import SnapshotRef
from flowdeck.variables import Variable

__all__ = [
    "BlockRecord",
    "DeploymentRow",
    "PendingVersion",
    "RecordOutcome",
    "Registry",
    "RunLog",
    "RunRow",
    "SnapshotRef",
    "Variable",
    "VersionRow",
]


@runtime_checkable
class Registry(Protocol):
    """Deployments and their versions, runs, blocks and variables, wherever they are kept."""

    #: A short description for messages ("flowdeck's store at ...", "the Prefect server at ...").
    description: str

    # ---------------------------------------------------------------------------------- deployments

    def list_deployments(self) -> list[DeploymentRow]:
        """Every deployment, by name."""
        ...

    def find_deployment(self, name: str) -> DeploymentRow:
        """A deployment by ``flow/name`` (or its name alone when unambiguous); HistoryError if none."""
        ...

    def list_versions(self, name: str) -> list[VersionRow]:
        """Every recorded version of a deployment, oldest first."""
        ...

    def get_version(self, name: str, version: str | None = None) -> VersionRow:
        """The live version, or one given by revision number or label."""
        ...

    def record_versions(self, pending: Sequence[PendingVersion]) -> list[RecordOutcome]:
        """Record (and, unless ``promote=False``, make live) new versions; all or nothing."""
        ...

    def set_live(self, name: str, version: str | None, *, previous: bool = False) -> VersionRow:
        """Make a recorded version live (rollback, promote)."""
        ...

    def delete_deployment(self, name: str) -> str:
        """Remove a deployment and its versions; return its full name."""
        ...

    def snapshot_references(self) -> list[SnapshotRef]:
        """Every snapshot that any version of any deployment names, read in a few requests.

        Complete or an error, never partial: ``snapshot gc`` deletes what is not in this list.
        """
        ...

    # ------------------------------------------------------------------------------------------ runs

    def start_run(self, deployment: str, revision: int, parameters: dict[str, Any], run_name: str | None,
                  idempotency_key: str | None) -> tuple[RunRow, bool]:
        """Record a run as started; for an idempotency key already used, that run and False."""
        ...

    def finish_run(self, run_id: int | str, status: str, *, result: Any = None, error: str | None = None,
                   directory: str | None = None) -> RunRow:
        """Record how a run ended (``completed``, ``failed``, ``cancelled``)."""
        ...

    def list_runs(self, deployment: str | None = None, limit: int = 50) -> list[RunRow]:
        """The most recent runs, newest first."""
        ...

    def send_run_logs(self, run_id: int | str, entries: Sequence[RunLog]) -> None:
        """Keep a batch of a run's (already redacted) output lines; a store without logs drops them."""
        ...

    # ---------------------------------------------------------------------------------------- blocks

    def find_block(self, type_slug: str, name: str, *,
                   environ: Mapping[str, str] | None = None) -> BlockRecord | None:
        """A block with its secrets (``FLOWDECK_BLOCK__*`` first), registered for redaction; or None."""
        ...

    def save_block(self, type_slug: str, name: str, data: Mapping[str, Any], *,
                   overwrite: bool = False) -> BlockRecord:
        """Create (or, with ``overwrite``, replace) a block."""
        ...

    def list_blocks(self, type_slug: str | None = None, *,
                    environ: Mapping[str, str] | None = None) -> list[BlockRecord]:
        """Every block, sorted by type then name."""
        ...

    def delete_block(self, type_slug: str, name: str) -> None:
        """Remove a block; a missing one is an error."""
        ...

    # ------------------------------------------------------------------------------------- variables

    def set_variable(self, name: str, value: Any) -> Variable:
        """Create or replace a variable."""
        ...

    def get_variable(self, name: str) -> Variable | None:
        """A variable, or None."""
        ...

    def list_variables(self) -> list[Variable]:
        """Every variable, by name."""
        ...

    def delete_variable(self, name: str) -> None:
        """Remove a variable; a missing one is an error."""
        ...
