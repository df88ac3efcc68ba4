"""Output, exit codes and small helpers shared by every command (the CLI layer only)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from flowdeck.errors import FlowdeckWarning, UsageError
from flowdeck.jsontypes import loads_bounded
from flowdeck.redact import StreamRedactor, redact

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class RedactingStream(io.TextIOBase):
    """Masks secrets before writes reach the real stream, also a secret split across two writes.

    Complete lines go out at once; the end of an unfinished line is held back only as far as a secret
    could still be running on into the next write (see :class:`flowdeck.redact.StreamRedactor`).
    :meth:`close_stream` writes what is held at the end.
    """

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner
        self._redactor = StreamRedactor()

    def write(self, text: str) -> int:
        shown = self._redactor.feed(text)
        if shown:
            self._inner.write(shown)
            if "\n" in shown:
                self._inner.flush()
        return len(text)

    def flush(self) -> None:
        # Only what is safe: a flush between two halves of a secret must not show the first half.
        shown = self._redactor.feed("")
        if shown:
            self._inner.write(shown)
        self._inner.flush()

    def close_stream(self) -> None:
        """Write what is held back (the end of the output) and flush; the inner stream stays open."""
        rest = self._redactor.finish()
        if rest:
            self._inner.write(rest)
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._inner, "encoding", "utf-8")

    def fileno(self) -> int:
        return self._inner.fileno()


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


@contextlib.contextmanager
def stdout_to_stderr(active: bool = True) -> Iterator[None]:
    """Send what steps stream (shell output, progress) to stderr, keeping stdout for the result."""
    if not active:
        yield
        return
    saved = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = saved


def out(text: str = "") -> None:
    sys.stdout.write(redact(text) + "\n")


def err(text: str) -> None:
    sys.stderr.write(redact(text) + "\n")


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    if isinstance(message, FlowdeckWarning) or issubclass(category, DeprecationWarning):
        err(f"warning: {message}")
    else:
        err(f"warning: {message}")



def help_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        parser.print_help()
        return EXIT_OK

    return run


def store_resolver() -> Any:
    """The store-backed block/variable resolver, when the store is available."""
    try:
        from flowdeck.resolver import StoreResolver  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return StoreResolver()


class Parser(argparse.ArgumentParser):
    """argparse with exit code 2 and a one-line message for usage errors."""

    def error(self, message: str) -> Any:
        raise UsageError(message, hint=f"run `{self.prog} --help`")


def print_json(value: Any) -> None:
    out(json.dumps(value, indent=2, sort_keys=True, default=str))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        out("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def parse_params(pairs: Sequence[str], flag: str = "--param") -> dict[str, Any]:
    """``K=V`` pairs; a value is parsed as JSON when it parses (``n=3`` is the number 3)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} expects KEY=VALUE, got '{pair}'")
        try:
            params[key] = loads_bounded(value)
        except ValueError:
            params[key] = value
    return params




def add_group(sub: Any, name: str, help_text: str) -> Any:
    """A command with subcommands (``flowdeck block ...``): bare, it prints its help."""
    group = sub.add_parser(name, help=help_text)
    group.set_defaults(func=help_command(group))
    return group.add_subparsers(title=f"{name} commands", metavar="COMMAND", parser_class=Parser)
