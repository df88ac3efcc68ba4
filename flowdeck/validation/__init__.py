"""``flowdeck validate``: every problem of a prefect.yaml at once, each located and with a hint."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from flowdeck.config import Project, load_project
from flowdeck.errors import ConfigError, Location, Problem
from flowdeck.validation.deployable import check_deployable, check_names
from flowdeck.validation.incomplete import check_incomplete_references
from flowdeck.validation.legacy import check_legacy_keys
from flowdeck.validation.references import check_references, template_errors
from flowdeck.validation.report import ValidationReport
from flowdeck.validation.schema import check_schema, check_semantics, check_unknown_keys
from flowdeck.validation.steps import check_steps

__all__ = ["ValidationReport", "validate_file", "validate_project"]


def validate_project(project: Project, *, strict: bool = False, env: Mapping[str, str] | None = None,
                     deployable: bool = False) -> ValidationReport:
    """Run every check on a loaded project. With ``strict``, warnings count as errors.

    ``deployable`` adds what ``deploy`` would reject whichever deployment is chosen (no deployments, one
    without an entrypoint or name); ``validate`` asks for it, ``deploy`` and ``steps run`` do not.
    """
    report = ValidationReport(project.name)
    report.extend(project.file.problems)
    report.extend(check_schema(project))
    report.extend(check_unknown_keys(project))
    report.extend(check_legacy_keys(project))
    report.extend(check_semantics(project))
    report.extend(check_names(project))
    if deployable:
        report.extend(check_deployable(project))
    report.extend(check_steps(project))
    report.extend(template_errors(project))
    report.extend(check_incomplete_references(project))
    report.extend(check_references(project, os.environ if env is None else env))
    if strict:
        report.problems = [
            Problem("error", p.message, p.location, p.key_path, p.hint, p.code, p.detail)
            if p.severity == "warning" else p
            for p in report.problems
        ]
    return report


def validate_file(path: Path | str | None = None, *, strict: bool = False,
                  env: Mapping[str, str] | None = None, deployable: bool = False) -> ValidationReport:
    """Load and validate a file; a file that cannot be parsed gives a report with that one error."""
    try:
        project = load_project(path)
    except ConfigError as exc:
        name = str(path) if path is not None else "prefect.yaml"
        report = ValidationReport(name)
        report.add(Problem("error", exc.message, exc.location or Location(name, 1, 1), exc.key_path, exc.hint,
                           "syntax", exc.detail))
        return report
    return validate_project(project, strict=strict, env=env, deployable=deployable)
