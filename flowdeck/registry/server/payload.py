"""What flowdeck sends a Prefect server for a deployment version, and how history is keyed there.

The deployment body holds the fields ``prefect deploy`` sets (the captured call sequence in the reference),
built from flowdeck's version record. Block and variable placeholders are kept as written in
``pull_steps`` and ``job_variables``: the worker resolves them at run time, so the server never holds a
resolved secret. Only fields with a value are sent (the server forbids unknown fields, and older servers
reject newer ones). A version with code snapshots names them in the job variable
:data:`~flowdeck.snapshot.pin.JOB_VARIABLE`, for ``flowdeck flow-run execute``.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
from collections.abc import Mapping
from typing import Any

from flowdeck.history import PendingVersion
from flowdeck.snapshot.pin import JOB_VARIABLE, pin_variable

__all__ = ["VERSION_FIELDS", "deployed_by", "deployment_body", "history_key", "live_key", "openapi_schema",
           "server_schedules", "version_fields"]

# Artifact keys allow ^[a-z0-9-]*$ only.
_NOT_KEY = re.compile(r"[^a-z0-9]+")
_TYPES = {"int": "integer", "float": "number", "str": "string", "bool": "boolean", "list": "array",
          "dict": "object", "tuple": "array", "set": "array"}


def history_key(name: str) -> str:
    """The artifact key holding every version of deployment ``flow/name`` (unique per name)."""
    slug = _NOT_KEY.sub("-", name.lower()).strip("-")[:60]
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"flowdeck-{slug}-{digest}"


def live_key(name: str) -> str:
    """The artifact key whose latest artifact points at the live version."""
    return history_key(name) + "-live"


def openapi_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Prefect's ``parameter_openapi_schema`` from flowdeck's ``ast``-read parameter description."""
    properties: dict[str, Any] = {}
    for position, (name, spec) in enumerate(dict(schema.get("properties") or {}).items()):
        entry: dict[str, Any] = {"title": str(name), "position": position}
        annotation = str(spec.get("annotation") or "") if isinstance(spec, Mapping) else ""
        base = annotation.split("[", 1)[0].split(".")[-1].strip()
        if base in _TYPES:
            entry["type"] = _TYPES[base]
        if isinstance(spec, Mapping) and "default" in spec:
            entry["default"] = spec["default"]
        properties[str(name)] = entry
    body: dict[str, Any] = {"title": "Parameters", "type": "object", "properties": properties, "definitions": {}}
    required = list(schema.get("required") or [])
    if required:
        body["required"] = required
    return body


def _seconds(value: Any) -> Any:
    if isinstance(value, str) and value.replace(".", "", 1).isdigit():
        return float(value)
    return value


def server_schedules(items: list[Any]) -> list[dict[str, Any]]:
    """``prefect.yaml`` schedules as ``DeploymentScheduleCreate`` items.

    Each gets a slug (its own, else ``schedule-<n>``) so that an update changes schedules in place and
    keeps their ids and already scheduled runs.
    """
    result: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        schedule: dict[str, Any]
        if item.get("cron") is not None:
            schedule = {"cron": item["cron"]}
            if "day_or" in item:
                schedule["day_or"] = bool(item["day_or"])
        elif item.get("interval") is not None:
            schedule = {"interval": _seconds(item["interval"])}
            if item.get("anchor_date"):
                schedule["anchor_date"] = item["anchor_date"]
        elif item.get("rrule") is not None:
            schedule = {"rrule": item["rrule"]}
        else:
            continue
        if item.get("timezone"):
            schedule["timezone"] = item["timezone"]
        entry: dict[str, Any] = {"schedule": schedule, "active": bool(item.get("active", True)),
                                 "slug": str(item.get("slug") or f"schedule-{index + 1}")}
        if item.get("max_scheduled_runs"):
            entry["max_scheduled_runs"] = item["max_scheduled_runs"]
        if item.get("parameters"):
            entry["parameters"] = item["parameters"]
        result.append(entry)
    return result


#: The deployment fields every write of a version sets from the version alone (the others are left as they are
#: when a version has no value for them, or belong to the deployment: schedules, paused, concurrency).
VERSION_FIELDS = ("entrypoint", "version", "parameters", "enforce_parameter_schema", "job_variables", "tags",
                  "pull_steps")


def version_fields(record: Mapping[str, Any], label: str) -> dict[str, Any]:
    """What a version writes into :data:`VERSION_FIELDS`: together they say which version a deployment holds."""
    pool = record.get("work_pool") or {}
    job_variables = dict(pool.get("job_variables") or {})
    # Written with the pull steps in one request: rollback and promote move the pin with them.
    pin = pin_variable(label, record.get("pull_steps"), record.get("snapshots"))
    if pin is not None:
        job_variables[JOB_VARIABLE] = pin
    return {
        "entrypoint": record.get("entrypoint"),
        "version": label,
        "parameters": dict(record.get("parameters") or {}),
        "enforce_parameter_schema": bool(record.get("enforce_parameter_schema", False)),
        "job_variables": job_variables,
        "tags": list(record.get("tags") or []),
        "pull_steps": list(record.get("pull_steps") or []),
    }


def deployment_body(pending: PendingVersion, record: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The fields of ``POST /deployments/`` / ``PATCH /deployments/{id}`` for one version."""
    pool = record.get("work_pool") or {}
    body: dict[str, Any] = {
        **version_fields(record, label),
        "parameter_openapi_schema": openapi_schema(record.get("parameter_schema") or {}),
        "paused": bool(pending.paused),
        "schedules": server_schedules(list(pending.schedules or [])),
    }
    for field, value in (("description", record.get("description")), ("work_pool_name", pool.get("name")),
                         ("work_queue_name", pool.get("work_queue_name"))):
        if value:
            body[field] = str(value)
    limit = pending.concurrency_limit
    if isinstance(limit, Mapping):
        if limit.get("limit") is not None:
            body["concurrency_limit"] = int(limit["limit"])
        if limit.get("collision_strategy"):
            body["concurrency_options"] = {"collision_strategy": str(limit["collision_strategy"])}
    elif limit is not None:
        body["concurrency_limit"] = int(limit)
    info = {k: str(v) for k, v in (pending.version_info or {}).items()
            if k in {"type", "version", "commit_sha", "message", "branch", "repository", "url"} and v}
    info.setdefault("type", "flowdeck")
    info["version"] = label
    body["version_info"] = info
    return body


def deployed_by(environ: Mapping[str, str] | None = None) -> str:
    """Who deploys: the CI actor when there is one, else the git identity, else the login name."""
    env = os.environ if environ is None else environ
    for var in ("FLOWDECK_DEPLOYED_BY", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR",
                "CIRCLE_USERNAME", "BITBUCKET_STEP_TRIGGERER_UUID"):
        if env.get(var):
            return str(env[var])
    for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        if env.get(var):
            return str(env[var])
    try:
        import subprocess

        email = subprocess.run(["git", "config", "user.email"], capture_output=True, text=True, timeout=5,
                               check=False).stdout.strip()
        if email:
            return email
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
