"""The embedded registry: flowdeck's own SQLite store under ``FLOWDECK_HOME`` (the default).

A thin adapter: the work is done by :mod:`flowdeck.history`, :mod:`flowdeck.runs`,
:mod:`flowdeck.block_store` and :mod:`flowdeck.variables`, exactly as before the registry seam existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flowdeck import block_store, history, runs, variables
from flowdeck.block_store import BlockRecord
from flowdeck.history import DeploymentRow, PendingVersion, RecordOutcome, RunRow, VersionRow
from flowdeck.runlogs import RunLog
from flowdeck.snapshot.refs import SnapshotRef
from flowdeck.variables import Variable

__all__ = ["EmbeddedRegistry"]


class EmbeddedRegistry:
    """:class:`~flowdeck.registry.base.Registry` over the local SQLite store."""

    def __init__(self) -> None:
        from flowdeck.store import db_path

        self.description = f"flowdeck's store at {db_path()}"

    def list_deployments(self) -> list[DeploymentRow]:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return history.list_deployments()

    def find_deployment(self, name: str) -> DeploymentRow:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return history.find_deployment(name)

    def list_versions(self, name: str) -> list[VersionRow]:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return history.list_versions(name)

    def get_version(self, name: str, version: str | None = None) -> VersionRow:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return history.get_version(name, version)

    def record_versions(self, pending: Sequence[PendingVersion]) -> list[RecordOutcome]:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return history.record_versions(pending)

    def set_live(self, name: str, version: str | None, *, previous: bool = False) -> VersionRow:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return history.set_live(name, version, previous=previous)

    def delete_deployment(self, name: str) -> str:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return history.delete_deployment(name)

    def snapshot_references(self) -> list[SnapshotRef]:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return history.snapshot_references()

    def start_run(self, deployment: str, revision: int, parameters: dict[str, Any], run_name: str | None,
                  idempotency_key: str | None) -> tuple[RunRow, bool]:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return runs.start_run(deployment, revision, parameters, run_name, idempotency_key)

    def finish_run(self, run_id: int | str, status: str, *, result: Any = None, error: str | None = None,
                   directory: str | None = None) -> RunRow:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return runs.finish_run(int(run_id), status, result=result, error=error, directory=directory)

    def list_runs(self, deployment: str | None = None, limit: int = 50) -> list[RunRow]:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return runs.list_runs(deployment, limit)

    def send_run_logs(self, run_id: int | str, entries: Sequence[RunLog]) -> None:
        """Dropped: the embedded store keeps no logs; the run's output is on the console that ran it."""
        return

    def find_block(self, type_slug: str, name: str, *,
                   environ: Mapping[str, str] | None = None) -> BlockRecord | None:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return block_store.find_block(type_slug, name, environ=environ)

    def save_block(self, type_slug: str, name: str, data: Mapping[str, Any], *,
                   overwrite: bool = False) -> BlockRecord:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return block_store.save_block(type_slug, name, data, overwrite=overwrite)

    def list_blocks(self, type_slug: str | None = None, *,
                    environ: Mapping[str, str] | None = None) -> list[BlockRecord]:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return block_store.list_blocks(type_slug, environ=environ)

    def delete_block(self, type_slug: str, name: str) -> None:
        """See :class:`~flowdeck.registry.base.Registry`."""
        block_store.delete_block(type_slug, name)

    def set_variable(self, name: str, value: Any) -> Variable:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return variables.set_variable(name, value)

    def get_variable(self, name: str) -> Variable | None:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return variables.get_variable(name)

    def list_variables(self) -> list[Variable]:
        """See :class:`~flowdeck.registry.base.Registry`."""
        return variables.list_variables()

    def delete_variable(self, name: str) -> None:
        """See :class:`~flowdeck.registry.base.Registry`."""
        variables.delete_variable(name)
