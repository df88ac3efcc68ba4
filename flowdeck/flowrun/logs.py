"""The flow run's logs on the server: a background thread sends them in batches, redacted.

Everything the run prints (pull steps' progress, the flow's stdout and stderr, the final error) becomes a
log line of the run, as ``prefect flow-run execute`` with ``log_prints`` does. A server that cannot take
them does not stop the run: the lines still reach the worker's own output.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flowdeck.flowrun.server import FlowRunApi, now_iso
from flowdeck.redact import redact
from flowdeck.registry.server.client import ServerConfig

__all__ = ["LogShipper"]

_BATCH = 200
_INTERVAL = 0.5


class LogShipper:
    """Collects log lines and sends them to the server from a thread of its own."""

    def __init__(self, config: ServerConfig, flow_run_id: str, *, hold: bool = False,
                 version_checked: bool = False) -> None:
        """``hold``: queue lines but send none until :meth:`release` (the run may turn out not to be ours);
        ``version_checked``: the server's version is known to be fine (see :class:`FlowRunApi`)."""
        self._version_checked = version_checked
        self._config = config
        self._flow_run_id = flow_run_id
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self._stopping = False
        self.failures = 0
        self._thread = threading.Thread(target=self._loop, name="flowdeck-logs", daemon=True)
        self._thread.start()

    def log(self, name: str, level: int, message: str) -> None:
        """Queue one line (redacted now: the queue never holds a secret)."""
        record = {"name": name, "level": level, "message": redact(message), "timestamp": now_iso()}
        with self._lock:
            self._pending.append(record)

    def handler(self) -> logging.Handler:
        """A logging handler that queues what flowdeck's own loggers say."""
        shipper = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                try:
                    shipper.log(record.name, record.levelno, record.getMessage())
                except Exception:
                    self.handleError(record)

        return _Handler(logging.INFO)

    def _take(self) -> list[dict[str, Any]]:
        with self._lock:
            batch, self._pending = self._pending[:_BATCH], self._pending[_BATCH:]
            return batch

    def release(self) -> None:
        """Start sending (a held shipper's lines too) at the next tick, not at once: a flow run releases
        its lines just before the flow starts, and the server (often on the same machine) had better spend
        that moment on nothing else."""
        self._released.set()

    def discard(self) -> None:
        """Drop every queued line: they belong to a run that is not ours."""
        with self._lock:
            self._pending.clear()

    def _loop(self) -> None:
        api = FlowRunApi(self._config, self._flow_run_id, version_checked=self._version_checked)
        try:
            while True:
                self._wake.wait(_INTERVAL)
                self._wake.clear()
                if not self._released.is_set():
                    if self._stopping:
                        return  # never released: nothing of it goes to the server
                    continue
                while batch := self._take():
                    try:
                        api.send_logs(batch)
                    except Exception:
                        self.failures += 1
                if self._stopping:
                    return
        finally:
            api.close()

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, then stop the thread."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
