"""One call on a thread of its own, whose result or exception the caller collects later.

flow-run execute proposes RUNNING while the pull steps run, and git_clone checks out the cached copy while
the server is asked what changed: in both, the main thread must get the other thread's exception as its own,
and must stay interruptible while it waits (a long ``join()`` would hold off the signal handlers that
cancel a run or stop a step's children).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Background"]

T = TypeVar("T")


class Background(Generic[T]):
    """Start ``action()`` on a daemon thread named ``name``; :meth:`result` waits for it and returns what it
    returned or raises what it raised."""

    def __init__(self, action: Callable[[], T], name: str) -> None:
        self._action = action
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._action()
        except BaseException as exc:  # raised in the waiting thread by result()
            self._error = exc

    def result(self) -> T:
        """The action's result, once it finished; raises what it raised."""
        while self._thread.is_alive():
            self._thread.join(0.05)  # short joins: a signal handler still runs in between
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set by _run when no error was raised
