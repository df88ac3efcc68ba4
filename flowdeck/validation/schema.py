"""Structural checks: the JSON Schema, unknown keys, and the rules a schema cannot say well."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import jsonschema

from flowdeck.config import Project
from flowdeck.errors import Problem
from flowdeck.jsontypes import describe
from flowdeck.keys import KeyPath, format_key_path
from flowdeck.schemas import load_schema
from flowdeck.suggest import close_matches
from flowdeck.validation.legacy import DEPLOYMENT_LEGACY, SCHEDULE_LEGACY, TOP_LEVEL_DEPLOYMENT_KEYS

__all__ = ["check_schema", "check_semantics", "check_unknown_keys"]

TOP_KEYS = ("prefect-version", "name", "build", "push", "pull", "deployments", "definitions", "flowdeck")
DEPLOYMENT_KEYS = (
    "name", "version", "version_type", "tags", "description", "schedule", "schedules", "paused",
    "concurrency_limit", "flow_name", "entrypoint", "parameters", "enforce_parameter_schema", "build",
    "push", "pull", "work_pool", "triggers", "sla",
)
WORK_POOL_KEYS = ("name", "work_queue_name", "job_variables")
SCHEDULE_KEYS = ("cron", "interval", "rrule", "timezone", "anchor_date", "active", "parameters", "slug",
                 "day_or", "replaces")

DEPLOYMENT_SYNONYMS = {
    "pool": "work_pool",
    "is_paused": "paused",
    "params": "parameters",
    "job_variables": "work_pool.job_variables",
    "time_zone": "schedules[].timezone",
    "tag": "tags",
    "flow": "flow_name",
    "entry_point": "entrypoint",
    "env": "work_pool.job_variables.env",
}
TOP_SYNONYMS = {"deployment": "deployments", "builds": "build", "pushes": "push", "pulls": "pull",
                "prefect_version": "prefect-version"}
WORK_POOL_SYNONYMS = {"queue": "work_queue_name", "work_queue": "work_queue_name", "variables": "job_variables",
                      "job_vars": "job_variables"}

_JSON_TYPE_NAMES = {"string": "a string", "number": "a number", "integer": "an integer", "boolean": "a boolean",
                    "object": "a mapping", "array": "a list", "null": "null"}


def _json_ready(value: Any) -> Any:
    """YAML dates and timestamps become strings, as they would be in JSON."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _type_hint(path: KeyPath, value: Any, expected: list[str]) -> str | None:
    last = path[-1] if path else ""
    if "string" in expected and isinstance(value, int | float) and not isinstance(value, bool):
        return f"quote it: {last}: \"{value}\""
    if last == "deployments" and isinstance(value, dict):
        return "start each deployment with `- name: ...` so that `deployments` is a list"
    if last in ("schedule",) and isinstance(value, list):
        return "use `schedules:` for a list of schedules"
    if "object" in expected and isinstance(value, str) and "{{" in value:
        return None
    if "object" in expected and value is None:
        return f"use `{last}: {{}}` for an empty mapping"
    return None


def check_schema(project: Project) -> list[Problem]:
    """Validate the file against flowdeck's JSON Schema; every violation becomes a located problem."""
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    problems: list[Problem] = []
    data = _json_ready(project.file.data)
    for error in validator.iter_errors(data):
        path: KeyPath = tuple(error.absolute_path)
        where = format_key_path(path)
        if error.validator == "type":
            raw = error.validator_value
            expected = [str(t) for t in (raw if isinstance(raw, list) else [raw])]
            wanted = " or ".join(_JSON_TYPE_NAMES.get(t, t) for t in expected if t != "null")
            if "null" in expected:
                wanted += " (or empty)"
            message = f"must be {wanted}, not {describe(error.instance)}"
            hint = _type_hint(path, error.instance, list(expected))
        else:
            message = error.message
            hint = None
        problems.append(Problem("error", message, location=project.locate(path), key_path=where or None,
                                hint=hint, code=f"schema-{error.validator}"))
    return problems


def _suggest(key: str, known: tuple[str, ...], synonyms: dict[str, str]) -> str | None:
    """A did-you-mean only for a near miss (`description` is not `definitions`)."""
    if key in synonyms:
        return f"did you mean '{synonyms[key]}'?"
    matches = close_matches(key, known, n=1, cutoff=0.75)
    return f"did you mean '{matches[0]}'?" if matches else None


def _legacy_handled(what: str, key: str) -> bool:
    """Keys :mod:`flowdeck.validation.legacy` reports with a named warning of their own."""
    if what == "top-level key":
        return key in TOP_LEVEL_DEPLOYMENT_KEYS or key == "description"
    if what == "deployment key":
        return key in DEPLOYMENT_LEGACY
    return what == "schedule key" and key in SCHEDULE_LEGACY


def _unknown(project: Project, mapping: dict[str, Any], path: KeyPath, known: tuple[str, ...],
             synonyms: dict[str, str], what: str) -> Iterator[Problem]:
    for key in mapping:
        if not isinstance(key, str) or key in known or _legacy_handled(what, key):
            continue
        if what == "top-level key" and (key.startswith(("x-", "_")) or (isinstance(mapping[key], dict | list)
                                        and key not in synonyms and _suggest(key, known, synonyms) is None)):
            # Extra top-level keys (definitions, variables, x-...) are where users keep anchors.
            continue
        hint = _suggest(key, known, synonyms)
        yield Problem(
            "warning",
            f"unknown {what} '{key}' is ignored",
            location=project.locate_key((*path, key)),
            key_path=format_key_path((*path, key)),
            hint=hint or f"known keys: {', '.join(known)}",
            code="unknown-key",
        )


def check_unknown_keys(project: Project) -> list[Problem]:
    """Warn about keys Prefect and flowdeck ignore, with a suggestion for each."""
    data = project.data
    problems = list(_unknown(project, data, (), TOP_KEYS, TOP_SYNONYMS, "top-level key"))
    deployments = data.get("deployments")
    if not isinstance(deployments, list):
        return problems
    for index, dep in enumerate(deployments):
        if not isinstance(dep, dict):
            continue
        base: KeyPath = ("deployments", index)
        problems += _unknown(project, dep, base, DEPLOYMENT_KEYS, DEPLOYMENT_SYNONYMS, "deployment key")
        pool = dep.get("work_pool")
        if isinstance(pool, dict):
            problems += _unknown(project, pool, (*base, "work_pool"), WORK_POOL_KEYS, WORK_POOL_SYNONYMS,
                                 "work_pool key")
        for sched_path, sched in _schedules(dep, base):
            problems += _unknown(project, sched, sched_path, SCHEDULE_KEYS, {"time_zone": "timezone"},
                                 "schedule key")
    return problems


def _schedules(dep: dict[str, Any], base: KeyPath) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    single = dep.get("schedule")
    if isinstance(single, dict):
        yield (*base, "schedule"), single
    many = dep.get("schedules")
    if isinstance(many, list):
        for index, item in enumerate(many):
            if isinstance(item, dict):
                yield (*base, "schedules", index), item


def _bad_entrypoint(entrypoint: str) -> bool:
    """``file.py:func`` and ``pkg.module:func`` are fine, and so is Prefect's ``pkg.module.func``."""
    if not entrypoint or ":" in entrypoint or "{{" in entrypoint:
        return False
    module, _, func = entrypoint.rpartition(".")
    return not module or module.endswith("/") or func == "py" or not func.isidentifier()


def check_semantics(project: Project) -> list[Problem]:
    """Rules across keys: one kind per schedule, schedule vs schedules, entrypoint shape."""
    problems: list[Problem] = []
    deployments = project.data.get("deployments")
    if not isinstance(deployments, list):
        return problems
    for index, dep in enumerate(deployments):
        if not isinstance(dep, dict):
            continue
        base: KeyPath = ("deployments", index)
        for sched_path, sched in _schedules(dep, base):
            kinds = [k for k in ("cron", "interval", "rrule") if sched.get(k) not in (None, "")]
            if len(kinds) > 1:
                problems.append(Problem(
                    "error", f"a schedule takes one of cron, interval or rrule, not {' and '.join(kinds)}",
                    location=project.locate(sched_path), key_path=format_key_path(sched_path),
                    hint="split it into two schedules under `schedules:`", code="schedule-kind"))
            elif not kinds and any(v is not None for k, v in sched.items() if k != "active"):
                problems.append(Problem(
                    "error", "a schedule needs one of cron, interval or rrule",
                    location=project.locate(sched_path), key_path=format_key_path(sched_path),
                    hint="for example `cron: \"0 * * * *\"`", code="schedule-kind"))
        if dep.get("schedule") and dep.get("schedules"):
            path = (*base, "schedule")
            problems.append(Problem(
                "error", "both `schedule` and `schedules` are given",
                location=project.locate_key(path), key_path=format_key_path(path),
                hint="move the schedule into the `schedules:` list", code="schedule-both"))
        entrypoint = dep.get("entrypoint")
        if isinstance(entrypoint, str) and _bad_entrypoint(entrypoint):
            path = (*base, "entrypoint")
            problems.append(Problem(
                "error", f"entrypoint '{entrypoint}' does not name a function",
                location=project.locate(path), key_path=format_key_path(path),
                hint="write it as `path/to/file.py:function_name` or `package.module:function_name`",
                code="entrypoint"))
    return problems
