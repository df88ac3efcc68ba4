"""flowdeck.background: a call on another thread, its result or exception collected by the caller."""

from __future__ import annotations

import threading

import pytest

from flowdeck.background import Background


def test_the_result_and_the_thread_it_ran_on() -> None:
    call = Background(lambda: threading.current_thread().name, "flowdeck-test")
    assert call.result() == "flowdeck-test"
    assert call.result() == "flowdeck-test"  # collected again, same answer


def test_the_exception_is_raised_in_the_waiting_thread() -> None:
    def fail() -> None:
        raise ValueError("from the other thread")

    with pytest.raises(ValueError, match="from the other thread"):
        Background(fail, "flowdeck-test").result()
