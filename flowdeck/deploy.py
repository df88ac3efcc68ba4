"""``flowdeck deploy``: build, push, template and record each selected deployment as a new version.

The pipeline, per deployment (Prefect's order, prefect-behaviour §5.3):

1. take the effective build, push and pull steps (deployment-level overrides win, Prefect's rules);
2. resolve variables and environment variables in the deployment's fields (blocks stay references, so
   the store never holds a secret; environment variables whose names look secret stay placeholders too);
3. run the build, then the push steps (identical step lists shared by several deployments run once,
   :mod:`flowdeck.deploy_steps`);
4. template the deployment's fields with the step outputs (``{{ ctx.* }}`` kept for the worker), and the
   pull steps with them too (references to earlier pull steps, blocks and variables kept for the worker);
5. read the flow from its file with ``ast`` (never imported) and check the parameters against it;
6. hash what would be stored; record a new version unless it equals the live one (``--force`` records
   anyway). ``--all`` records every version in one transaction, after every deployment succeeded.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flowdeck.config import Project, SectionSteps
from flowdeck.deploy_steps import StepCache
from flowdeck.errors import DeployError
from flowdeck.flowinfo import FlowInfo, read_flow
from flowdeck.history import PendingVersion
from flowdeck.jsontypes import dumps_sorted
from flowdeck.keys import format_key_path
from flowdeck.paths import cache_dir, home_dir
from flowdeck.publish import flow_runner, publish_pull_steps, pull_steps_mode, with_runner, with_snapshots
from flowdeck.selection import select_deployments
from flowdeck.snapshot.pin import snapshots_in_outputs
from flowdeck.steps.aliases import resolve_name
from flowdeck.templating import apply_values, resolve_variables
from flowdeck.templating.references import ReferenceResolver
from flowdeck.templating.taint import check_untainted, keep_secrets_out
from flowdeck.validation import validate_project
from flowdeck.versioninfo import VersionInfo, infer_version_info, origin_url, same_repository, version_label

__all__ = ["DeployOptions", "DeployResult", "code_hash", "deploy"]

_NOT_TEMPLATED = ("build", "push", "pull", "schedule", "schedules", "triggers")


@dataclass
class DeployOptions:
    """What ``flowdeck deploy`` was asked to do."""

    names: Sequence[str] = ()
    all: bool = False
    force: bool = False
    dry_run: bool = False
    promote: bool = True
    version: str | None = None
    params: Mapping[str, Any] | None = None
    tags: Sequence[str] | None = None
    pin_commit: bool = False
    strict: bool = False
    install_requires: bool = False
    resolver: ReferenceResolver | None = None
    env: Mapping[str, str] | None = None
    #: ``as-written`` or ``flowdeck`` (see :mod:`flowdeck.publish`); None: the file's ``flowdeck.pull_steps``.
    pull_steps: str | None = None
    #: ``prefect`` or ``flowdeck`` (the pool runs ``flowdeck flow-run execute``); None: the file's ``flowdeck.runner``.
    runner: str | None = None
    #: The pull steps will be run by Prefect's own runner (a Prefect server): check their templates for it.
    for_prefect: bool = False
    #: Deployment fields given on the command line (Prefect's ``--pool``, ``--cron`` ...); win over the file.
    overrides: Mapping[str, Any] | None = None
    #: On a Prefect server, create a missing work pool instead of failing.
    create_pool: bool = False


@dataclass
class DeployResult:
    """What happened to one deployment."""

    name: str
    status: str  # created | updated | unchanged | would create | would update
    revision: int | None
    label: str
    live: bool
    diff: list[str] = field(default_factory=list)


@dataclass
class _Planned:
    name: str
    pending: PendingVersion
    source: dict[str, Any]


def code_hash(root: Path, ignore_file: str = ".prefectignore") -> str:
    """A fingerprint of the project's files (those a push would upload), so an edit makes a new version."""
    from flowdeck.ignore import IgnoreSpec

    digest = hashlib.sha256()
    spec = IgnoreSpec.from_file(root / ignore_file)
    # flowdeck's own state must never count as a change of the project, wherever it is kept.
    own = [p.resolve() for p in (home_dir(), cache_dir())]
    skip = tuple(f"{p.relative_to(root.resolve()).as_posix()}/" for p in own if p.is_relative_to(root.resolve()))
    for entry in sorted(spec.walk(root), key=lambda e: e.rel):
        if entry.rel == ".git" or entry.rel.startswith((".git/", *skip)):
            continue
        try:
            content = entry.path.read_bytes()
        except OSError:
            continue
        digest.update(entry.rel.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


def _canonical(value: Any) -> str:
    return dumps_sorted(value, separators=(",", ":"))


def _steps_as_written(section: SectionSteps) -> list[dict[str, Any]]:
    return [{step.written: copy.deepcopy(step.inputs)} for step in section.steps or []]


def _default_pull(project: Project, build: SectionSteps, dep: dict[str, Any]) -> list[dict[str, Any]]:
    """Prefect's generated pull step when a deployment has none (§5.3 step 10)."""
    dirname = project.root.name
    for step in build.steps or []:
        if step.canonical == "flowdeck.steps.build_docker_image" and step.inputs.get("dockerfile") == "auto":
            return [{"prefect.deployments.steps.set_working_directory": {"directory": f"/opt/prefect/{dirname}"}}]
    pool = dep.get("work_pool") or {}
    if not build.steps and isinstance(pool, dict) and (pool.get("job_variables") or {}).get("image"):
        return [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/prefect"}}]
    return [{"prefect.deployments.steps.set_working_directory": {"directory": str(project.root)}}]


def _pin_commits(project: Project, pull_steps: Any, info: VersionInfo | None) -> Any:
    """Pin git_clone steps that clone this very project to the commit being deployed (``--pin-commit``)."""
    origin = origin_url(project.root)
    if not info or not info.commit_sha or not origin or not isinstance(pull_steps, list):
        return pull_steps
    pinned = copy.deepcopy(pull_steps)
    for step in pinned:
        if not isinstance(step, dict) or len(step) != 1:
            continue
        name, inputs = next(iter(step.items()))
        if resolve_name(str(name)).canonical != "flowdeck.steps.git_clone" or not isinstance(inputs, dict):
            continue
        repository = inputs.get("repository")
        if isinstance(repository, str) and not inputs.get("commit_sha") and same_repository(repository, origin):
            inputs.pop("branch", None)
            inputs["commit_sha"] = info.commit_sha
    return pinned


def _apply_overrides(dep: dict[str, Any], options: DeployOptions) -> dict[str, Any]:
    dep = copy.deepcopy(dep)
    if options.version is not None:
        dep["version"] = options.version
    if options.tags is not None:
        dep["tags"] = list(options.tags)
    for key, value in (options.overrides or {}).items():
        if key == "work_pool" and isinstance(value, Mapping):
            pool = dict(dep.get("work_pool") or {})
            for pool_key, pool_value in value.items():
                if pool_key == "job_variables":
                    pool_value = {**dict(pool.get("job_variables") or {}), **dict(pool_value)}
                pool[pool_key] = pool_value
            dep["work_pool"] = pool
        else:
            if key == "schedules":
                dep.pop("schedule", None)
            dep[key] = copy.deepcopy(value)
    if options.params:
        parameters = dict(dep.get("parameters") or {})
        parameters.update(options.params)
        dep["parameters"] = parameters
    return dep


def _check_parameters(project: Project, index: int, flow: FlowInfo, parameters: Mapping[str, Any]) -> None:
    if flow.accepts_kwargs:
        return
    known = flow.parameter_names()
    for key in parameters:
        if key not in known:
            from flowdeck.suggest import did_you_mean

            path = ("deployments", index, "parameters", key)
            raise DeployError(
                f"flow function '{flow.function}' has no parameter '{key}'",
                location=project.locate_key(path), key_path=format_key_path(path),
                hint=did_you_mean(str(key), known) or f"its parameters are: {', '.join(known) or '(none)'}")


def _plan_one(project: Project, index: int, options: DeployOptions, cache: StepCache | None) -> _Planned:
    raw = project.deployments()[index]
    runner = flow_runner(project.data, options.runner, project.locate)
    dep = with_runner(_apply_overrides(raw, options), runner)
    base = ("deployments", index)
    build = project.section("build", index)
    push = project.section("push", index)
    pull = project.section("pull", index)
    pull_raw = _steps_as_written(pull) if pull.steps is not None else _default_pull(project, build, dep)
    mode = pull_steps_mode(project.data, options.pull_steps, project.locate)

    fields = {k: v for k, v in dep.items() if k not in _NOT_TEMPLATED}
    # Deploy-time phase: variables and the environment (blocks stay references: resolved on the worker).
    fields = resolve_variables(fields, options.resolver, strict=options.strict, locate=project.locate,
                               base_path=base) if options.resolver is not None else fields
    fields = apply_values(fields, dict(os.environ), remove_notset=False, skip_prefixes=["ctx."],
                          keep_secret_env=True, locate=project.locate, base_path=base)
    source = {
        "deployment": fields,
        "schedules": dep.get("schedules") if dep.get("schedules") is not None else (
            [dep["schedule"]] if dep.get("schedule") else []),
        "build": _steps_as_written(build),
        "push": _steps_as_written(push),
        "pull": pull_raw,
        "code": "",  # hashed once the entrypoint is known to exist (a wrong root must not hash a whole home)
    }
    if mode != "as-written":
        source["pull_steps_mode"] = mode

    steps = [*(build.steps or []), *(push.steps or [])]
    outputs = cache.run(steps) if cache is not None else {}
    if cache is not None:
        # A value derived from a secret must not be templated into what is stored: a located error.
        tainted = cache.taint(steps)
        check_untainted(fields, tainted, base_path=base, locate=project.locate)
        for step in pull.steps or []:
            check_untainted(step.inputs, tainted, base_path=(*step.path, step.written), locate=project.locate)
        fields = apply_values(fields, outputs, warn_on_notset=True, skip_prefixes=["ctx."],
                              keep_secret_env=True, locate=project.locate, base_path=base)
        pull_steps = apply_values(pull_raw, outputs, remove_notset=False, keep_secret_env=True)
        schedules = apply_values(source["schedules"], outputs)
    else:
        pull_steps, schedules = pull_raw, source["schedules"]

    info = infer_version_info(project.root, options.env if options.env is not None else os.environ,
                              fields.get("version_type"))
    if options.pin_commit:
        pull_steps = _pin_commits(project, pull_steps, info)
    if dep.get("name") in (None, ""):
        raise DeployError("a deployment name is required", location=project.locate(base),
                          key_path=format_key_path(base), hint="add `name: ...` to the deployment")
    pull_steps = publish_pull_steps(pull_steps, pull.steps, mode=mode, for_prefect=options.for_prefect,
                                    rendered=cache is not None, locate=project.locate)
    entrypoint = fields.get("entrypoint")
    if not isinstance(entrypoint, str) or not entrypoint:
        path = (*base, "entrypoint")
        raise DeployError("an entrypoint is required", location=project.locate(base), key_path=format_key_path(path),
                          hint="add `entrypoint: path/to/flow.py:function_name` to the deployment")
    flow = read_flow(project.root, entrypoint, location=project.locate((*base, "entrypoint")),
                     key_path=format_key_path((*base, "entrypoint")))
    parameters = dict(fields.get("parameters") or {})
    _check_parameters(project, index, flow, parameters)
    source["code"] = code_hash(project.root)
    flow_name = str(fields.get("flow_name") or flow.flow_name)
    name = f"{flow_name}/{dep['name']}"
    pool = fields.get("work_pool") if isinstance(fields.get("work_pool"), dict) else {}
    assert isinstance(pool, dict)
    tags = fields.get("tags") or []
    explicit_version = str(fields["version"]) if fields.get("version") not in (None, "") else None
    label, version_info = version_label(explicit_version, info, flow.source_hash)
    record: dict[str, Any] = {
        "name": str(dep["name"]),
        "flow_name": flow_name,
        "entrypoint": entrypoint,
        "description": fields.get("description") or flow.description,
        "parameters": parameters,
        "parameter_schema": flow.schema(),
        "enforce_parameter_schema": bool(fields.get("enforce_parameter_schema", False)),
        "work_pool": {"name": pool.get("name"), "work_queue_name": pool.get("work_queue_name"),
                      "job_variables": pool.get("job_variables") or {}},
        "tags": [tags] if isinstance(tags, str) else list(tags),
        "pull_steps": pull_steps,
        "code": source["code"],
    }
    # The safety net: URL credentials removed (with a warning), any other secret a located error.
    record = keep_secrets_out(record, source_path=_source_path(base, pull), locate=project.locate)
    source = keep_secrets_out(source, path=("source",), source_path=_source_path(base, pull),
                              locate=project.locate)
    schedules = keep_secrets_out(schedules, path=("schedules",))
    snapshots = snapshots_in_outputs(outputs)
    if snapshots:  # the exact code of this version: its pulls (and rollbacks to it) fetch these snapshots
        record["snapshots"] = snapshots
        # flowdeck's own pull steps carry them too: Prefect's runner calling them pulls this version's code.
        record["pull_steps"] = with_snapshots(record["pull_steps"], snapshots)
    hashed = dict(record)
    if explicit_version:
        hashed["version"] = explicit_version
    record["version"] = label
    record["source_hash"] = hashlib.sha256(_canonical(source).encode()).hexdigest()
    record["source"] = source
    pending = PendingVersion(
        name=name, flow_name=flow_name, deployment_name=str(dep["name"]), label=label,
        content_hash=hashlib.sha256(_canonical(hashed).encode()).hexdigest(), record=record,
        version_info=version_info.to_dict(), schedules=list(schedules or []),
        paused=bool(fields.get("paused", False)), concurrency_limit=fields.get("concurrency_limit"),
        force=options.force, promote=options.promote, create_pool=options.create_pool)
    return _Planned(name, pending, source)


def _source_path(base: tuple[Any, ...], pull: SectionSteps) -> Any:
    """Map a path in the stored record to the key path in prefect.yaml, for located warnings and errors."""

    def mapped(path: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if path[:1] == ("source",):
            path = path[1:]
            if path[:1] == ("deployment",):
                return (*base, *path[1:])
        if path[:1] in (("pull_steps",), ("pull",)) and len(path) > 1 and isinstance(path[1], int):
            steps = pull.steps or []
            return (*steps[path[1]].path, *path[2:]) if path[1] < len(steps) else None
        if path[:1] in (("parameters",), ("description",), ("tags",)):
            return (*base, *path)
        return None

    return mapped


def _diff(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    def lines(value: Any) -> list[str]:
        try:
            text: str = yaml.safe_dump(value, sort_keys=True, default_flow_style=False)
        except TypeError:  # keys of mixed types ({1: a, null: b}) cannot be sorted: diff their JSON form
            text = yaml.safe_dump(json.loads(dumps_sorted(value)), sort_keys=True, default_flow_style=False)
        return text.splitlines()

    before = lines(old or {})
    after = lines(dict(new))
    return list(difflib.unified_diff(before, after, "live", "new", lineterm="", n=2))


def _dry_run(planned: list[_Planned]) -> list[DeployResult]:
    from flowdeck.errors import HistoryError
    from flowdeck.registry import current

    registry = current()
    results = []
    for plan in planned:
        try:
            dep = registry.find_deployment(plan.name)
        except HistoryError:
            dep = None
        if dep is None or dep.live_revision is None:
            results.append(DeployResult(plan.name, "would create", None, plan.pending.label, False,
                                        _diff(None, plan.source)))
            continue
        live = registry.get_version(plan.name)
        if live.record.get("source_hash") == plan.pending.record["source_hash"] and not plan.pending.force:
            results.append(DeployResult(plan.name, "unchanged", live.revision, live.label, True))
        else:
            results.append(DeployResult(plan.name, "would update", live.revision, plan.pending.label, False,
                                        _diff(live.record.get("source"), plan.source)))
    return results


def deploy(project: Project, options: DeployOptions | None = None) -> list[DeployResult]:
    """Deploy the selected deployments of ``project``; nothing is recorded unless all of them succeed."""
    options = options or DeployOptions()
    from flowdeck.registry.choose import server_config

    if not options.for_prefect and server_config() is not None:
        # A Prefect server's workers run the pull steps with Prefect's own runner: publish only what it reads.
        options = dataclasses.replace(options, for_prefect=True)
    validate_project(project, strict=options.strict).raise_for_errors()
    indices = select_deployments(project, options.names, options.all)
    cache = None if options.dry_run else StepCache(project, options)
    planned = [_plan_one(project, index, options, cache) for index in indices]
    names = [p.name for p in planned]
    for position, name in enumerate(names):
        if name in names[:position]:
            first, second = indices[names.index(name)], indices[position]
            where = project.locate(("deployments", first, "name"))
            raise DeployError(
                f"two selected deployments are both called '{name}' (the first is deployments[{first}]"
                f"{f', line {where.line}' if where else ''})",
                location=project.locate(("deployments", second, "name")),
                key_path=format_key_path(("deployments", second, "name")),
                hint="give each deployment of a flow its own name")
    if options.dry_run:
        return _dry_run(planned)
    from flowdeck.registry import current

    outcomes = current().record_versions([p.pending for p in planned])
    return [DeployResult(o.name, o.status, o.revision, o.label, o.live) for o in outcomes]
