"""Checks of every step in every section: shape, name, arguments."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowdeck.config import RESERVED_KEYS, SECTIONS, Project, normalize_section
from flowdeck.errors import Problem
from flowdeck.jsontypes import json_type
from flowdeck.keys import KeyPath, format_key_path
from flowdeck.steps.aliases import ALIASES, resolve_name
from flowdeck.steps.registry import StepSpec
from flowdeck.suggest import close_matches, did_you_mean

__all__ = ["check_steps", "iter_step_items", "step_importable"]



def iter_step_items(data: dict[str, Any]) -> Iterator[tuple[str, int, KeyPath, Any]]:
    """Every step item written in the file (top level and per deployment): section, index, path, item."""
    for section in SECTIONS:
        for index, item in enumerate(normalize_section(data.get(section)) or []):
            yield section, index, ((section, index) if isinstance(data.get(section), list) else (section,)), item
    deployments = data.get("deployments")
    if isinstance(deployments, list):
        for d_index, dep in enumerate(deployments):
            if not isinstance(dep, dict):
                continue
            for section in SECTIONS:
                raw = dep.get(section)
                for index, item in enumerate(normalize_section(raw) or []):
                    base: KeyPath = ("deployments", d_index, section)
                    yield section, index, ((*base, index) if isinstance(raw, list) else base), item


def step_importable(name: str, root: Path) -> bool:
    """Can ``name`` (``pkg.module.func``, ``pkg.module:func`` or ``path/file.py:func``) be found?"""
    if ":" in name:
        module, _, _attr = name.partition(":")
        if module.endswith(".py") or "/" in module:
            return (root / module).is_file()
    else:
        module, _, _attr = name.rpartition(".")
    if not module:
        return False
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _literal_type(value: Any) -> str | None:
    if value is None:
        return "null"
    if isinstance(value, str) and ("{{" in value or "<<" in value):
        return None  # templated: its type is known only when it is rendered
    kind = json_type(value)
    return kind if kind in ("boolean", "integer", "number", "string", "array", "object") else None


def _check_arguments(project: Project, spec: StepSpec, name: str, args: dict[str, Any],
                     path: KeyPath) -> Iterator[Problem]:
    known = [p.name for p in spec.params]
    for key, value in args.items():
        key_path = (*path, key)
        if key in RESERVED_KEYS:
            continue
        param = spec.param(str(key))
        if param is None:
            if spec.accepts_extra:
                continue
            hint = did_you_mean(str(key), known)
            yield Problem(
                "error", f"{spec.short_name} has no argument '{key}'",
                location=project.locate_key(key_path), key_path=format_key_path(key_path),
                hint=hint or f"its arguments are: {', '.join(known)}", code="unknown-argument")
            continue
        actual = _literal_type(value)
        wanted = [t for t in param.types if t != "any"]
        if actual is None or not wanted or actual in wanted or (actual == "integer" and "number" in wanted):
            continue
        if actual in ("boolean", "integer", "number") and "string" in wanted:
            continue  # Prefect passes scalars through; str() is what the step sees in practice
        if actual == "string" and wanted == ["boolean"]:
            continue
        yield Problem(
            "error", f"{spec.short_name} argument '{key}' must be {' or '.join(wanted)}, not {actual}",
            location=project.locate(key_path), key_path=format_key_path(key_path), code="argument-type")
    for required in spec.required():
        if required not in args or args[required] is None:
            at = (*path, required) if required in args else path
            yield Problem(
                "error", f"{spec.short_name} is missing its required argument '{required}'",
                location=project.locate(at), key_path=format_key_path(at),
                hint=f"add `{required}: ...` indented under `{name}:`", code="missing-argument")


def _check_unknown_name(project: Project, name: str, args: dict[str, Any], path: KeyPath) -> Iterator[Problem]:
    key_path = (*path, name)
    looks_prefect = name.startswith(("prefect.", "prefect_"))
    if not looks_prefect and step_importable(name, project.root):
        return
    matches = close_matches(name, ALIASES, n=1, cutoff=0.75)
    if looks_prefect or not args.get("requires"):
        hint = (f"did you mean '{matches[0]}'?" if matches
                else "run `flowdeck steps list` to see the built-in steps")
        what = "is not a step flowdeck knows" if looks_prefect else "is not a built-in step and cannot be imported"
        yield Problem("error", f"'{name}' {what}", location=project.locate_key(key_path),
                      key_path=format_key_path(path), hint=hint, code="unknown-step")
        return
    requires = args.get("requires")
    packages = " ".join(requires) if isinstance(requires, list) else str(requires)
    yield Problem(
        "warning", f"'{name}' cannot be imported; it needs {packages}",
        location=project.locate_key(key_path), key_path=format_key_path(path),
        hint=f"run `pip install {packages}` or deploy with --install-requires", code="missing-requirement")


def check_steps(project: Project) -> list[Problem]:
    """Check the shape, name and arguments of every step in the file."""
    problems: list[Problem] = []
    for _section, _index, path, item in iter_step_items(project.data):
        if item is None or item == {}:
            continue
        location = project.locate(path)
        where = format_key_path(path)
        if not isinstance(item, dict):
            problems.append(Problem(
                "error", f"a step must be a mapping of a step name to its arguments, not {type(item).__name__}",
                location=location, key_path=where,
                hint="write `- prefect.deployments.steps.run_shell_script:` and indent its arguments under it",
                code="step-shape"))
            continue
        if len(item) > 1:
            names = list(item)
            step_like = [n for n in names if "." in str(n) or ":" in str(n)]
            first = step_like[0] if step_like else names[0]
            others = [str(n) for n in names if n != first]
            problems.append(Problem(
                "error", f"this step has {len(item)} keys ({', '.join(map(str, names))}) but a step has exactly one",
                location=location, key_path=where,
                hint=f"indent {', '.join(others)} under `{first}:` (two more spaces) so they become its arguments",
                code="step-shape"))
            continue
        name, args = next(iter(item.items()))
        name = str(name)
        if args is not None and not isinstance(args, dict):
            key_path = (*path, name)
            problems.append(Problem(
                "error", f"the arguments of {name} must be a mapping, not {type(args).__name__}",
                location=project.locate(key_path), key_path=format_key_path(key_path),
                hint="write each argument as `key: value` on its own line, indented under the step name",
                code="step-shape"))
            continue
        args = args or {}
        resolution = resolve_name(name)
        if resolution.spec is None:
            problems += _check_unknown_name(project, name, args, path)
            continue
        if resolution.deprecated:
            modern = name.replace(".projects.steps.", ".deployments.steps.").replace(
                "git_clone_project", "git_clone")
            problems.append(Problem(
                "warning", f"'{name}' is a legacy Prefect step name",
                location=project.locate_key((*path, name)), key_path=where,
                hint=f"use '{modern}' (both work in flowdeck)", code="deprecated-step"))
        problems += _check_arguments(project, resolution.spec, name, args, (*path, name))
    return problems
