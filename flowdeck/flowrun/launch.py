"""The flow's child process, started while the pull steps still run when nothing they do can change it.

Python's start-up (the interpreter, ``site``, the child's own imports) takes a tenth of a second or more;
the pull steps take longer. So for pull steps that only put code in place (:data:`_PURE_PULLS`) the child
starts with them, waits on its stdin, and gets its spec's path once the code is there. Steps that may
install packages (``pip_install_requirements``, a shell script, a custom step and its ``requires:``) could
add a ``.pth`` file that only a later start-up reads: after those, the child starts after the pull, as
before. Either way the child is the same command, ``python -m flowdeck.cli.flowrun_child -``, in a process
group of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["FlowProcess", "starts_early"]

# Built-in steps (canonical names) that only write the project's files and change directory.
_PURE_PULLS = frozenset({
    "flowdeck.steps.git_clone", "flowdeck.steps.set_working_directory", "flowdeck.steps.pull_from_s3",
    "flowdeck.steps.pull_from_gcs", "flowdeck.steps.pull_from_azure_blob_storage",
})


def starts_early(steps: Sequence[Any]) -> bool:
    """True when every pull step is a built-in that cannot change what a new Python process would see."""
    from flowdeck.steps.aliases import ALIASES

    if not steps:
        return False
    for step in steps:
        if not isinstance(step, dict) or len(step) != 1:
            return False
        (name,) = step
        if ALIASES.get(str(name)) not in _PURE_PULLS:
            return False
    return True


class FlowProcess:
    """The child, started now, told what to run later (:meth:`go`), or never (:meth:`abandon`)."""

    def __init__(self, cwd: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowdeck.cli.flowrun_child", "-"], cwd=cwd, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
            errors="replace", start_new_session=True)

    def go(self, spec_path: Path) -> subprocess.Popen[str]:
        """Hand the child its spec; it runs the flow (its stdin is then empty, as a worker's job's is)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{spec_path}\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # it died on its own: its exit code tells the caller
        return self.proc

    def abandon(self) -> None:
        """The flow will not run: end the waiting child (EOF on its stdin, then its whole group)."""
        if self.proc.poll() is not None:
            return
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
