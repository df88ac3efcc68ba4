"""Which snapshot a pull must fetch: the push step reports what it wrote, ``deploy`` records it in the version,
and the worker pins the version's snapshots while it runs that version's pull steps.

The pin is a context variable: a version's pull steps stay exactly what Prefect's own workers accept, and a
pull step of a pinned version matches its snapshot by storage location (the display URL of the folder, such
as ``s3://bucket/flows/``). Where flowdeck's own engine does not choose the version, the pin travels with
the deployment instead:

* on a Prefect server, the deployment's job variable :data:`JOB_VARIABLE` names the snapshots of the
  version it serves (written in the same request as its pull steps, so ``rollback`` and ``promote`` move
  it too); ``flowdeck flow-run execute`` pins them (:func:`pin_of_deployment`);
* a pull step published under flowdeck's own name (``flowdeck.steps.pull_from_s3`` ...) carries them as its
  ``snapshots`` input, so Prefect's runner calling flowdeck's step pulls that version too
  (:func:`step_pin`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from flowdeck.snapshot.layout import is_id

__all__ = ["JOB_VARIABLE", "Pin", "current_pin", "pin_of_deployment", "pin_variable", "pinned_snapshots", "remember",
           "snapshots_in_outputs", "step_pin"]

#: The job variable of a deployment on a Prefect server that names the snapshots of the version it serves.
#: Workers ignore it (no job template uses it); ``flowdeck flow-run execute`` reads it.
JOB_VARIABLE = "flowdeck_snapshots"

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


def step_pin(records: Any, what: str = "the deployed version") -> AbstractContextManager[Pin | None]:
    """A pull step's own ``snapshots`` input pinned while it runs; without one, or with the very snapshots of
    the version being pulled (whose name reads better in messages), the pin in force stays."""
    outer = current_pin()
    if not records or (outer is not None and isinstance(records, list) and all(
            isinstance(r, Mapping) and outer.for_location(str(r.get("location"))) == r.get("id") for r in records)):
        return nullcontext(outer)
    return pinned_snapshots(records, what)


def _fingerprint(pull_steps: Any) -> str:
    text = json.dumps(pull_steps if isinstance(pull_steps, list) else [], sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pin_variable(label: str, pull_steps: Any, snapshots: Any) -> dict[str, Any] | None:
    """The value of :data:`JOB_VARIABLE` for a version (None when it has no snapshots).

    It names the version and fingerprints the pull steps it was written with: a deployment that something
    else rewrote later (``prefect deploy``, an edit in the UI) no longer matches, and is pulled unpinned.
    """
    if not isinstance(snapshots, list) or not snapshots:
        return None
    return {"version": label, "pull_steps": _fingerprint(pull_steps), "snapshots": snapshots}


def pin_of_deployment(deployment: Mapping[str, Any]) -> tuple[list[Any], str] | None:
    """The snapshots (and version label) a server's deployment says its pull steps must fetch, if any.

    None when it names none, or when its version or pull steps are no longer those the pin was written for.
    """
    variables = deployment.get("job_variables")
    value = variables.get(JOB_VARIABLE) if isinstance(variables, Mapping) else None
    if not isinstance(value, Mapping) or not isinstance(value.get("snapshots"), list):
        return None
    label = str(value.get("version") or "")
    if label != str(deployment.get("version") or "") or value.get("pull_steps") != _fingerprint(
            deployment.get("pull_steps")):
        return None
    return list(value["snapshots"]), label
