"""Run git as a subprocess: captured output re-emitted through logging (redacted), classified errors, retries.

git never inherits the terminal: stdin is closed and output is captured, so nothing it prints escapes
redaction, and a missing credential fails at once instead of waiting for input. Only the transports in
:data:`ALLOWED_PROTOCOLS` run (``GIT_ALLOW_PROTOCOL``): ``fd::``, ``ext::`` and remote helpers of unknown
schemes could wait on a pipe forever or run commands. Each git runs in a process group of its own, which
is killed (helpers such as ``git-remote-https`` included) when the command times out, when the calling
code is interrupted (KeyboardInterrupt, any exception), when flowdeck gets SIGTERM or SIGHUP, and at exit.
A flowdeck killed outright (SIGKILL) cannot clean up: on Linux each git asks the kernel to kill it when
flowdeck dies (``PR_SET_PDEATHSIG``), and its helpers then end at their next read or write on its pipes.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TypeVar

from flowdeck.errors import GitError
from flowdeck.gitauth import append_config
from flowdeck.redact import redact

__all__ = ["ALLOWED_PROTOCOLS", "GitCommandError", "classify", "git", "git_output", "retrying"]

log = logging.getLogger("flowdeck.git")

T = TypeVar("T")

# (patterns in git's stderr, hint, transient?, kind) - first match wins, so specific patterns come first.
_KNOWN: tuple[tuple[tuple[str, ...], str, bool, str], ...] = (
    (
        (
            "authentication failed",
            "could not read username",
            "could not read password",
            "the requested url returned error: 401",
            "the requested url returned error: 403",
            "invalid username or password",
            "permission denied (publickey",
        ),
        "authentication failed: check the access token or credentials block, that it can read this "
        "repository, and that it is formatted for the host (see `username`)",
        False,
        "auth",
    ),
    (
        ("fatal: transport '", "unable to find remote helper"),
        "this transport is not allowed: use an https, http, ssh, git or file URL (or a local path)",
        False,
        "transport",
    ),
    (
        ("server certificate verification failed", "ssl certificate problem", "certificate verify failed"),
        "TLS certificate verification failed: install the server's CA and point GIT_SSL_CAINFO at it",
        False,
        "tls",
    ),
    (
        ("couldn't find remote ref", "remote branch", "did not match any"),
        "branch or commit not found on the remote: check `branch` / `commit_sha`",
        False,
        "ref",
    ),
    (
        (
            "unadvertised object",
            "not our ref",
            "reference is not a tree",
            "bad object",
            "unable to read tree",
        ),
        "commit not found on the remote: check `commit_sha` (a full sha of a pushed commit)",
        False,
        "commit",
    ),
    (
        (
            "repository not found",
            "does not appear to be a git repository",
            "no such repository",
            "the requested url returned error: 404",
            "not found",
        ),
        "repository not found: check the URL; a private repository also answers 'not found' when the "
        "credentials lack access",
        False,
        "repo",
    ),
    (
        (
            "could not resolve host",
            "could not resolve hostname",
            "name or service not known",
            "temporary failure in name resolution",
        ),
        "host unreachable: the host name does not resolve; check the URL and the network",
        True,
        "dns",
    ),
    (
        (
            "connection refused",
            "failed to connect",
            "couldn't connect to server",
            "connection timed out",
            "operation timed out",
            "network is unreachable",
            "no route to host",
        ),
        "host unreachable: check the URL's host and port, and that the server is up",
        True,
        "connect",
    ),
    (
        (
            "early eof",
            "the remote end hung up unexpectedly",
            "rpc failed",
            "connection reset",
            "the requested url returned error: 50",
            "gnutls_handshake",
            "ssl_error_syscall",
            "unexpected disconnect",
            "transfer closed",
            "http/2 stream",
        ),
        "the connection failed during the transfer; it was retried",
        True,
        "transfer",
    ),
)


# The transports git may use, by git's own names (``file`` covers local paths, ``ssh`` the scp-like form).
ALLOWED_PROTOCOLS = ("https", "http", "ssh", "git", "file")

def classify(stderr: str) -> tuple[str | None, bool, str | None]:
    """A hint for a git failure, whether it is worth retrying (a transient network problem), and its kind.

    Kinds: ``auth``, ``transport``, ``tls``, ``ref``, ``commit``, ``repo``, ``dns``, ``connect``,
    ``transfer`` or None (and ``timeout``, set by :func:`git` itself).
    """
    low = stderr.lower()
    for patterns, hint, transient, kind in _KNOWN:
        if any(p in low for p in patterns):
            return hint, transient, kind
    return None, False, None


class GitCommandError(GitError):
    """A git command failed; carries its redacted stderr, exit code and whether it looked transient."""

    def __init__(
        self,
        message: str,
        *,
        stderr: str,
        returncode: int,
        hint: str | None,
        transient: bool,
        kind: str | None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.stderr = stderr
        self.returncode = returncode
        self.transient = transient
        self.kind = kind

    @property
    def is_network(self) -> bool:
        """True for failures to reach or talk to the server (including refused credentials)."""
        return self.kind in {"auth", "tls", "dns", "connect", "transfer", "repo", "timeout"}


def _tail(stderr: str, lines: int = 3) -> str:
    useful = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("hint:")]
    return " | ".join(useful[-lines:])


# Process groups of the git commands running now; killed on a terminating signal and at exit.
_live: set[int] = set()
_live_lock = threading.RLock()  # re-entrant: the signal handler may run while the main thread holds it
_handlers_installed = False


def _kill_group(pgid: int) -> None:
    # Only called before the group leader is reaped, so the id cannot belong to anyone else yet.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_live() -> None:
    with _live_lock:
        groups = list(_live)
    for pgid in groups:
        _kill_group(pgid)


def _on_signal(previous: object, signum: int, frame: FrameType | None) -> None:
    _kill_live()
    if callable(previous):
        previous(signum, frame)
        return
    # The default action: die of the same signal, as if we had not been here.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    """Kill running git groups on SIGTERM/SIGHUP, then do what was set before (chained, once per process)."""
    global _handlers_installed
    if _handlers_installed or threading.current_thread() is not threading.main_thread():
        return
    _handlers_installed = True
    atexit.register(_kill_live)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)
        if previous is signal.SIG_IGN or previous is None:
            continue  # ignored (nohup) or set outside Python: leave it alone
        signal.signal(sig, functools.partial(_on_signal, previous))


_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # no libc symbols (static builds): no parent-death signal
        _prctl = None


def _die_with(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when ``parent`` dies (Linux only)."""
    prctl = _prctl
    if prctl is None:
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return preexec


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    child = dict(os.environ if env is None else env)
    child["GIT_TERMINAL_PROMPT"] = "0"
    allowed: tuple[str, ...] = ALLOWED_PROTOCOLS
    if "GIT_ALLOW_PROTOCOL" in child:  # the operator's list can narrow ours, never widen it
        wanted = set(child["GIT_ALLOW_PROTOCOL"].split(":"))
        allowed = tuple(p for p in ALLOWED_PROTOCOLS if p in wanted)
    child["GIT_ALLOW_PROTOCOL"] = ":".join(allowed)
    # A detached auto-gc would leave our process group (setsid) and outlive flowdeck: run it in line.
    append_config(child, [("gc.autoDetach", "false"), ("maintenance.autoDetach", "false")])
    return child


def git(
    args: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    what: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``git ARGS``; raise :class:`GitCommandError` ("<what> with exit code N: git said: ...") on failure.

    ``args`` must never contain a secret: credentials travel in ``env`` only. After ``timeout`` seconds the
    command's whole process group is killed and a ``timeout`` error raised.
    """
    shown = redact("git " + " ".join(args))
    log.debug("running %s%s", shown, f" in {cwd}" if cwd else "")
    _install_handlers()
    try:
        proc = subprocess.Popen(
            ["git", *args],
            cwd=cwd,
            env=_child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()),
        )
    except FileNotFoundError as exc:
        raise GitError(
            "git is not installed or not on PATH", hint="install git (apt-get install git)"
        ) from exc
    with _live_lock:
        _live.add(proc.pid)
    timed_out = False
    try:
        try:
            stdout, raw_stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            try:
                stdout, raw_stderr = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # a daemon that left the group holds the pipes open
                proc.wait()
                stdout, raw_stderr = "", ""
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise
    finally:
        with _live_lock:
            _live.discard(proc.pid)
    stderr = redact(raw_stderr)
    for line in stderr.splitlines():
        if line.strip():
            log.debug("git: %s", line.rstrip())
    if timed_out:
        raise GitCommandError(
            f"{what or f'`{shown}`'}: git did not finish within {timeout:g}s and was stopped",
            stderr=stderr,
            returncode=proc.returncode,
            hint="the server accepted the connection but did not answer; check that it is up",
            transient=False,
            kind="timeout",
        )
    if proc.returncode != 0:
        hint, transient, kind = classify(stderr)
        said = _tail(stderr)
        message = (
            f"{what} with exit code {proc.returncode}"
            if what
            else (f"`{shown}` failed with exit code {proc.returncode}")
        )
        if said:
            message += f": git said: {said}"
        raise GitCommandError(
            message, stderr=stderr, returncode=proc.returncode, hint=hint, transient=transient, kind=kind
        )
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def git_output(
    args: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None
) -> str | None:
    """stdout of ``git ARGS`` stripped, or None when it fails (for probes such as ``rev-parse``)."""
    try:
        return git(args, cwd=cwd, env=env).stdout.strip()
    except GitCommandError:
        return None


# Prefect's policy: 3 attempts, exponential backoff from 1 s capped at 10 s, with jitter.
ATTEMPTS = 3
_sleep = time.sleep  # tests replace this (a clock is the one thing they may fake)
BASE_DELAY = 1.0
MAX_DELAY = 10.0


def retrying(action: Callable[[], T], *, what: str, sleep: Callable[[float], None] | None = None) -> T:
    """Run ``action``; on a transient :class:`GitCommandError`, retry with bounded exponential backoff."""
    pause = sleep or _sleep
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return action()
        except GitCommandError as exc:
            if not exc.transient or attempt == ATTEMPTS:
                raise
            delay = min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1)) * (1 + random.random() / 4)
            log.warning(
                "%s failed (attempt %d of %d), retrying in %.1fs: %s",
                what,
                attempt,
                ATTEMPTS,
                delay,
                exc.message,
            )
            pause(delay)
    raise AssertionError("unreachable")  # pragma: no cover
