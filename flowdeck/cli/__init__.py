"""The command line: the only part of flowdeck that parses argv, prints or exits.

The library returns results and raises; these modules turn them into output and exit codes:
0 ok, 1 a user error (bad file, failed step), 2 usage, 3 an unexpected bug (the traceback is written to a
file whose path is printed), 130 interrupted, 143 / 129 terminated by SIGTERM / SIGHUP (see ``signals``).
One module per group of commands; ``output`` holds what they share.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Sequence

from flowdeck import __version__
from flowdeck.cli.output import (
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    RedactingFormatter,
    RedactingStream,
    err,
    help_command,
    show_warning,
)
from flowdeck.cli.registry import add_api_options, apply_registry_args
from flowdeck.cli.signals import Terminated, terminating_signals
from flowdeck.errors import FlowdeckError, FlowdeckWarning, UsageError
from flowdeck.redact import redact, register_secret_env

__all__ = ["build_parser", "main"]


_GLOBAL_FLAGS = frozenset({"-v", "--verbose", "-q", "--quiet", "--no-prompt"})


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (the global options take no value), or None."""
    for token in argv:
        if token not in _GLOBAL_FLAGS:
            return None if token.startswith("-") else token
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation): every command, or with ``command`` set to
    ``flow-run``, only that group.

    ``flow-run execute`` is what a Prefect worker launches before each flow run, and the time to the flow's
    first line is what its users wait for: building every other command's parser (and importing their
    modules) would cost it a few hundredths of a second for nothing.
    """
    # The command modules are imported here, not with the package: the flow's child process of
    # `flow-run execute` (`python -m flowdeck.cli.flowrun_child`) imports this package and needs none.
    from flowdeck.cli.flowrun import add_flow_run_commands

    parser = Parser(
        prog="flowdeck",
        description="A standalone, Prefect-compatible deployment engine for prefect.yaml.",
    )
    parser.add_argument("--version", action="version", version=f"flowdeck {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="show only warnings and errors")
    parser.add_argument("--no-prompt", action="store_true", help="accepted for Prefect compatibility")
    parser.set_defaults(func=help_command(parser))
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    if command == "flow-run":
        add_flow_run_commands(sub)
        return parser

    from flowdeck.cli.core import add_core_commands
    from flowdeck.cli.deploy import add_deploy_commands
    from flowdeck.cli.snapshot import add_snapshot_commands
    from flowdeck.cli.storage import add_storage_commands
    from flowdeck.cli.store import add_store_commands

    add_core_commands(sub)
    add_store_commands(sub)
    add_deploy_commands(sub)
    add_storage_commands(sub)
    add_flow_run_commands(sub)
    add_snapshot_commands(sub)
    add_api_options(sub)  # last: it adds --api to the registry commands defined above
    return parser


def _configure_logging(verbose: bool, quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(message)s"))
    root = logging.getLogger("flowdeck")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    root.propagate = False


def _write_crash_log(exc: BaseException) -> str:
    fd, path = tempfile.mkstemp(prefix="flowdeck-crash-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(redact("".join(traceback.format_exception(exc))))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(real_out)
    sys.stderr = RedactingStream(real_err)
    # Values of variables named like secrets (GITHUB_TOKEN, DB_PASS, ...) are masked like block secrets.
    register_secret_env(os.environ.items())
    old_showwarning = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        parser = build_parser(_command_of(sys.argv[1:] if argv is None else argv))
        try:
            args = parser.parse_args(argv)
        except UsageError as exc:
            err(f"flowdeck: error: {exc}")
            return EXIT_USAGE
        _configure_logging(args.verbose, args.quiet)
        apply_registry_args(args)
        with warnings.catch_warnings(), terminating_signals():
            warnings.simplefilter("default", FlowdeckWarning)
            warnings.showwarning = show_warning
            code: int = args.func(args)
        return code
    except FlowdeckError as exc:
        err(f"error: {exc}")
        return exc.exit_code
    except Terminated as exc:  # before KeyboardInterrupt, its base class
        from flowdeck.steps.process import stop_process_groups

        # A step running in a worker thread may still be stopping its child: give it the usual grace.
        stop_process_groups()
        err(f"terminated by {exc.name}")
        return exc.exit_code
    except KeyboardInterrupt:
        err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        path = _write_crash_log(exc)
        err(f"internal error: {type(exc).__name__}: {exc}")
        err(f"this is a bug in flowdeck; the full traceback was written to {path}")
        return EXIT_BUG
    finally:
        warnings.showwarning = old_showwarning
        try:
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, RedactingStream):
                    stream.close_stream()
                else:
                    stream.flush()
        finally:
            sys.stdout, sys.stderr = real_out, real_err

