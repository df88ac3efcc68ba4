"""Which recorded version a Prefect server's deployment holds: the deployment is the truth about what runs.

Making a version live is two writes a server cannot put in one transaction: the deployment (``PATCH``), then
flowdeck's live pointer (an artifact). Two deploys of the same deployment can interleave them (A writes the
deployment, B writes it, B moves the pointer, A moves it), leaving the pointer on A while the deployment holds
B. A lock would have to expire to survive a crashed holder, and an expired lock held by a slow deploy lets the
race back in; so instead the deployment decides. A deployment holds a version when the fields every write of
a version sets (:data:`~flowdeck.registry.server.payload.VERSION_FIELDS`) equal that version's, and after
moving the pointer a deploy re-reads the deployment and, while it holds another version than the one just
pointed at, points the pointer at what the deployment holds. The last pointer write of all is followed by a
read that comes after the last deployment write, so the two end up naming the same version whatever the
interleaving (:func:`converge`).

The functions that read or move the pointer take a :class:`~flowdeck.registry.server.records.ServerRecords`:
the deployment, version artifacts and live pointer of a deployment, and nothing else of the registry.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flowdeck.errors import FlowdeckWarning
from flowdeck.registry.server.payload import VERSION_FIELDS, version_fields
from flowdeck.registry.server.records import revision_in

if TYPE_CHECKING:
    from flowdeck.registry.server.records import ServerRecords

__all__ = ["converge", "deployment_fields", "held_version", "live_id", "recorded_fields", "warn_drift",
           "warn_overtaken"]

# Each disagreement seen again means another deployment write landed in between; concurrent deploys make
# a handful at most, so this bound is only reached by a deployment rewritten in a loop.
_ATTEMPTS = 12


def _canonical(fields: Mapping[str, Any]) -> str:
    return json.dumps({k: fields.get(k) for k in VERSION_FIELDS}, sort_keys=True, default=str)


def deployment_fields(dep: Mapping[str, Any]) -> str:
    """The version fields of a deployment as the server returns it, in a comparable form."""
    return _canonical({
        "entrypoint": dep.get("entrypoint"),
        "version": dep.get("version"),
        "parameters": dict(dep.get("parameters") or {}),
        "enforce_parameter_schema": bool(dep.get("enforce_parameter_schema")),
        "job_variables": dict(dep.get("job_variables") or {}),
        "tags": list(dep.get("tags") or []),
        "pull_steps": list(dep.get("pull_steps") or []),
    })


def recorded_fields(record: Mapping[str, Any], label: str) -> str:
    """The version fields a recorded version writes, in the same form as :func:`deployment_fields`."""
    return _canonical(version_fields(record, label))


def _artifact_fields(art: Mapping[str, Any]) -> str:
    data = art.get("data") or {}
    return recorded_fields(dict(data.get("record") or {}), str(data.get("label", "")))


def held_version(dep: Mapping[str, Any], versions: Sequence[Mapping[str, Any]],
                 prefer: Iterable[str | None] = ()) -> str | None:
    """The artifact id of the version ``dep`` holds, or None when it holds none (changed outside flowdeck).

    Versions with equal fields are the same configuration; among them the first of ``prefer`` that matches
    wins (the current pointer, so that an agreeing pair is left alone), else the newest.
    """
    held = deployment_fields(dep)
    matching = [str(a.get("id")) for a in versions if _artifact_fields(a) == held]
    if not matching:
        return None
    for wanted in prefer:
        if wanted in matching:
            return wanted
    return matching[-1]


def live_id(dep: Mapping[str, Any] | None, versions: Sequence[Mapping[str, Any]],
            pointer: Mapping[str, Any] | None) -> str | None:
    """The live version's artifact id: the one the deployment holds, else the one the pointer names."""
    named = str(pointer["artifact_id"]) if pointer and pointer.get("artifact_id") else None
    held = held_version(dep, versions, prefer=(named,)) if dep is not None and versions else None
    return held or named


def converge(records: ServerRecords, name: str, pointed: str, dep: Mapping[str, Any] | None) -> str | None:
    """Point the live pointer at the version the deployment holds, until a re-read finds them agreeing.

    ``pointed`` is the version this process last pointed the pointer at and ``dep`` the deployment read after
    that write. Returns the version the deployment holds once this process's last pointer write names it, or
    None when the deployment holds none of flowdeck's versions (the pointer is then left alone).

    Why this converges: take the last pointer write of all, by some deploy D. Every deploy writes the pointer
    after its own deployment write, so that last pointer write, and D's re-read of the deployment after it,
    come after the last deployment write: D read the final deployment, and as D wrote nothing more, it held
    the version D had just pointed at.
    """
    for _ in range(_ATTEMPTS):
        if dep is None:
            return None  # removed meanwhile (`deployment rm`): nothing is live
        versions = records.versions(name)
        held = held_version(dep, versions, prefer=(pointed,))
        if held is None or held == pointed:
            return held
        revision = revision_in(versions, held) or len(versions)
        data = next(a.get("data") or {} for a in versions if a.get("id") == held)
        records.point(name, held, str(data.get("label", "")), str(data.get("content_hash", "")), revision)
        pointed, dep = held, records.deployment(name)
    return pointed


def warn_overtaken(records: ServerRecords, name: str, mine: str, settled: str | None) -> None:
    """Say that a version this process made live is not the live one any more, and which is."""
    versions = records.versions(name)
    ours = revision_in(versions, mine)
    promote = f"`flowdeck deployment promote {name} --to {ours}` makes it live" if ours else ""
    if settled is None:
        message = (f"deployment '{name}' on {records.description} was changed outside flowdeck while this "
                   f"version was being made live: it holds none of flowdeck's versions")
    else:
        message = (f"a concurrent deploy of '{name}' made revision {revision_in(versions, settled)} live after this "
                   f"one (revision {ours}, recorded but not live)")
    warnings.warn(FlowdeckWarning(message, hint=promote or None), stacklevel=2)


def warn_drift(records: ServerRecords, name: str, dep: Mapping[str, Any] | None,
               versions: Sequence[Mapping[str, Any]], pointer: Mapping[str, Any] | None) -> None:
    """Warn when the server's deployment and flowdeck's live pointer disagree (history reads both)."""
    named = str(pointer["artifact_id"]) if pointer and pointer.get("artifact_id") else None
    if dep is None or not versions or named is None:
        return
    held = held_version(dep, versions, prefer=(named,))
    if held == named:
        return
    pointed = revision_in(versions, named)
    if held is None:
        warnings.warn(FlowdeckWarning(
            f"deployment '{name}' on {records.description} was changed outside flowdeck (by `prefect deploy` "
            f"or the UI?) since revision {pointed} was made live: it holds none of flowdeck's versions",
            hint=f"`flowdeck deployment show {name} --version 0` shows what it holds; `flowdeck deployment "
                 f"promote {name} --to {pointed}` writes revision {pointed} back"), stacklevel=2)
        return
    holds = revision_in(versions, held)
    warnings.warn(FlowdeckWarning(
        f"deployment '{name}' on {records.description} holds revision {holds}, but flowdeck's live pointer "
        f"names revision {pointed} (a deploy stopped between its two writes, or one still running?): revision "
        f"{holds} is shown as live",
        hint=f"`flowdeck deployment promote {name} --to {holds}` records it"), stacklevel=2)
