"""RunLogCapture: a flow's prints and logs become redacted log entries; a send failure never fails the run."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence

import pytest

from flowdeck.errors import RegistryError
from flowdeck.redact import clear_secrets, register_secret
from flowdeck.runlogs import PRINT_LOGGER, RunLog, RunLogCapture

SENTINEL = "sentinel-runlogs-0123456789abcdef"


@pytest.fixture(autouse=True)
def secret() -> Iterator[None]:
    register_secret(SENTINEL)
    yield
    clear_secrets()


def test_prints_and_logs_are_captured_and_masked(capsys: pytest.CaptureFixture[str]) -> None:
    batches: list[Sequence[RunLog]] = []
    level = logging.getLogger().level
    with RunLogCapture(batches.append):
        print("one")
        sys.stdout.write(SENTINEL[:10])  # a secret split across two writes is still masked
        sys.stdout.write(SENTINEL[10:] + " end\nno newline at the end")
        logging.getLogger("flow.child").info("rows: %d", 3)
        logging.getLogger("httpx").warning("the client's own request log is not captured")
    entries = [(e.name, e.level, e.message) for batch in batches for e in batch]
    assert entries == [(PRINT_LOGGER, 20, "one"), (PRINT_LOGGER, 20, "******** end"),
                       ("flow.child", 20, "rows: 3"), (PRINT_LOGGER, 20, "no newline at the end")]
    assert "one" in capsys.readouterr().out  # still on the console
    assert logging.getLogger().level == level  # restored


def test_a_failure_to_send_is_reported_once_and_the_run_goes_on() -> None:
    warnings: list[str] = []

    def send(batch: Sequence[RunLog]) -> None:
        raise RegistryError(f"the server is gone (token {SENTINEL})")

    with RunLogCapture(send, warn=warnings.append) as capture:
        print("a")
        capture.flush()
        print("b")
    assert len(warnings) == 1 and "could not be sent" in warnings[0] and SENTINEL not in warnings[0]
    assert capture.sent == 0
