"""Reading deployments and their version history from a Prefect server: lists, lookups by name and version.

Reads only. The live version is the one the server's deployment holds (:func:`~flowdeck.registry.server.live.live_id`);
a deployment flowdeck never recorded shows as revision 0, what the server holds (:func:`unrecorded_version`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from flowdeck.errors import HistoryError
from flowdeck.history import DeploymentRow, VersionRow, pick_version
from flowdeck.registry.server.live import live_id, warn_drift
from flowdeck.registry.server.records import ServerRecords, concurrency_of, split_name
from flowdeck.registry.server.scan import every_version_artifact
from flowdeck.snapshot.refs import SnapshotRef, refs_in_record
from flowdeck.suggest import did_you_mean

__all__ = ["Found", "deployment_row", "find", "find_deployment", "get_version", "list_deployments",
           "list_versions", "snapshot_references", "unrecorded_version", "version_row"]


class Found(NamedTuple):
    """A deployment named as the user wrote it, as read from the server."""

    #: Its full name, ``flow/deployment``.
    name: str
    #: The server's deployment, or None (removed outside flowdeck, versions left).
    deployment: dict[str, Any] | None
    #: flowdeck's version artifacts, oldest first.
    versions: list[dict[str, Any]]
    #: The live pointer's data, or None.
    pointer: dict[str, Any] | None


def version_row(name: str, revision: int, art: Mapping[str, Any], live: str | None) -> VersionRow:
    """A version artifact as a :class:`~flowdeck.history.VersionRow`; ``live`` is the live version's id."""
    data = art.get("data") or {}
    return VersionRow(name, revision, str(data.get("label", "")), str(data.get("content_hash", "")),
                      dict(data.get("record") or {}), dict(data.get("version_info") or {}),
                      str(art.get("created") or ""), art.get("id") == live)


def deployment_row(name: str, dep: Mapping[str, Any] | None, versions: list[dict[str, Any]],
                   pointer: Mapping[str, Any] | None) -> DeploymentRow:
    """A deployment (and flowdeck's versions of it) as a :class:`~flowdeck.history.DeploymentRow`."""
    flow, short = split_name(name)
    live = live_id(dep, versions, pointer)
    live_rev = next((i + 1 for i, a in enumerate(versions) if a.get("id") == live), None)
    dep = dep or {}
    schedules = [s.get("schedule") for s in dep.get("schedules") or []]
    return DeploymentRow(name, flow, short, live_rev, schedules, bool(dep.get("paused", False)),
                         concurrency_of(dep), len(versions) or None, str(dep.get("updated") or ""))


def list_deployments(records: ServerRecords) -> list[DeploymentRow]:
    """Every deployment on the server (with flowdeck's revision numbers where it has them)."""
    client = records.client
    deps = client.post("deployments/filter", {"limit": 200, "sort": "NAME_ASC"}, what="the deployments")
    flow_ids = sorted({d["flow_id"] for d in deps})
    flows = client.post("flows/filter", {"flows": {"id": {"any_": flow_ids}}}) if flow_ids else []
    flow_names = {f["id"]: f["name"] for f in flows}
    rows = []
    for dep in deps:
        name = f"{flow_names.get(dep['flow_id'], '?')}/{dep['name']}"
        rows.append(deployment_row(name, dep, records.versions(name), records.live_pointer(name)))
    return sorted(rows, key=lambda r: r.name)


def find(records: ServerRecords, name: str) -> Found:
    """A deployment by ``flow/name`` or by a name that only one flow uses; HistoryError if none or ambiguous."""
    client = records.client
    if "/" not in name:
        deps = client.post("deployments/filter", {"deployments": {"name": {"any_": [name]}}})
        if len(deps) > 1:
            flows = client.post("flows/filter", {"flows": {"id": {"any_": [d["flow_id"] for d in deps]}}})
            names = sorted(f"{f['name']}/{name}" for f in flows)
            raise HistoryError(f"'{name}' is ambiguous", hint=f"use one of: {', '.join(names)}")
        if len(deps) == 1:
            flow = client.get(f"flows/{deps[0]['flow_id']}")
            name = f"{flow['name']}/{name}"
    dep = records.deployment(name) if "/" in name else None
    versions = records.versions(name) if "/" in name else []
    if dep is None and not versions:
        known = [r.name for r in list_deployments(records)]
        raise HistoryError(f"no deployment named '{name}' on {records.description}",
                           hint=did_you_mean(name, known) or "deploy it first with `flowdeck deploy`")
    return Found(name, dep, versions, records.live_pointer(name))


def find_deployment(records: ServerRecords, name: str) -> DeploymentRow:
    """A deployment by ``flow/name`` or by a name that only one flow uses."""
    return deployment_row(*find(records, name))


def list_versions(records: ServerRecords, name: str) -> list[VersionRow]:
    """Every version flowdeck recorded on the server for ``name``, oldest first.

    The live one is the version the server's deployment holds; a deployment that disagrees with flowdeck's
    live pointer (changed outside flowdeck, or a deploy stopped midway) is reported with a warning.
    """
    full, dep, versions, pointer = find(records, name)
    warn_drift(records, full, dep, versions, pointer)
    live = live_id(dep, versions, pointer)
    return [version_row(full, i + 1, a, live) for i, a in enumerate(versions)]


def unrecorded_version(name: str, dep: Mapping[str, Any]) -> VersionRow:
    """A deployment flowdeck did not record, as revision 0: what the server holds is what runs."""
    flow, short = split_name(name)
    record = {"name": short, "flow_name": flow, "entrypoint": dep.get("entrypoint"),
              "description": dep.get("description"), "parameters": dict(dep.get("parameters") or {}),
              "enforce_parameter_schema": bool(dep.get("enforce_parameter_schema")),
              "work_pool": {"name": dep.get("work_pool_name"), "work_queue_name": dep.get("work_queue_name"),
                            "job_variables": dict(dep.get("job_variables") or {})},
              "tags": list(dep.get("tags") or []), "pull_steps": list(dep.get("pull_steps") or [])}
    return VersionRow(name, 0, str(dep.get("version") or ""), "", record, {}, str(dep.get("updated") or ""), True)


def get_version(records: ServerRecords, name: str, version: str | None = None) -> VersionRow:
    """The live version, or one by revision number or label (``0``: what the server holds)."""
    versions = list_versions(records, name)
    full = versions[0].deployment if versions else name
    if version is None:
        live = [v for v in versions if v.live]
        if not live:
            # Deployed by `prefect deploy` (or never promoted): the server's deployment is what runs.
            full = full if "/" in full else find_deployment(records, full).name
            dep = records.deployment(full)
            if dep is not None:
                return unrecorded_version(full, dep)
            raise HistoryError(f"deployment '{full}' has no live version recorded by flowdeck on "
                               f"{records.description}",
                               hint=f"deploy it with `flowdeck deploy`, or promote one with "
                                    f"`flowdeck deployment promote {full} --to REVISION`")
        return live[0]
    found = pick_version(versions, version)
    if found is not None:
        return found
    if version == "0":
        # Revision 0: the deployment as the server holds it (one flowdeck did not record).
        full = full if "/" in full else find_deployment(records, full).name
        dep = records.deployment(full)
        if dep is not None:
            return unrecorded_version(full, dep)
    known = ", ".join(f"{v.revision} ({v.label})" for v in versions) or "(none)"
    raise HistoryError(f"deployment '{full}' has no version '{version}'", hint=f"its versions are: {known}")


def snapshot_references(records: ServerRecords) -> list[SnapshotRef]:
    """The snapshots named by every version record on the server: one paginated read of all of them
    (not one per deployment), complete or a RegistryError."""
    found: list[SnapshotRef] = []
    for art in every_version_artifact(records.client):
        data = art.get("data")
        if isinstance(data, dict) and isinstance(data.get("record"), dict):
            found.extend(refs_in_record(str(data.get("deployment") or art.get("key")),
                                        str(data.get("label", "")), data["record"]))
    return sorted(found)
