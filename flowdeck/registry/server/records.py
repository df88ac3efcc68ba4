"""What a Prefect server holds about one of flowdeck's deployments: the deployment, its versions, its live pointer.

Every other part of the server registry reads and moves these three through :class:`ServerRecords`:
the deployment is the server's own object, the versions are artifacts under
:func:`~flowdeck.registry.server.payload.history_key` and the live pointer is the latest artifact under
:func:`~flowdeck.registry.server.payload.live_key` (see :mod:`flowdeck.registry.server.registry`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flowdeck.registry.server.client import PrefectClient
from flowdeck.registry.server.payload import history_key, live_key
from flowdeck.registry.server.scan import VERSION_TYPE

__all__ = ["DeploymentState", "ServerRecords", "concurrency_of", "oldest_first", "revision_in", "split_name",
           "utc_now"]

#: A deployment and its live pointer, either None when the server has none.
DeploymentState = tuple[dict[str, Any] | None, dict[str, Any] | None]


def utc_now() -> str:
    """Now, as the server writes its timestamps (for version records and log lines)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def oldest_first(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Version artifacts in revision order (sorted in place, and returned): creation order, ties broken by
    id, so concurrent deploys never share or lose a revision number."""
    versions.sort(key=lambda a: (a.get("created") or "", a.get("id") or ""))
    return versions


def revision_in(versions: Sequence[Mapping[str, Any]], artifact_id: str | None) -> int | None:
    """The revision number of ``artifact_id`` among ``versions`` (oldest first), or None."""
    return next((i + 1 for i, a in enumerate(versions) if a.get("id") == artifact_id), None)


def split_name(name: str) -> tuple[str, str]:
    """``flow/deployment`` as its flow name and deployment name."""
    flow, _, dep = name.partition("/")
    return flow, dep


def concurrency_of(dep: Mapping[str, Any]) -> Any:
    """A deployment's concurrency limit: the server keeps it as a global limit of its own."""
    limit = (dep.get("global_concurrency_limit") or {}).get("limit")
    return limit if limit is not None else dep.get("concurrency_limit")


class ServerRecords:
    """Reads of a deployment, its version artifacts and its live pointer, and the write that moves the pointer.

    The one seam through which :mod:`~flowdeck.registry.server.live` and the registry's modules see the
    server's state of a deployment by its full name (``flow/deployment``).
    """

    def __init__(self, client: PrefectClient, description: str) -> None:
        self.client = client
        #: The server, for messages ("the Prefect server at ...").
        self.description = description

    def deployment(self, name: str) -> dict[str, Any] | None:
        """The server's deployment ``flow/deployment``, or None."""
        flow, dep = split_name(name)
        result = self.client.get_or_none(f"deployments/name/{flow}/{dep}")
        return result if isinstance(result, dict) else None

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version artifact of ``name``, oldest first (the position + 1 is the revision)."""
        found: list[dict[str, Any]] = self.client.post_all("artifacts/filter", {
            "artifacts": {"key": {"any_": [history_key(name)]}}, "sort": "CREATED_DESC"},
            what=f"the version history of '{name}'")
        return oldest_first(found)

    def revision_of(self, name: str, artifact_id: str) -> int:
        """The revision number of a version artifact of ``name`` (the last one if it is not found)."""
        versions = self.versions(name)
        return revision_in(versions, artifact_id) or len(versions)

    def revisions(self, artifacts: Mapping[str, str]) -> dict[str, int]:
        """The revision number of each version artifact (``name -> artifact id``), read together (one paged
        read whatever the number of names); a name whose artifact is not found is left out."""
        if not artifacts:
            return {}
        keys = {history_key(name): name for name in artifacts}
        found: list[dict[str, Any]] = self.client.post_all("artifacts/filter", {
            "artifacts": {"key": {"any_": sorted(keys)}}, "sort": "CREATED_DESC"},
            what="the version histories just written")
        by_name: dict[str, list[dict[str, Any]]] = {}
        for art in found:
            if art.get("key") in keys:
                by_name.setdefault(keys[str(art["key"])], []).append(art)
        numbers: dict[str, int] = {}
        for name, arts in by_name.items():
            number = revision_in(oldest_first(arts), artifacts[name])
            if number is not None:
                numbers[name] = number
        return numbers

    def live_pointer(self, name: str) -> dict[str, Any] | None:
        """The data of ``name``'s live pointer (``artifact_id``, ``label``, ...), or None when it has none."""
        art = self.client.get_or_none(f"artifacts/{live_key(name)}/latest")
        data = art.get("data") if isinstance(art, dict) else None
        return data if isinstance(data, dict) and data.get("artifact_id") else None

    def point(self, name: str, artifact_id: str, label: str, content_hash: str, revision: int) -> None:
        """Move the live pointer of ``name`` to a recorded version."""
        self.client.post("artifacts/", {
            "key": live_key(name), "type": VERSION_TYPE + "-live",
            "data": {"artifact_id": artifact_id, "label": label, "content_hash": content_hash, "revision": revision},
            "description": f"flowdeck: revision {revision} ({label}) of `{name}` is live"},
            what=f"the live pointer of '{name}'")

    def states(self, names: Sequence[str], *, pointers: bool = True) -> dict[str, DeploymentState]:
        """The deployment and live pointer (unless ``pointers`` is False) of each name, in a few requests
        whatever the number of names."""
        found: dict[str, DeploymentState] = {n: (None, None) for n in names}
        unique = sorted(set(names))
        if len(unique) == 1:
            # One deployment: two direct reads beat three batched ones.
            name = unique[0]
            return {name: (self.deployment(name), self.live_pointer(name) if pointers else None)}
        for start in range(0, len(unique), 100):
            chunk = unique[start:start + 100]
            deps: list[dict[str, Any]] = self.client.post_all("deployments/filter", {
                "flows": {"name": {"any_": sorted({split_name(n)[0] for n in chunk})}},
                "deployments": {"name": {"any_": sorted({split_name(n)[1] for n in chunk})}}},
                what="the deployments to update")
            flow_ids = sorted({d["flow_id"] for d in deps})
            flows = self.client.post("flows/filter", {"flows": {"id": {"any_": flow_ids}}, "limit": 200}) \
                if flow_ids else []
            flow_names = {f["id"]: f["name"] for f in flows}
            by_name = {f"{flow_names.get(d['flow_id'])}/{d['name']}": d for d in deps}
            live = self.client.post("artifacts/latest/filter", {
                "artifacts": {"key": {"any_": [live_key(n) for n in chunk]}}, "limit": 200}) if pointers else []
            by_key = {a.get("key"): a.get("data") for a in live if isinstance(a.get("data"), dict)}
            for name in chunk:
                found[name] = (by_name.get(name), by_key.get(live_key(name)))
        return found
