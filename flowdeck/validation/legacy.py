"""Prefect 2 keys that Prefect 3 rejects or ignores: a named warning with the Prefect 3 spelling each.

Prefect 3's deployment model ignores unknown deployment keys, and its schedule model forbids them (one
forbidden key makes ``prefect deploy`` skip the whole file). Files saved by Prefect 2.x still carry them,
so each gets a warning that names it as a Prefect 2 key and says what to write instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowdeck.config import Project
from flowdeck.errors import Problem
from flowdeck.keys import KeyPath, format_key_path

__all__ = ["DEPLOYMENT_LEGACY", "SCHEDULE_LEGACY", "TOP_LEVEL_DEPLOYMENT_KEYS", "check_legacy_keys"]

# Deployment keys of Prefect 2 (prefect.yaml and deployment.yaml) -> what Prefect 3 spells instead.
DEPLOYMENT_LEGACY = {
    "is_schedule_active": "`active: false` on each schedule under `schedules:` (or `paused: true` for the "
                          "whole deployment)",
    "max_active_runs": "`concurrency_limit: N` on the deployment",
    "infra_overrides": "`work_pool: {job_variables: {...}}`",
    "infrastructure": "a work pool: `work_pool: {name: ...}` (infrastructure blocks are gone in Prefect 3)",
    "storage": "a pull step, e.g. `pull: [prefect.deployments.steps.git_clone: {repository: ...}]` (storage "
               "blocks are gone in Prefect 3)",
    "path": "a pull step such as `prefect.deployments.steps.set_working_directory: {directory: ...}`",
    "work_pool_name": "`work_pool: {name: ...}`",
    "work_queue_name": "`work_pool: {work_queue_name: ...}`",
}
# Schedule keys Prefect 2.x wrote into saved schedules; Prefect 3's schedule config forbids them.
SCHEDULE_LEGACY = {
    "max_active_runs": "`concurrency_limit: N` on the deployment",
    "catchup": "remove it: Prefect 3 schedules have no catch-up",
    "is_schedule_active": "`active:` on the schedule",
}
# Keys that only mean something inside a deployment; written at the top level they mean a deployment was
# written without `deployments:` (`name` is excluded: the top level has a `name` of its own).
TOP_LEVEL_DEPLOYMENT_KEYS = ("flow_name", "entrypoint", "work_pool", "schedules", "schedule", "parameters",
                             "tags", "version", "paused", "concurrency_limit", "enforce_parameter_schema",
                             "triggers", "version_type")


def _fix(spelling: str) -> str:
    return spelling if spelling.startswith("remove") else f"write {spelling}"


def _warning(project: Project, path: KeyPath, message: str, hint: str, code: str) -> Problem:
    return Problem("warning", message, location=project.locate_key(path), key_path=format_key_path(path),
                   hint=hint, code=code)


def _schedules(dep: dict[str, Any], base: KeyPath) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    if isinstance(dep.get("schedule"), dict):
        yield (*base, "schedule"), dep["schedule"]
    if isinstance(dep.get("schedules"), list):
        for index, item in enumerate(dep["schedules"]):
            if isinstance(item, dict):
                yield (*base, "schedules", index), item


def _top_level(project: Project) -> Iterator[Problem]:
    data = project.data
    found = [k for k in TOP_LEVEL_DEPLOYMENT_KEYS if k in data]
    if found:
        keys = ", ".join(f"`{k}`" for k in found)
        yield _warning(
            project, (found[0],), f"{keys} at the top level belong{'s' * (len(found) == 1)} to a deployment; "
            "Prefect ignores them here",
            "move the deployment under `deployments:` as a list item: write `deployments:`, then `- name: ...` "
            f"and indent {keys} under it", "deployment-at-top-level")
    if "description" in data and isinstance(data["description"], str | None):
        yield _warning(
            project, ("description",), "a top-level `description` is ignored (Prefect's recipes use it as "
            "recipe metadata)", "a deployment's description goes under its entry in `deployments:`",
            "unknown-key")


def check_legacy_keys(project: Project) -> list[Problem]:
    """Warnings for Prefect 2 keys, a deployment written at the top level, and an ignored `schedule`."""
    problems = list(_top_level(project))
    deployments = project.data.get("deployments")
    if not isinstance(deployments, list):
        return problems
    for index, dep in enumerate(deployments):
        if not isinstance(dep, dict):
            continue
        base: KeyPath = ("deployments", index)
        for key, spelling in DEPLOYMENT_LEGACY.items():
            if key in dep:
                problems.append(_warning(
                    project, (*base, key), f"'{key}' is a Prefect 2 deployment key; Prefect 3 ignores it",
                    _fix(spelling), "prefect2-key"))
        if "schedule" in dep and "schedules" in dep and not dep.get("schedule"):
            problems.append(_warning(
                project, (*base, "schedule"), "the singular `schedule` (Prefect 2) is ignored beside `schedules`",
                "remove `schedule:`; put every schedule in the `schedules:` list", "prefect2-key"))
        for sched_path, sched in _schedules(dep, base):
            for key, spelling in SCHEDULE_LEGACY.items():
                if key in sched:
                    problems.append(_warning(
                        project, (*sched_path, key),
                        f"'{key}' is a Prefect 2 schedule key; Prefect 3 rejects it (and then skips the whole file)",
                        _fix(spelling), "prefect2-key"))
    return problems
