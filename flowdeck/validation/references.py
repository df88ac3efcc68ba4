"""Checks that every ``{{ id.key }}`` names a step that runs earlier in the same pipeline.

For each deployment the pipeline is its effective build, then push, then pull steps (Prefect's
override rules). Deployment fields (job variables, version, tags, ...) see the build and push outputs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowdeck.config import SECTIONS, Project, StepEntry
from flowdeck.errors import Problem, TemplateError
from flowdeck.keys import KeyPath, format_key_path, iter_paths
from flowdeck.suggest import close_matches
from flowdeck.templating import referenced_names

__all__ = ["check_references", "template_errors"]

_DEPLOYMENT_TEMPLATED = ("version", "tags", "description", "parameters", "work_pool", "schedules",
                         "schedule", "flow_name", "entrypoint", "concurrency_limit", "paused")
# Run-time objects Prefect renders for the worker under ``ctx.`` (``{{ ctx.flow_run.name }}``).
_RUN_TIME = ("flow_run", "flow", "deployment")


@dataclass
class _Scope:
    """What the pipeline has produced so far."""

    ids: dict[str, StepEntry] = field(default_factory=dict)
    flat: set[str] = field(default_factory=set)
    opaque: bool = False  # a custom step ran: its outputs are unknown
    later: dict[str, StepEntry] = field(default_factory=dict)
    current: str | None = None

    def add(self, step: StepEntry) -> None:
        if step.step_id:
            self.ids[step.step_id] = step
        if step.spec is None:
            self.opaque = True
        else:
            self.flat.update(step.spec.outputs)


def _check_name(project: Project, name: str, path: KeyPath, scope: _Scope, env: Mapping[str, str],
                what: str) -> Iterator[Problem]:
    if name.startswith("ctx.") or name == "ctx" or name in ("prefect.blocks", "prefect.variables"):
        return  # the last two are reported by flowdeck.validation.incomplete
    head, _, rest = name.partition(".")
    head = head.split("[", 1)[0]
    location = project.locate(path)
    key_path = format_key_path(path)
    if head in scope.ids:
        step = scope.ids[head]
        key = rest.split(".", 1)[0].split("[", 1)[0]
        if step.spec is not None and key and key not in step.spec.outputs:
            yield Problem(
                "error", f"step '{head}' ({step.short_name}) has no output '{key}'",
                location=location, key_path=key_path,
                hint=f"its outputs are: {', '.join(step.spec.outputs)}", code="unknown-output")
        return
    if not rest and (head in scope.flat or scope.opaque or head in env):
        return
    if head in env and not rest:
        return
    if head == scope.current:
        matches = close_matches(head, list(scope.ids))
        yield Problem(
            "error", f"'{{{{ {name} }}}}' uses this step's own id; a step can only use outputs of earlier steps",
            location=location, key_path=key_path,
            hint=f"did you mean '{matches[0]}'?" if matches else None, code="unknown-reference")
        return
    if head in scope.later:
        step = scope.later[head]
        yield Problem(
            "error", f"'{{{{ {name} }}}}' uses step '{head}', which runs later ({format_key_path(step.path)})",
            location=location, key_path=key_path,
            hint="a step can only use the outputs of steps that run before it", code="unknown-reference")
        return
    if scope.opaque and not rest:
        return
    if head in _RUN_TIME and head not in scope.ids:
        yield Problem(
            "error", f"'{{{{ {name} }}}}' is a run-time value, which Prefect only fills in as `ctx.{name}`",
            location=location, key_path=key_path, hint=f"write '{{{{ ctx.{name} }}}}'", code="unknown-reference")
        return
    candidates = list(scope.ids) + ([] if rest else sorted(scope.flat))
    matches = close_matches(head, candidates)
    if matches:
        hint = f"did you mean '{matches[0]}'?"
    elif scope.ids:
        hint = f"step ids available here: {', '.join(scope.ids)}"
    else:
        hint = f"no step before this point has an `id`; give the step that produces it `id: {head}`"
    if not rest:
        # A bare name may be an environment variable on the machine that deploys (Prefect fills those).
        yield Problem("warning", f"'{{{{ {name} }}}}' is neither an output of an earlier step{what} nor a set "
                      "environment variable; it will resolve to \"\"", location=location, key_path=key_path,
                      hint=hint if matches else f"set {name} in the environment or write `{{{{ ${name} }}}}`",
                      code="unknown-reference")
        return
    yield Problem("error", f"'{{{{ {name} }}}}' does not name an output of an earlier step{what}",
                  location=location, key_path=key_path, hint=hint, code="unknown-reference")


def _refs(value: Any, path: KeyPath, kind: str) -> Iterator[tuple[KeyPath, str]]:
    try:
        found = referenced_names(value, path)
    except TemplateError:
        return  # reported once by _template_errors
    for ref in found:
        if ref.kind == kind:
            yield ref.path, ref.name.lstrip("$") if kind == "env" else ref.name


def _standard_refs(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    return _refs(value, path, "standard")


def _env_refs(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    return _refs(value, path, "env")


def template_errors(project: Project) -> list[Problem]:
    """Expressions that do not parse, anywhere in the file."""
    problems: list[Problem] = []
    for path, value in iter_paths(project.data):
        if not isinstance(value, str):
            continue
        try:
            referenced_names(value, path, locate=project.locate)
        except TemplateError as exc:
            problems.append(Problem("error", exc.message, exc.location or project.locate(path),
                                    exc.key_path or format_key_path(path), exc.hint, "template"))
    return problems


def _check_env(project: Project, value: Any, path: KeyPath, env: Mapping[str, str]) -> Iterator[Problem]:
    for ref_path, var in _env_refs(value, path):
        if var and var not in env:
            yield Problem(
                "warning", f"environment variable {var} is not set; '{{{{ ${var} }}}}' will resolve to \"\"",
                location=project.locate(ref_path), key_path=format_key_path(ref_path),
                hint=f"export {var}=... before deploying, or use `{{{{ ${var} | default('...') }}}}`",
                code="missing-env")


def _pipeline(project: Project, deployment: int | None) -> list[StepEntry]:
    steps: list[StepEntry] = []
    for section in SECTIONS:
        try:
            found = project.section(section, deployment).steps or []
        except Exception:  # malformed steps are reported by the step checks
            found = []
        steps.extend(found)
    return steps


def check_references(project: Project, env: Mapping[str, str] | None = None) -> list[Problem]:
    """Check step-output references and deploy-time environment variables for every deployment."""
    env = os.environ if env is None else env
    problems: list[Problem] = []
    deployments = project.deployments()
    targets: list[int | None] = list(range(len(deployments))) if deployments else [None]
    for deployment in targets:
        steps = _pipeline(project, deployment)
        scope = _Scope(later={s.step_id: s for s in steps if s.step_id})
        for step in steps:
            scope.later.pop(step.step_id or "", None)
            scope.current = step.step_id
            args_path = (*step.path, step.written)
            for ref_path, name in _standard_refs(step.arguments(), args_path):
                problems += _check_name(project, name, ref_path, scope, env, "")
            if step.section != "pull":
                problems += _check_env(project, step.arguments(), args_path, env)
            scope.add(step)
        if deployment is None:
            continue
        dep = deployments[deployment]
        build_push = _Scope()
        for step in steps:
            if step.section != "pull":
                build_push.add(step)
        build_push.later = {s.step_id: s for s in steps if s.step_id and s.section == "pull"}
        for key in _DEPLOYMENT_TEMPLATED:
            if key not in dep:
                continue
            base: KeyPath = ("deployments", deployment, key)
            for ref_path, name in _standard_refs(dep[key], base):
                problems += _check_name(project, name, ref_path, build_push, env, " (build or push)")
            problems += _check_env(project, dep[key], base, env)
    return problems
