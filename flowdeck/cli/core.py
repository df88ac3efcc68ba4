"""`validate` and `steps list|run`."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from flowdeck.cli.output import (
    EXIT_OK,
    EXIT_USER,
    add_group,
    err,
    out,
    stdout_to_stderr,
    store_resolver,
)
from flowdeck.errors import Problem


def _print_problem(problem: Problem) -> None:
    prefix = "error" if problem.severity == "error" else "warning"
    line = str(problem)
    # Located problems read "file:line:col: ...: <severity>"-style like compilers; unlocated ones lead with it.
    err(f"{line.split(': ', 1)[0]}: {prefix}: {line.split(': ', 1)[1]}" if problem.location else f"{prefix}: {line}")
    if problem.detail:
        err(problem.detail)


def _cmd_validate(args: argparse.Namespace) -> int:
    from flowdeck.validation import validate_file

    report = validate_file(args.file, strict=args.strict, deployable=True)
    problems = report.sorted()
    if args.json:
        out(json.dumps({"file": report.file, "valid": report.ok,
                         "problems": [p.to_dict() for p in problems]}, indent=2))
    else:
        for problem in problems:
            _print_problem(problem)
        errors, warns = len(report.errors()), len(report.warnings())
        if report.ok:
            out(f"{report.file} is valid" + (f" ({warns} warning{'s' * (warns != 1)})" if warns else ""))
        else:
            err(f"{report.file}: {errors} error{'s' * (errors != 1)}, {warns} warning{'s' * (warns != 1)}")
    return EXIT_OK if report.ok else EXIT_USER


def _cmd_steps_list(args: argparse.Namespace) -> int:
    from flowdeck.steps.aliases import ALIASES
    from flowdeck.steps.registry import BUILTIN_STEPS

    rows: list[dict[str, Any]] = []
    for spec in BUILTIN_STEPS:
        aliases = sorted(name for name, target in ALIASES.items() if target == spec.name and name != spec.name)
        rows.append({
            "name": spec.name,
            "summary": spec.summary,
            "aliases": aliases,
            "arguments": [{"name": p.name, "required": p.required, "types": list(p.types)} for p in spec.params],
            "outputs": list(spec.outputs),
            "extra": spec.extra,
        })
    if args.json:
        out(json.dumps(rows, indent=2))
        return EXIT_OK
    for row in rows:
        out(f"{row['name']}  {row['summary']}")
        args_text = ", ".join(a["name"] + ("" if a["required"] else "?") for a in row["arguments"])
        out(f"    arguments: {args_text}")
        out(f"    outputs:   {', '.join(row['outputs'])}")
        if row["extra"]:
            out(f"    needs:     pip install 'flowdeck[{row['extra']}]'")
        for alias in row["aliases"]:
            out(f"    alias:     {alias}")
    return EXIT_OK


def _cmd_steps_run(args: argparse.Namespace) -> int:
    from flowdeck.config import load_project
    from flowdeck.pipeline import run_sections
    from flowdeck.steps.runner import RunOptions

    if args.no_cache:
        os.environ["FLOWDECK_NO_CACHE"] = "1"
    project = load_project(args.file)
    options = RunOptions(resolver=store_resolver(), strict=args.strict, install_requires=args.install_requires)
    with stdout_to_stderr(args.json):
        outputs = run_sections(project, args.sections, args.deployment, options)
    if args.json:
        out(json.dumps(outputs, indent=2, default=str))
    else:
        for key, value in outputs.items():
            out(f"{key}: {json.dumps(value, default=str) if not isinstance(value, str) else value}")
    return EXIT_OK


def _add_steps_run(steps_sub: Any) -> None:
    p = steps_sub.add_parser(
        "run", help="run build, push and/or pull steps of a deployment from the current directory",
        description="Run one or more sections (in build, push, pull order); each sees the outputs of "
                    "those before it. Prints the accumulated outputs.")
    p.add_argument("sections", nargs="+", choices=["build", "push", "pull"], metavar="SECTION",
                   help="build, push or pull")
    p.add_argument("--deployment", "-d", default=None, help="the deployment whose sections run "
                   "(default: the top-level sections)")
    p.add_argument("--file", "--prefect-file", "-f", dest="file", default=None,
                   help="the prefect.yaml to use (--prefect-file as in Prefect)")
    p.add_argument("--json", action="store_true", help="print the outputs as one JSON object")
    p.add_argument("--strict", action="store_true", help="a missing environment variable is an error")
    p.add_argument("--install-requires", action="store_true",
                   help="pip install a custom step's `requires:` when missing")
    p.add_argument("--no-cache", action="store_true", help="do not use the worker cache")
    p.set_defaults(func=_cmd_steps_run)



def add_core_commands(sub: Any) -> None:
    """`validate` and `steps`."""
    p = sub.add_parser("validate", help="check prefect.yaml and report every problem",
                       description="Check prefect.yaml and report every problem, each with file:line:col.")
    p.add_argument("--file", "--prefect-file", "-f", dest="file", default=None,
                   help="the file to check (default: prefect.yaml; --prefect-file as in Prefect)")
    p.add_argument("--json", action="store_true", help="print the problems as JSON")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.set_defaults(func=_cmd_validate)

    steps_sub = add_group(sub, "steps", "list or run build/push/pull steps")
    p = steps_sub.add_parser("list", help="the built-in steps: canonical names, aliases, arguments")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_steps_list)
    _add_steps_run(steps_sub)
