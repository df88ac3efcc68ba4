"""A Prefect server (or Prefect Cloud) as flowdeck's registry.

Deployments are the server's own: ``flowdeck deploy`` upserts the flow and creates or patches the deployment
as ``prefect deploy`` does, so Prefect's scheduler, UI and workers see them. Prefect OSS keeps no version
history, so every version flowdeck records is an **artifact** on the server, keyed per deployment
(:func:`~flowdeck.registry.server.payload.history_key`); the latest artifact of a second key
(:func:`~flowdeck.registry.server.payload.live_key`) points at the live one. Revisions are numbered by
creation order, so concurrent deploys never lose or share a number. Records hold no secret.

Runs are flow runs on the server (created ``RUNNING`` so no worker takes them too), blocks are block
documents and variables are variables.

:class:`ServerRegistry` only routes each :class:`~flowdeck.registry.base.Registry` call to the module that
does the work:

* :mod:`~flowdeck.registry.server.records`: a deployment, its version artifacts and its live pointer;
* :mod:`~flowdeck.registry.server.versions`: reading deployments and their version history;
* :mod:`~flowdeck.registry.server.recording`: recording new versions (a deploy), removing a deployment;
* :mod:`~flowdeck.registry.server.promote`: making a recorded version live (rollback, promote);
* :mod:`~flowdeck.registry.server.live`: which version a deployment holds when deploys race;
* :mod:`~flowdeck.registry.server.pools`: the work pools and flows a deployment needs;
* :mod:`~flowdeck.registry.server.runs`, :mod:`~flowdeck.registry.server.blocks` and
  :mod:`~flowdeck.registry.server.variables`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flowdeck.block_store import BlockRecord
from flowdeck.history import DeploymentRow, PendingVersion, RecordOutcome, RunRow, VersionRow
from flowdeck.registry.server import blocks, promote, recording, runs, variables, versions
from flowdeck.registry.server.client import PrefectClient, ServerConfig
from flowdeck.registry.server.pools import WorkPools
from flowdeck.registry.server.records import ServerRecords
from flowdeck.runlogs import RunLog
from flowdeck.snapshot.refs import SnapshotRef
from flowdeck.variables import Variable

__all__ = ["ServerRegistry"]


class ServerRegistry:
    """:class:`~flowdeck.registry.base.Registry` over a Prefect server's REST API."""

    def __init__(self, config: ServerConfig, client: PrefectClient | None = None) -> None:
        self.client = client or PrefectClient(config)
        self.description = f"the Prefect server at {self.client.where}"
        #: The deployments, version artifacts and live pointers on the server (one client for all).
        self.records = ServerRecords(self.client, self.description)
        # Per registry, as before: a process that deploys again checks each pool once.
        self._pools = WorkPools(self.client, self.description)

    # ---------------------------------------------------------------------------------- deployments

    def list_deployments(self) -> list[DeploymentRow]:
        """Every deployment on the server (with flowdeck's revision numbers where it has them)."""
        return versions.list_deployments(self.records)

    def find_deployment(self, name: str) -> DeploymentRow:
        """A deployment by ``flow/name`` or by a name that only one flow uses."""
        return versions.find_deployment(self.records, name)

    def list_versions(self, name: str) -> list[VersionRow]:
        """Every version flowdeck recorded on the server for ``name``, oldest first.

        The live one is the version the server's deployment holds; a deployment that disagrees with flowdeck's
        live pointer (changed outside flowdeck, or a deploy stopped midway) is reported with a warning.
        """
        return versions.list_versions(self.records, name)

    def get_version(self, name: str, version: str | None = None) -> VersionRow:
        """The live version, or one by revision number or label."""
        return versions.get_version(self.records, name, version)

    def record_versions(self, pending: Sequence[PendingVersion]) -> list[RecordOutcome]:
        """Record versions on the server; if a write fails midway, restore what was live before.

        Reads come first (a few requests for any number of deployments) and nothing is written if they fail
        or a work pool is missing. Then every version record is written, then every deployment is updated;
        deployments are written in parallel, each in its own order.
        """
        return recording.record_versions(self.records, self._pools, pending)

    def set_live(self, name: str, version: str | None, *, previous: bool = False) -> VersionRow:
        """Make a recorded version live by updating the deployment on the server."""
        return promote.set_live(self.records, name, version, previous=previous)

    def delete_deployment(self, name: str) -> str:
        """Remove the deployment from the server, with flowdeck's version records."""
        return recording.delete_deployment(self.records, name)

    def snapshot_references(self) -> list[SnapshotRef]:
        """The snapshots named by every version record on the server: one paginated read of all of them
        (not one per deployment), complete or a RegistryError."""
        return versions.snapshot_references(self.records)

    # ----------------------------------------------------------------------------------------- runs

    def start_run(self, deployment: str, revision: int, parameters: dict[str, Any], run_name: str | None,
                  idempotency_key: str | None) -> tuple[RunRow, bool]:
        """Create a flow run of the deployment on the server, already RUNNING (no worker takes it)."""
        return runs.start_run(self.records, deployment, revision, parameters, run_name, idempotency_key)

    def send_run_logs(self, run_id: int | str, entries: Sequence[RunLog]) -> None:
        """POST the batch to ``/logs/`` as logs of the flow run: Prefect's UI shows them with the run."""
        runs.send_run_logs(self.client, run_id, entries)

    def finish_run(self, run_id: int | str, status: str, *, result: Any = None, error: str | None = None,
                   directory: str | None = None) -> RunRow:
        """Report the final state (and the error, as a log) of a run on the server."""
        return runs.finish_run(self.client, run_id, status, result=result, error=error, directory=directory)

    def list_runs(self, deployment: str | None = None, limit: int = 50) -> list[RunRow]:
        """The most recent flow runs (of one deployment), newest first."""
        return runs.list_runs(self.records, deployment, limit)

    # --------------------------------------------------------------------------------------- blocks

    def find_block(self, type_slug: str, name: str, *,
                   environ: Mapping[str, str] | None = None) -> BlockRecord | None:
        """``FLOWDECK_BLOCK__*`` first, then the server's block document with its secrets."""
        return blocks.find_block(self.client, type_slug, name, environ=environ)

    def save_block(self, type_slug: str, name: str, data: Mapping[str, Any], *,
                   overwrite: bool = False) -> BlockRecord:
        """Create (or replace) a block document with the server's latest schema of its type."""
        return blocks.save_block(self.client, self.description, type_slug, name, data, overwrite=overwrite)

    def list_blocks(self, type_slug: str | None = None, *,
                    environ: Mapping[str, str] | None = None) -> list[BlockRecord]:
        """The server's named block documents (secrets masked by the server), and the environment's."""
        return blocks.list_blocks(self.client, type_slug, environ=environ)

    def delete_block(self, type_slug: str, name: str) -> None:
        """Remove a block document from the server."""
        blocks.delete_block(self.client, self.description, type_slug, name)

    # ------------------------------------------------------------------------------------ variables

    def set_variable(self, name: str, value: Any) -> Variable:
        """Create or replace a variable on the server."""
        return variables.set_variable(self.client, name, value)

    def get_variable(self, name: str) -> Variable | None:
        """A variable from the server, or None."""
        return variables.get_variable(self.client, name)

    def list_variables(self) -> list[Variable]:
        """Every variable on the server."""
        return variables.list_variables(self.client)

    def delete_variable(self, name: str) -> None:
        """Remove a variable from the server."""
        variables.delete_variable(self.client, self.description, name)
