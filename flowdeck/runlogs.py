"""The output of a running flow, captured as log entries for the registry (Prefect's UI shows them).

While :class:`RunLogCapture` is active, what the flow prints (``sys.stdout``/``sys.stderr``, line by line)
and what it logs (records reaching the root logger, INFO and up) still reach the console as before, and
are also collected as :class:`RunLog` entries. Every entry is redacted before it leaves: a secret never
reaches the server. Entries are sent in batches by a background thread (so the UI follows a long run)
and at the end; a failure to send never fails the run (it is reported once, on the console).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

from flowdeck.errors import FlowdeckError
from flowdeck.redact import StreamRedactor, redact

__all__ = ["PRINT_LOGGER", "RunLog", "RunLogCapture"]

#: The logger name printed lines are given (Prefect's own ``log_prints`` uses ``prefect.flow_runs``).
PRINT_LOGGER = "flowdeck.flow_run"
#: Loggers never captured: the HTTP client that sends the logs would otherwise log its own requests.
_IGNORED = ("httpx", "httpcore", "urllib3")
_BATCH = 200
_INTERVAL = 1.0
_MAX_MESSAGE = 10_000


@dataclass(frozen=True)
class RunLog:
    """One log line of a flow run, already redacted."""

    name: str
    level: int
    message: str
    timestamp: str


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Tee:
    """A text stream that writes through to ``inner`` and hands every complete line to ``emit``."""

    def __init__(self, inner: TextIO, level: int, emit: Callable[[str, int, str], None]) -> None:
        self._inner = inner
        self._level = level
        self._emit = emit
        self._redactor = StreamRedactor()
        self._partial = ""

    def write(self, text: str) -> int:
        self._inner.write(text)
        self._take(self._redactor.feed(text))
        return len(text)

    def _take(self, text: str) -> None:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if line.strip():
                self._emit(PRINT_LOGGER, self._level, line)

    def finish(self) -> None:
        self._take(self._redactor.finish())
        if self._partial.strip():
            self._emit(PRINT_LOGGER, self._level, self._partial)
        self._partial = ""

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        # isatty, encoding, fileno ...: the flow sees the console stream it would have seen.
        return getattr(self._inner, name)


class _Handler(logging.Handler):
    def __init__(self, emit: Callable[[str, int, str], None]) -> None:
        super().__init__(logging.INFO)
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_IGNORED):
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # a bad %-format in the flow's own log call must not fail the run
            message = str(record.msg)
        self._emit(record.name, record.levelno, redact(message))


class RunLogCapture:
    """Capture a flow run's output; ``send`` receives each batch (e.g. ``registry.send_run_logs``)."""

    def __init__(self, send: Callable[[Sequence[RunLog]], None], *, warn: Callable[[str], None] | None = None,
                 interval: float = _INTERVAL) -> None:
        self._send = send
        self._warn = warn or (lambda text: sys.__stderr__.write(text + "\n") if sys.__stderr__ else None)
        self._interval = interval
        self._pending: list[RunLog] = []
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._failed = False
        self._sending = threading.local()
        self._handler = _Handler(self._add)
        self._saved: tuple[TextIO, TextIO, int] | None = None
        self._tees: list[_Tee] = []
        self._thread: threading.Thread | None = None
        #: How many entries were sent (for tests and diagnostics).
        self.sent = 0

    def _add(self, name: str, level: int, message: str) -> None:
        if getattr(self._sending, "active", False):
            return
        entry = RunLog(name, level, message[:_MAX_MESSAGE], _now())
        with self._lock:
            self._pending.append(entry)
            full = len(self._pending) >= _BATCH
        if full:
            self.flush()

    def flush(self) -> None:
        """Send what is pending now."""
        with self._send_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch or self._failed:
                return
            self._sending.active = True
            try:
                self._send(batch)
                self.sent += len(batch)
            except FlowdeckError as exc:
                # The run goes on; its output is still on the console.
                self._failed = True
                self._warn(f"warning: the flow run's logs could not be sent: {redact(str(exc))}")
            finally:
                self._sending.active = False

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def __enter__(self) -> RunLogCapture:
        root = logging.getLogger()
        self._saved = (sys.stdout, sys.stderr, root.level)
        self._tees = [_Tee(sys.stdout, logging.INFO, self._add)]
        if sys.stderr is not sys.stdout:
            self._tees.append(_Tee(sys.stderr, logging.WARNING, self._add))
        sys.stdout = self._tees[0]
        sys.stderr = self._tees[-1]
        root.addHandler(self._handler)
        if root.level > logging.INFO:
            # The flow's `logger.info(...)` reaches the run's logs, as in Prefect.
            root.setLevel(logging.INFO)
        self._thread = threading.Thread(target=self._loop, name="flowdeck-run-logs", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._saved is not None
        root = logging.getLogger()
        root.removeHandler(self._handler)
        sys.stdout, sys.stderr, level = self._saved
        root.setLevel(level)
        for tee in self._tees:
            tee.finish()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
