"""`flow-run execute`: what a Prefect work pool launches in place of `prefect flow-run execute`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from flowdeck.cli.output import EXIT_INTERRUPTED, EXIT_OK, EXIT_USER, add_group, err, out
from flowdeck.errors import UsageError

_EXIT = {"COMPLETED": EXIT_OK, "NOT_STARTED": EXIT_OK, "FAILED": EXIT_USER, "CRASHED": EXIT_USER}


def _echo(line: str, is_err: bool) -> None:
    """The flow's output, line by line, to the worker's own log (flushed: the worker streams it)."""
    (err if is_err else out)(line)
    (sys.stderr if is_err else sys.stdout).flush()


def _cmd_execute(args: argparse.Namespace) -> int:
    from pathlib import Path

    from flowdeck.flowrun import ExecuteOptions, execute_flow_run
    from flowdeck.registry.choose import server_config
    from flowdeck.registry.server.client import ServerConfig

    run_id = args.flow_run_id or os.environ.get("PREFECT__FLOW_RUN_ID")
    if not run_id:
        raise UsageError("which flow run? give its id, or set PREFECT__FLOW_RUN_ID (a Prefect worker sets it)")
    config = server_config()
    if not isinstance(config, ServerConfig):
        raise UsageError("no Prefect server: set PREFECT_API_URL (a Prefect worker sets it) or pass --api URL")
    outcome = execute_flow_run(ExecuteOptions(
        flow_run_id=run_id, config=config, poll_interval=args.poll_interval, grace=args.grace,
        directory=Path(args.dir) if args.dir else None,
        echo=_echo))
    err(f"flow run {run_id}: {outcome.state.lower().replace('_', ' ')}: {outcome.message}")
    if outcome.state == "CANCELLED":
        return EXIT_INTERRUPTED if outcome.cancelled_by == "signal" else EXIT_OK
    return _EXIT.get(outcome.state, EXIT_USER)


def add_flow_run_commands(sub: Any) -> None:
    """Register `flow-run execute`."""
    group = add_group(sub, "flow-run", "execute Prefect flow runs (what a Prefect worker launches)")
    p = group.add_parser(
        "execute", help="run a Prefect flow run: pull with flowdeck, call the flow, report its state",
        description="Run the flow run PREFECT__FLOW_RUN_ID on the server at PREFECT_API_URL: mark it RUNNING, "
                    "run its deployment's pull steps with flowdeck, call the entrypoint, send its output as "
                    "logs, and end it COMPLETED, FAILED or CRASHED (CANCELLED on SIGTERM, Ctrl-C or a "
                    "cancellation from the UI). Set it as a work pool's command: "
                    "job_variables: {command: flowdeck flow-run execute}. Prefect need not be installed.")
    p.add_argument("flow_run_id", nargs="?", help="the flow run (default: $PREFECT__FLOW_RUN_ID)")
    p.add_argument("--dir", help="run the pull steps in this directory (default: the current one)")
    p.add_argument("--poll-interval", type=float, default=2.0,
                   help="seconds between checks for a cancellation from the UI (default 2)")
    p.add_argument("--grace", type=float, default=10.0,
                   help="seconds the flow gets to stop after SIGTERM before SIGKILL (default 10)")
    p.set_defaults(func=_cmd_execute)
