"""Command-line options for the shared registry, and Prefect's ``deploy`` flags as CI scripts write them.

``--api URL`` is added to every command that reads or writes the registry (``deploy``, ``deployment``,
``pull``, ``run``, ``block``, ``variable``, ``snapshot``); :func:`apply_registry_args` hands it to
:func:`flowdeck.registry.use_api`. :func:`add_prefect_deploy_flags` adds the ``prefect deploy`` flags flowdeck
did not have yet (``--pool/-p``, ``--cron`` ...) and :func:`deploy_overrides` turns them into deployment fields.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from flowdeck.cli.output import parse_params
from flowdeck.errors import UsageError

__all__ = ["add_api_options", "add_prefect_deploy_flags", "apply_registry_args", "deploy_overrides"]

REGISTRY_COMMANDS = ("deploy", "deployment", "pull", "run", "block", "variable", "snapshot")


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:  # argparse offers no public way to walk subcommands
        if isinstance(action, argparse._SubParsersAction):
            found.extend(action.choices.values())
    return found


def add_api_options(sub: Any) -> None:
    """Add ``--api URL`` to the registry commands and their subcommands."""
    for name in REGISTRY_COMMANDS:
        parser = sub.choices.get(name)
        if parser is None:
            continue
        for target in [parser, *_subparsers(parser)]:
            target.add_argument("--api", default=argparse.SUPPRESS, metavar="URL",
                                help="a Prefect server's API URL (overrides FLOWDECK_API_URL and PREFECT_API_URL)")


def apply_registry_args(args: argparse.Namespace) -> None:
    """Select the server given by ``--api``, if any."""
    url = getattr(args, "api", None)
    if url:
        from flowdeck.registry import use_api

        use_api(url)


def add_prefect_deploy_flags(p: argparse.ArgumentParser) -> None:
    """``prefect deploy``'s flags that flowdeck's ``deploy`` did not have, with Prefect's spellings."""
    p.add_argument("--pool", "-p", default=None, metavar="POOL", help="the work pool")
    p.add_argument("--work-queue", "-q", default=None, metavar="QUEUE", help="the work queue")
    p.add_argument("--cron", action="append", default=[], help="a cron schedule (repeatable)")
    p.add_argument("--interval", action="append", default=[], type=float, metavar="SECONDS",
                   help="an interval schedule in seconds (repeatable)")
    p.add_argument("--anchor-date", default=None, help="the start of interval schedules")
    p.add_argument("--rrule", action="append", default=[], help="an RRule schedule (repeatable)")
    p.add_argument("--timezone", default=None, help="the schedules' timezone, e.g. Europe/Paris")
    p.add_argument("--params", default=None, metavar="JSON", help="parameters as a JSON object")
    p.add_argument("--job-variable", "-jv", action="append", default=[], metavar="K=V",
                   help="a job variable (JSON values), repeatable")
    p.add_argument("--description", default=None, help="the deployment's description")
    p.add_argument("-t", dest="tag", action="append", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--concurrency-limit", type=int, default=None, metavar="N", help="maximum concurrent runs")
    p.add_argument("--enforce-parameter-schema", action=argparse.BooleanOptionalAction, default=None,
                   help="validate run parameters against the flow's signature on the server")
    p.add_argument("--create-pool", action="store_true",
                   help="on a Prefect server, create a missing work pool (type process)")
    p.add_argument("--no-prompt", action="store_true", help="accepted for Prefect compatibility (never prompts)")


def deploy_overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(deployment field overrides, extra parameters) from Prefect's deploy flags."""
    fields: dict[str, Any] = {}
    pool: dict[str, Any] = {}
    if getattr(args, "pool", None):
        pool["name"] = args.pool
    if getattr(args, "work_queue", None):
        pool["work_queue_name"] = args.work_queue
    if getattr(args, "job_variable", None):
        pool["job_variables"] = parse_params(args.job_variable, "--job-variable")
    if pool:
        fields["work_pool"] = pool
    schedules: list[dict[str, Any]] = []
    tz = {"timezone": args.timezone} if getattr(args, "timezone", None) else {}
    schedules += [{"cron": c, **tz} for c in getattr(args, "cron", []) or []]
    anchor = {"anchor_date": args.anchor_date} if getattr(args, "anchor_date", None) else {}
    schedules += [{"interval": i, **anchor, **tz} for i in getattr(args, "interval", []) or []]
    schedules += [{"rrule": r, **tz} for r in getattr(args, "rrule", []) or []]
    if schedules:
        fields["schedules"] = schedules
    if getattr(args, "description", None) is not None:
        fields["description"] = args.description
    if getattr(args, "concurrency_limit", None) is not None:
        fields["concurrency_limit"] = args.concurrency_limit
    if getattr(args, "enforce_parameter_schema", None) is not None:
        fields["enforce_parameter_schema"] = args.enforce_parameter_schema
    params: dict[str, Any] = {}
    if getattr(args, "params", None):
        try:
            loaded = json.loads(args.params)
        except ValueError as exc:
            raise UsageError(f"--params is not valid JSON: {exc}", hint='e.g. --params \'{"n": 3}\'') from None
        if not isinstance(loaded, dict):
            raise UsageError("--params must be a JSON object", hint='e.g. --params \'{"n": 3}\'')
        params.update(loaded)
    return fields, params
