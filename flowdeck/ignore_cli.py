"""Library side of ``flowdeck ls-files`` and ``flowdeck check-ignore``: what a push would upload, and why not.

``--deployment`` needs the push step's ``ignore_file``; :func:`push_ignore_file` finds the push step that
would run for that deployment with Prefect's override rules.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from flowdeck.errors import FlowdeckError
from flowdeck.ignore import IGNORE_FILE, IgnoreSpec, Rule

__all__ = ["CheckResult", "ListedFile", "check_ignore", "list_files", "push_ignore_file"]

_PUSH_STEPS = ("push_to_s3", "push_to_gcs", "push_to_azure_blob_storage")


@dataclass(frozen=True)
class ListedFile:
    """A file a push would upload."""

    path: str
    size: int


@dataclass(frozen=True)
class CheckResult:
    """The verdict for one path: git's deciding rule (None when no rule applies), and Prefect's readings
    where they decide otherwise (``(label, rule)``; see :mod:`flowdeck.ignore`)."""

    path: str
    rule: Rule | None
    others: tuple[tuple[str, Rule | None], ...] = ()

    @property
    def git_excluded(self) -> bool:
        """True when git's reading leaves the path out."""
        return self.rule is not None and not self.rule.negated

    @property
    def excluded(self) -> bool:
        """True when a push would leave the path out: every reading excludes it."""
        return self.git_excluded and not self.others


def push_ignore_file(config_file: Path, deployment: str | None) -> str | None:
    """The ``ignore_file`` of the storage push step that would run (the deployment's push steps when it
    overrides them, else the file's); ``.prefectignore`` when the step does not set it, None when it sets
    ``null`` (upload everything)."""
    from flowdeck.config import load_project
    from flowdeck.pipeline import find_deployment

    project = load_project(config_file)
    index = find_deployment(project, deployment) if deployment is not None else None
    for step in project.section("push", index).steps or []:
        if step.canonical.rsplit(".", 1)[-1] in _PUSH_STEPS:
            value = step.inputs.get("ignore_file", IGNORE_FILE)
            return None if value is None else str(value)
    return IGNORE_FILE


def _spec(root: Path, ignore_file: str | None) -> IgnoreSpec:
    if not ignore_file:
        return IgnoreSpec()
    path = Path(ignore_file)
    return IgnoreSpec.from_file(path if path.is_absolute() else root / path, display=ignore_file)


def list_files(root: Path, ignore_file: str | None = IGNORE_FILE) -> list[ListedFile]:
    """Every file a push from ``root`` would upload, sorted."""
    return [ListedFile(e.rel, os.stat(e.path).st_size) for e in _spec(root, ignore_file).walk(root)]


def check_ignore(
    root: Path, paths: Iterable[str], ignore_file: str | None = IGNORE_FILE
) -> list[CheckResult]:
    """Judge each path (relative to ``root`` or absolute inside it) against the ignore file."""
    spec = _spec(root, ignore_file)
    real_root = root.resolve()
    results = []
    for raw in paths:
        candidate = Path(raw)
        full = (candidate if candidate.is_absolute() else Path.cwd() / candidate).resolve()
        try:
            rel = full.relative_to(real_root).as_posix()
        except ValueError:
            raise FlowdeckError(f"{raw} is outside the project directory {root}") from None
        readings = spec.explain(rel, is_dir=full.is_dir())
        results.append(CheckResult(raw, readings[0][1], tuple(readings[1:])))
    return results
