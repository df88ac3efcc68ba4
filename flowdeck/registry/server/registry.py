"""A Prefect server (or Prefect Cloud) as flowdeck's registry.

Deployments are the server's own: ``flowdeck deploy`` upserts the flow and creates or patches the deployment
as ``prefect deploy`` does, so Prefect's scheduler, UI and workers see them. Prefect OSS keeps no version
history, so every version flowdeck records is an **artifact** on the server, keyed per deployment
(:func:`~flowdeck.registry.server.payload.history_key`); the latest artifact of a second key
(:func:`~flowdeck.registry.server.payload.live_key`) points at the live one. Revisions are numbered by
creation order, so concurrent deploys never lose or share a number. Records hold no secret.

Runs are flow runs on the server (created ``RUNNING`` so no worker takes them too), blocks are block
documents and variables are variables.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flowdeck.block_store import BlockRecord
from flowdeck.errors import FlowdeckWarning, HistoryError, RegistryError
from flowdeck.history import DeploymentRow, PendingVersion, RecordOutcome, RunRow, VersionRow
from flowdeck.registry.server import blocks, runs, variables, versions
from flowdeck.registry.server.client import PrefectClient, ServerConfig
from flowdeck.registry.server.live import (
    converge,
    deployment_fields,
    recorded_fields,
    warn_overtaken,
)
from flowdeck.registry.server.payload import deployed_by, deployment_body, history_key, live_key
from flowdeck.registry.server.records import ServerRecords, concurrency_of, split_name, utc_now
from flowdeck.registry.server.scan import VERSION_TYPE
from flowdeck.registry.server.versions import version_row
from flowdeck.runlogs import RunLog
from flowdeck.snapshot.refs import SnapshotRef
from flowdeck.variables import Variable

__all__ = ["ServerRegistry"]

# A SQLite-backed server answers 503 when many writers queue; a few parallel writers are the sweet spot.
_WORKERS = 2


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


class ServerRegistry:
    """:class:`~flowdeck.registry.base.Registry` over a Prefect server's REST API."""

    def __init__(self, config: ServerConfig, client: PrefectClient | None = None) -> None:
        self.client = client or PrefectClient(config)
        self.description = f"the Prefect server at {self.client.where}"
        #: The deployments, version artifacts and live pointers on the server (one client for all).
        self.records = ServerRecords(self.client, self.description)
        self._checked_pools: set[str] = set()

    # ------------------------------------------------------------------------------------- reading

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

    # ------------------------------------------------------------------------------------- writing

    def _check_pool(self, pool: str, create: bool) -> None:
        if pool in self._checked_pools:
            return
        if self.client.get_or_none(f"work_pools/{pool}") is None:
            if not create:
                raise RegistryError(
                    f"work pool '{pool}' does not exist on {self.description}",
                    hint=f"create it with `prefect work-pool create {pool} --type process`, or deploy with "
                         "`--create-pool`")
            self.client.post("work_pools/", {"name": pool, "type": "process"}, what=f"work pool '{pool}'")
        self._checked_pools.add(pool)

    def _post_version(self, item: PendingVersion) -> dict[str, Any]:
        info = dict(item.version_info)
        info.setdefault("deployed_by", deployed_by())
        data = {"flowdeck": 1, "deployment": item.name, "label": item.label, "content_hash": item.content_hash,
                "record": item.record, "version_info": info, "deployed_at": utc_now()}
        commit = str(info.get("commit_sha") or "")[:12]
        description = (f"flowdeck version **{item.label}** of `{item.name}`, deployed by {info['deployed_by']}"
                       + (f" from commit `{commit}`" if commit else ""))
        art = self.client.post("artifacts/", {
            "key": history_key(item.name), "type": VERSION_TYPE, "data": data, "description": description,
            "metadata_": {"label": item.label, "content_hash": item.content_hash, "commit": commit}},
            what=f"a version record of '{item.name}'")
        return dict(art)

    def _apply(self, name: str, record: Mapping[str, Any], body: dict[str, Any], existing: Mapping[str, Any] | None,
               artifact_id: str, label: str, content_hash: str, revision: int, *, flow_id: str | None = None) -> None:
        """Make one version live: write the deployment, then move the live pointer to it."""
        flow, dep = split_name(name)
        what = f"deployment '{name}'"
        if existing is None:
            if flow_id is None:
                flow_id = str(self.client.post("flows/", {"name": flow}, what=f"flow '{flow}'")["id"])
            self.client.post("deployments/", {"name": dep, "flow_id": flow_id, **body}, what=what)
        else:
            self.client.patch(f"deployments/{existing['id']}", body, what=what)
        self.records.point(name, artifact_id, label, content_hash, revision)

    def record_versions(self, pending: Sequence[PendingVersion]) -> list[RecordOutcome]:
        """Record versions on the server; if a write fails midway, restore what was live before.

        Reads come first (a few requests for any number of deployments) and nothing is written if they fail
        or a work pool is missing. Then every version record is written, then every deployment is updated;
        deployments are written in parallel, each in its own order.
        """
        states: list[tuple[PendingVersion, dict[str, Any] | None, dict[str, Any] | None]] = []
        outcomes: dict[str, RecordOutcome] = {}
        snapshot = self.records.states([item.name for item in pending])
        for item in pending:
            existing, pointer = snapshot[item.name]
            if not item.force:
                same = bool(pointer and pointer.get("content_hash") == item.content_hash)
                if item.promote and existing is not None and pointer and same:
                    # Unchanged only if the deployment still holds the live version: one changed outside
                    # flowdeck (or left by a deploy killed midway) is written again.
                    if deployment_fields(existing) == recorded_fields(item.record, str(pointer.get("label"))):
                        outcomes[item.name] = RecordOutcome(item.name, "unchanged",
                                                            int(pointer.get("revision") or 0),
                                                            str(pointer.get("label")), True)
                        continue
                    warnings.warn(FlowdeckWarning(
                        f"deployment '{item.name}' on {self.description} does not hold its live version "
                        f"(revision {pointer.get('revision')}): it was changed outside flowdeck (or by a deploy still "
                        f"running); deploying it again",
                        hint=f"`flowdeck deployment history {item.name}` shows the versions"), stacklevel=2)
                if not item.promote:
                    versions = self.records.versions(item.name)
                    last = versions[-1] if versions else None
                    if last and (last.get("data") or {}).get("content_hash") == item.content_hash:
                        live = bool(pointer and pointer.get("artifact_id") == last.get("id"))
                        outcomes[item.name] = RecordOutcome(item.name, "unchanged", len(versions),
                                                            str(last["data"].get("label")), live)
                        continue
            # Only a deployment that changes needs its pool (an unchanged redeploy costs reads only).
            pool = (item.record.get("work_pool") or {}).get("name")
            if pool and item.promote:
                self._check_pool(str(pool), item.create_pool)
            states.append((item, existing, pointer))
        if not states:
            return [outcomes[item.name] for item in pending]

        # Record every version (not live yet); on failure remove what this call recorded.
        def record(state: tuple[PendingVersion, Any, Any]) -> tuple[dict[str, Any], int]:
            art = self._post_version(state[0])
            return art, self.records.revision_of(state[0].name, art["id"])

        recorded, error = _parallel(record, states)
        posted = [(*state, result[0]) for state, result in zip(states, recorded, strict=True) if result is not None]
        if error is not None:
            self._forget(posted)
            raise error
        revisions = {state[0].name: result[1] for state, result in zip(states, recorded, strict=True) if result}
        # The flows of new deployments, once each (an upsert on the name).
        flow_ids: dict[str, str] = {}
        try:
            for item, existing, _pointer, _art in posted:
                if existing is None and item.promote and item.flow_name not in flow_ids:
                    flow = self.client.post("flows/", {"name": item.flow_name}, what=f"flow '{item.flow_name}'")
                    flow_ids[item.flow_name] = str(flow["id"])
        except RegistryError:
            self._forget(posted)
            raise

        # Make them live; if any write fails, restore the previous live versions.
        def make_live(entry: tuple[PendingVersion, Any, Any, dict[str, Any]]) -> bool:
            item, existing, _pointer, art = entry
            if item.promote:
                self._apply(item.name, item.record, deployment_body(item, item.record, item.label), existing,
                            art["id"], item.label, item.content_hash, revisions[item.name],
                            flow_id=flow_ids.get(item.flow_name))
            return True

        applied, error = _parallel(make_live, posted)
        if error is not None:
            done = [(item, existing, pointer)
                    for (item, existing, pointer, _art), ok in zip(posted, applied, strict=True) if ok and item.promote]
            self._restore(done)
            # The versions of a failed deploy were never live: leave no trace of them.
            self._forget(posted)
            raise error
        settled = self._settle([(item.name, str(art["id"]), recorded_fields(item.record, item.label))
                             for item, _existing, _pointer, art in posted if item.promote])
        for item, existing, pointer, art in posted:
            status = "created" if existing is None and pointer is None else "updated"
            outcomes[item.name] = RecordOutcome(item.name, status, revisions[item.name], item.label,
                                                item.promote and settled.get(item.name) == art["id"])
        return [outcomes[item.name] for item in pending if item.name in outcomes]

    def _settle(self, written: Sequence[tuple[str, str, str]]) -> dict[str, str | None]:
        """After making versions live (``(name, artifact id, its fields)``): the version each deployment ends up
        on, once the deployment and its live pointer agree (a concurrent deploy may have won).

        Re-reading the deployments (one request for one, two batched ones per 100) checks them all: a deployment
        that still holds what this process pointed at agrees with the pointer, or a later pointer write will be
        checked by its own writer; only a deployment that holds another version costs more (:func:`converge`).
        """
        if not written:
            return {}
        snapshot = self.records.states([name for name, _, _ in written], pointers=False)
        settled: dict[str, str | None] = {}
        for name, artifact_id, fields in written:
            dep, _pointer = snapshot[name]
            if dep is not None and deployment_fields(dep) == fields:
                settled[name] = artifact_id
                continue
            settled[name] = converge(self.records, name, artifact_id, dep)
            if settled[name] != artifact_id:
                warn_overtaken(self.records, name, artifact_id, settled[name])
        return settled

    def _forget(self, posted: Sequence[tuple[Any, Any, Any, dict[str, Any]]]) -> None:
        for *_, art in posted:
            try:
                self.client.delete(f"artifacts/{art['id']}")
            except RegistryError:
                pass

    def _restore(self, done: Sequence[tuple[PendingVersion, dict[str, Any] | None, dict[str, Any] | None]]) -> None:
        """Best effort: put back what was live before this deploy (the server may be gone)."""
        for item, existing, pointer in reversed(done):
            try:
                if existing is None:
                    now = self.records.deployment(item.name)
                    if now is not None:
                        self.client.delete(f"deployments/{now['id']}")
                    continue
                if pointer:
                    self._make_live(item.name, str(pointer["artifact_id"]), existing)
            except RegistryError:
                continue

    def _make_live(self, name: str, artifact_id: str, existing: Mapping[str, Any] | None) -> VersionRow:
        versions = self.records.versions(name)
        for index, art in enumerate(versions):
            if art.get("id") == artifact_id:
                data = art.get("data") or {}
                record = dict(data.get("record") or {})
                label = str(data.get("label", ""))
                current = existing if existing is not None else self.records.deployment(name)
                pending = PendingVersion(
                    name=name, flow_name=split_name(name)[0], deployment_name=split_name(name)[1], label=label,
                    content_hash=str(data.get("content_hash", "")), record=record,
                    version_info=dict(data.get("version_info") or {}),
                    # Schedules, paused and the concurrency limit belong to the deployment: keep today's.
                    schedules=[dict(s.get("schedule") or {}, active=s.get("active", True), slug=s.get("slug"))
                               for s in (current or {}).get("schedules") or []],
                    paused=bool((current or {}).get("paused", False)),
                    concurrency_limit=concurrency_of(current or {}))
                self._apply(name, record, deployment_body(pending, record, label), current, artifact_id, label,
                            pending.content_hash, index + 1)
                now = self._settle([(name, artifact_id, recorded_fields(record, label))]).get(name)
                return version_row(name, index + 1, art, now)
        raise HistoryError(f"deployment '{name}' has no version {artifact_id}")

    def set_live(self, name: str, version: str | None, *, previous: bool = False) -> VersionRow:
        """Make a recorded version live by updating the deployment on the server."""
        versions = self.list_versions(name)
        full = versions[0].deployment if versions else self.find_deployment(name).name
        live = next((v for v in versions if v.live), None)
        if previous and version is None:
            older = [v for v in versions if live is None or v.revision < live.revision]
            if not older:
                raise HistoryError(f"deployment '{full}' has no version before the live one "
                                   f"({live.revision if live else '-'})", hint="see `flowdeck deployment history`")
            target = older[-1]
        else:
            target = self.get_version(full, version)
        raw = self.records.versions(full)[target.revision - 1]
        return self._make_live(full, str(raw["id"]), None)

    def delete_deployment(self, name: str) -> str:
        """Remove the deployment from the server, with flowdeck's version records."""
        row = self.find_deployment(name)
        dep = self.records.deployment(row.name)
        if dep is not None:
            self.client.delete(f"deployments/{dep['id']}", what=f"deployment '{row.name}'")
        for key in (history_key(row.name), live_key(row.name)):
            for art in self.client.post("artifacts/filter", {"artifacts": {"key": {"any_": [key]}}, "limit": 200}):
                self.client.delete(f"artifacts/{art['id']}")
        return row.name

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
