"""Which snapshot a pull must fetch: the push step reports what it wrote, ``deploy`` records it in the version,
and the worker pins the version's snapshots while it runs that version's pull steps.

The pin is a context variable, not a step argument: a version's pull steps stay exactly what Prefect's own
workers accept, and a pull step of a pinned version matches its snapshot by storage location (the display
URL of the folder, such as ``s3://bucket/flows/``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from flowdeck.snapshot.layout import is_id

__all__ = ["Pin", "current_pin", "pinned_snapshots", "remember", "snapshots_in_outputs"]

_written: dict[str, str] = {}
_written_lock = threading.Lock()


def remember(snapshot_id: str, location: str) -> None:
    """Note that this process wrote ``snapshot_id`` to ``location`` (deploy looks ids up here)."""
    with _written_lock:
        _written[snapshot_id] = location


def snapshots_in_outputs(outputs: Any) -> list[dict[str, str]]:
    """The snapshots named by push step outputs (``snapshot: <id>``, at any depth), with their locations."""
    found: dict[tuple[str, str], dict[str, str]] = {}

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key == "snapshot" and isinstance(item, str) and is_id(item):
                    with _written_lock:
                        location = _written.get(item)
                    if location is not None:
                        found[(location, item)] = {"location": location, "id": item}
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(outputs)
    return [found[k] for k in sorted(found)]


@dataclass(frozen=True)
class Pin:
    """The snapshots of the version being pulled: location -> id, and the version's name for messages."""

    snapshots: Mapping[str, str]
    version: str

    def for_location(self, location: str) -> str | None:
        """The id pinned for this storage location, if any."""
        return self.snapshots.get(location)


_pin: ContextVar[Pin | None] = ContextVar("flowdeck_snapshot_pin", default=None)


def current_pin() -> Pin | None:
    """The pin of the version whose pull steps are running, if any."""
    return _pin.get()


@contextmanager
def pinned_snapshots(records: Any, version: str) -> Iterator[Pin | None]:
    """Pin the snapshots a version record names (``[{"location", "id"}]``) while its pull steps run."""
    items = {
        str(r["location"]): str(r["id"])
        for r in (records if isinstance(records, list) else [])
        if isinstance(r, Mapping) and isinstance(r.get("location"), str) and is_id(str(r.get("id", "")))
    }
    pin = Pin(items, version) if items else None
    token = _pin.set(pin)
    try:
        yield pin
    finally:
        _pin.reset(token)
