"""deploy --watch: deploys again after a change, sees a change made right after "watching", and Ctrl-C
ends it with exit code 130. Every wait is bounded, even when the process prints nothing."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, write_tree


class _Output:
    """The merged output of a process, read by a thread so that a wait can give up at a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        stream = proc.stdout

        def pump() -> None:
            for line in stream:
                self._queue.put(line)
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return
        raise AssertionError(f"never saw {text!r} within {timeout}s; output so far: {''.join(self.lines)}")


@pytest.fixture
def watching(flow_project: Path) -> Iterator[tuple[subprocess.Popen[str], _Output]]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "flowdeck", "deploy", "--watch"], cwd=flow_project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, _Output(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_watch_redeploys_on_change_and_ctrl_c_exits_130(
    flow_project: Path, watching: tuple[subprocess.Popen[str], _Output]
) -> None:
    proc, output = watching
    output.wait_for("hello/daily: created")
    output.wait_for("watching")
    flow = flow_project / "flows" / "hello.py"
    flow.write_text(flow.read_text() + "\n# changed\n")
    output.wait_for("hello/daily: updated")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    assert any("changed: flows/hello.py" in line for line in output.lines)


@pytest.fixture
def big_project(flow_project: Path) -> Path:
    # Enough files that the first snapshot takes a while: prefect.yaml is read at its end, so a change
    # to it made right after "watching" was inside the first snapshot when that was taken too late.
    write_tree(flow_project, {f"data/d{i // 100:02d}/f{i:04d}.txt": "x" for i in range(3000)})
    return flow_project


def test_a_change_right_after_watching_is_seen(
    big_project: Path, watching: tuple[subprocess.Popen[str], _Output]
) -> None:
    proc, output = watching
    output.wait_for("watching", timeout=120)
    config = big_project / "prefect.yaml"
    config.write_text(config.read_text() + "# changed right away\n")
    output.wait_for("changed: prefect.yaml", timeout=60)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
