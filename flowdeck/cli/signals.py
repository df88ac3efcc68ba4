"""Signals that end flowdeck: SIGTERM and SIGHUP (how CI systems and terminals cancel a job).

Python turns SIGINT into KeyboardInterrupt, which unwinds the running step and stops its children; the
default action of SIGTERM and SIGHUP kills flowdeck at once and leaves the children of a running step
behind. While a command runs, :func:`terminating_signals` makes them behave like SIGINT: the signal is
forwarded to the process group of every running step child at once (also when the step runs in a worker
thread), then :class:`Terminated` unwinds the command so clean-ups run, and the CLI exits with 128 + the
signal number (143 for SIGTERM, 129 for SIGHUP), as a shell reports a process killed by it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["TERMINATING_SIGNALS", "Terminated", "terminating_signals"]

TERMINATING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when a terminating signal arrives.

    A KeyboardInterrupt, not only a BaseException: no ``except Exception`` swallows it, and asyncio, which
    logs and drops any other exception raised in a callback (the signal may arrive while a shell step's event
    loop runs one), re-raises it. Catch it before KeyboardInterrupt to tell the two apart."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        """SIGTERM, SIGHUP, ..."""
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal number."""
        return 128 + self.signum


def _handle(signum: int, frame: FrameType | None) -> None:
    from flowdeck.steps.process import defer_while_starting, signal_process_groups

    if defer_while_starting(signum):
        return  # a step child is between its fork and its listing: raised again once it can be reached
    signal_process_groups(signum)
    raise Terminated(signum)


@contextlib.contextmanager
def terminating_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handle) for sig in TERMINATING_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
