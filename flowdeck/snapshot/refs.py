"""Which versions name which snapshots: the references ``snapshot ls / show / gc`` honour.

A version record names its snapshots as ``record["snapshots"] = [{"location", "id"}]``. Every registry
(flowdeck's store, a Prefect server) answers :meth:`~flowdeck.registry.base.Registry.snapshot_references`
with one :class:`SnapshotRef` per (version, snapshot) pair, read from those records by
:func:`refs_in_record`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowdeck.snapshot.layout import is_id

__all__ = ["SnapshotRef", "refs_in_record"]


@dataclass(frozen=True, order=True)
class SnapshotRef:
    """One version naming one snapshot: the storage location's URL, the snapshot id, and the version as
    ``deployment label`` (for messages)."""

    location: str
    id: str
    version: str


def refs_in_record(deployment: str, label: str, record: Mapping[str, Any]) -> list[SnapshotRef]:
    """The snapshots a version record names (malformed entries are not references: a pull ignores them)."""
    items = record.get("snapshots")
    return [
        SnapshotRef(item["location"], str(item["id"]), f"{deployment} {label}")
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, Mapping) and isinstance(item.get("location"), str) and is_id(str(item.get("id")))
    ]
