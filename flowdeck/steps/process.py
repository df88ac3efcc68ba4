"""Run one local process for a step: stream its output to the console and capture it.

Shared by ``run_shell_script`` and ``pip_install_requirements``. Like Prefect, the child's stdout and
stderr are read concurrently in 4 KiB chunks, decoded with ``errors="replace"``, teed to ``sys.stdout`` /
``sys.stderr`` when streaming and always captured. Unlike a child that inherits the terminal, everything
it prints passes through ``sys.stdout.write()``, so the CLI's secret redaction applies to it.

The child gets no stdin (a prompt cannot hang a deployment) and its own process group, so that a
cancelled or interrupted step can stop it together with everything it started (pipelines, pip's build
backends). Every live group is also listed in a registry: a signal that ends flowdeck (SIGTERM, SIGHUP: how
CI cancels a job) arrives in the main thread, possibly while the step runs in another one, so the CLI's
handler forwards it with :func:`signal_process_groups` and then stops what is left with
:func:`stop_process_groups`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["CHUNK_SIZE", "Capture", "defer_while_starting", "run_process", "signal_process_groups",
           "stop_process_groups"]

CHUNK_SIZE = 4096
# How long a cancelled child gets to exit after SIGTERM before it is killed outright.
_TERMINATE_GRACE = 3.0
_POSIX = os.name == "posix"

# Process groups (= the leader's pid) of the children running now, until they have been reaped.
_live_groups: set[int] = set()
# Re-entrant: the signal handler reads the set in the main thread, possibly while that thread holds the lock.
_live_lock = threading.RLock()
# Children being started: between the fork and the registration of its group, a child is in no list, so a
# terminating signal that arrives then is held (see defer_while_starting) and raised again once it is listed.
_starting = 0
_held_signals: list[int] = []


def defer_while_starting(sig: int) -> bool:
    """Called by a signal handler: True (and ``sig`` held) while a step child is being started.

    The child may already run (and start its own children) before its process group is registered: a signal
    forwarded then would miss it and leave it behind. The held signal is raised again, through the OS, as
    soon as the child is listed, and the handler then forwards it to it too."""
    if _starting:
        _held_signals.append(sig)  # list.append is atomic under the GIL; no lock in a signal handler
        return True
    return False


@contextlib.contextmanager
def _starting_child() -> Iterator[None]:
    global _starting
    with _live_lock:
        _starting += 1
    try:
        yield
    finally:
        with _live_lock:
            _starting -= 1
            held = list(_held_signals) if _starting == 0 else []
            if held:
                _held_signals.clear()
        for sig in dict.fromkeys(held):
            signal.raise_signal(sig)


@contextlib.contextmanager
def _registered(pid: int) -> Iterator[None]:
    with _live_lock:
        _live_groups.add(pid)
    try:
        yield
    finally:
        with _live_lock:
            _live_groups.discard(pid)


def _groups() -> list[int]:
    with _live_lock:
        return sorted(_live_groups)


def signal_process_groups(sig: int) -> None:
    """Send ``sig`` to the process group of every step child running now (safe in a signal handler)."""
    if not _POSIX:
        return
    for pgid in _groups():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def stop_process_groups(grace: float = _TERMINATE_GRACE) -> None:
    """Wait up to ``grace`` seconds for every step child to be gone, then kill the groups that are left."""
    deadline = time.monotonic() + grace
    while _groups() and time.monotonic() < deadline:
        time.sleep(0.02)
    signal_process_groups(signal.SIGKILL if _POSIX else signal.SIGTERM)


@dataclass
class Capture:
    """Output captured from every process a step runs (captures accumulate across a script's lines)."""

    stdout_chunks: list[str] = field(default_factory=list)
    stderr_chunks: list[str] = field(default_factory=list)

    @property
    def stdout(self) -> str:
        """Everything written to stdout so far."""
        return "".join(self.stdout_chunks)

    @property
    def stderr(self) -> str:
        """Everything written to stderr so far."""
        return "".join(self.stderr_chunks)

    def result(self) -> dict[str, str]:
        """The step output Prefect returns: ``{"stdout", "stderr"}``, each stripped."""
        return {"stdout": self.stdout.strip(), "stderr": self.stderr.strip()}


async def run_process(
    command: str | Sequence[str],
    *,
    capture: Capture,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    stream_output: bool = True,
) -> int:
    """Run ``command`` to completion and return its exit code.

    A ``str`` runs through the shell; a sequence is executed directly (no shell). Output is appended to
    ``capture`` and, when ``stream_output`` is set, echoed to ``sys.stdout`` / ``sys.stderr``. If the
    awaiting task is cancelled (Ctrl-C, a timeout) the child and its process group are stopped before
    the cancellation propagates. ``OSError`` from starting the program (not found, not executable) is
    left to the caller, which knows how to explain it.
    """
    pipe, null = subprocess.PIPE, subprocess.DEVNULL
    child_env = dict(env) if env is not None else None
    # start_new_session is a POSIX notion (setsid); elsewhere it is ignored.
    with contextlib.ExitStack() as listed:
        with _starting_child():
            if isinstance(command, str):
                proc = await asyncio.create_subprocess_shell(
                    command, stdin=null, stdout=pipe, stderr=pipe, cwd=cwd, env=child_env,
                    start_new_session=_POSIX)
            else:
                proc = await asyncio.create_subprocess_exec(
                    *command, stdin=null, stdout=pipe, stderr=pipe, cwd=cwd, env=child_env,
                    start_new_session=_POSIX)
            listed.enter_context(_registered(proc.pid))
        return await _follow(proc, capture, stream_output)


async def _follow(proc: asyncio.subprocess.Process, capture: Capture, stream_output: bool) -> int:
    """Pump the child's output until it exits; stop its group if the wait is cancelled or interrupted."""
    # Look the console streams up now, not at import: tests and the CLI replace them.
    out_tee = sys.stdout if stream_output else None
    err_tee = sys.stderr if stream_output else None
    try:
        assert proc.stdout is not None and proc.stderr is not None
        await asyncio.gather(
            _pump(proc.stdout, capture.stdout_chunks, out_tee),
            _pump(proc.stderr, capture.stderr_chunks, err_tee),
        )
        return await proc.wait()
    finally:
        if proc.returncode is None:
            await _stop(proc)


async def _pump(stream: asyncio.StreamReader, sink: list[str], tee: TextIO | None) -> None:
    """Copy ``stream`` into ``sink`` (and ``tee``) until EOF."""
    # An incremental decoder keeps a multi-byte character split across two chunks intact.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    while True:
        chunk = await stream.read(CHUNK_SIZE)
        final = not chunk
        text = decoder.decode(chunk, final=final)
        if text:
            sink.append(text)
        if tee is not None:
            # Echo whole lines only, so a secret is never split across two writes of a redacting stream.
            pending += text
            cut = len(pending) if final else pending.rfind("\n") + 1
            if cut > 0:
                tee.write(pending[:cut])
                tee.flush()
                pending = pending[cut:]
        if final:
            return


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Terminate the child's process group, then kill it if it does not exit in time."""
    _signal(proc, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), _TERMINATE_GRACE)
    except (TimeoutError, asyncio.CancelledError):
        _signal(proc, signal.SIGKILL if _POSIX else signal.SIGTERM)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(proc.wait())


def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if _POSIX:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
