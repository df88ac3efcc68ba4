"""git children: only safe transports run, nothing waits on input, and no git outlives flowdeck."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowdeck.errors import StepInputError
from flowdeck.gitrun import GitCommandError, git
from flowdeck.steps.git import git_clone, transport
from tests.conftest import CliRunner
from tests.steps.gitutil import WORKER, start_worker


def _processes_mentioning(marker: str, *, helpers: bool = True) -> list[int]:
    """Live processes whose command line contains ``marker`` (zombies have none); without git's
    remote helpers (``git remote-https ...``, ``git-remote-https ...``) when ``helpers`` is False."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and (helpers or "remote-" not in cmdline):
            found.append(int(entry))
    return found


def _wait_until_gone(marker: str, seconds: float = 10.0, *, helpers: bool = True) -> list[int]:
    # Killing is asynchronous: give the kernel a moment before declaring a survivor.
    deadline = time.monotonic() + seconds
    while (left := _processes_mentioning(marker, helpers=helpers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An HTTPS address that accepts connections and never answers: git waits on it forever."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # connections complete in the kernel's backlog; nobody ever reads them
        url = f"https://127.0.0.1:{sock.getsockname()[1]}/silent/repo.git"
        try:
            yield url
        finally:
            for pid in _processes_mentioning(url):  # only what this test started, if the code under test failed
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h/r.git", "https"),
        ("HTTP://h/r.git", "http"),
        ("git@github.com:org/r.git", "ssh"),
        ("ssh://git@h/r.git", "ssh"),
        ("git+ssh://h/r.git", "ssh"),
        ("git://h/r.git", "git"),
        ("file:///srv/r.git", "file"),
        ("/srv/r.git", "file"),
        ("./r", "file"),
        ("dir/with:colon", "file"),
        ("fd::0", "fd"),
        ("ext::sh -c 'cat'", "ext"),
        ("ftp://h/r.git", "ftp"),
    ],
)
def test_the_transport_is_named_as_git_names_it(url: str, expected: str) -> None:
    assert transport(url) == expected


@pytest.mark.parametrize("repository", ["fd::0", "fd::0,1", "ext::sh -c 'sleep 100'", "ftp://127.0.0.1/r.git"])
def test_a_transport_that_waits_or_runs_commands_is_refused(project: Path, repository: str) -> None:
    with pytest.raises(StepInputError) as info:
        git_clone(repository)
    text = str(info.value)
    assert "which flowdeck does not run" in text
    assert "use an https, http, ssh (git@host:org/repo.git), git:// or file:// URL, or a local path" in text
    assert "sleep" not in text  # the rest of the "URL" may be a command or a secret: never shown
    assert list(project.iterdir()) == []


@pytest.mark.parametrize("repository", ["fd::0", "ext::sh -c cat", "foo://127.0.0.1/r.git"])
def test_git_itself_refuses_other_transports(project: Path, repository: str) -> None:
    # The second line of defence, for URLs flowdeck does not check itself (submodules, a remote's config).
    with pytest.raises(GitCommandError) as info:
        git(["ls-remote", repository], timeout=60)
    assert info.value.kind == "transport"
    assert "not allowed" in str(info.value)


@pytest.mark.parametrize("repository", ["fd::0", "ext::sh -c cat"])
def test_steps_run_pull_with_fd_fails_fast_and_leaves_no_git(
    project: Path, cli: type[CliRunner], repository: str
) -> None:
    (project / "prefect.yaml").write_text(
        "name: demo\n"
        "prefect-version: 3.0.0\n"
        "pull:\n"
        "  - prefect.deployments.steps.git_clone:\n"
        f"      repository: \"{repository}\"\n"
        "      clone_directory_name: fd-marker-clone\n"
    )
    result = cli.run("steps", "run", "pull", cwd=project, timeout=60)
    assert result.code == 1, result.output
    assert "prefect.yaml:4:" in result.stderr  # located at the step
    assert "use an https, http, ssh (git@host:org/repo.git), git:// or file:// URL, or a local path" in (
        result.stderr
    )
    assert "Traceback" not in result.output
    assert _wait_until_gone("fd-marker-clone") == []
    assert _wait_until_gone(repository) == []


def test_a_git_that_does_not_finish_is_killed_with_its_helpers(silent_server: str) -> None:
    with pytest.raises(GitCommandError) as info:
        git(["ls-remote", silent_server], timeout=2, what="probe")
    assert info.value.kind == "timeout"
    assert str(info.value).startswith("probe: git did not finish within 2s and was stopped")
    # git-remote-https, a grandchild that carries the URL, went with it.
    assert _wait_until_gone(silent_server) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_no_git_outlives_a_worker_stopped_by_a_signal(
    project: Path, silent_server: str, sig: signal.Signals
) -> None:
    # A shell that starts the tests in the background makes them ignore SIGINT (and `nohup` SIGHUP), and
    # Python keeps an inherited "ignore": give the worker Python's own SIGINT handler and the default
    # SIGHUP and SIGTERM actions back.
    prelude = ("import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
               "signal.signal(signal.SIGHUP, signal.SIG_DFL)\nsignal.signal(signal.SIGTERM, signal.SIG_DFL)\n")
    worker = start_worker(
        project, {"repository": silent_server, "cache": False}, "tok-1234567890", code=prelude + WORKER
    )
    deadline = time.monotonic() + 60
    while not _processes_mentioning(silent_server):
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, "git never started"
        time.sleep(0.05)
    time.sleep(0.2)  # let git start its helper too
    os.kill(worker.pid, sig)  # the worker alone, as a supervisor stopping one process would
    worker.communicate(timeout=60)
    assert worker.returncode != 0
    assert _wait_until_gone(silent_server) == []


def test_git_dies_with_a_worker_killed_outright(project: Path, silent_server: str) -> None:
    # SIGKILL leaves flowdeck no chance to clean up: the kernel kills git (PR_SET_PDEATHSIG). Its helper,
    # stuck on a server that never answers, only ends at its next pipe use; the fixture removes it.
    worker = start_worker(project, {"repository": silent_server, "cache": False}, "tok-1234567890")
    deadline = time.monotonic() + 60
    while not _processes_mentioning(silent_server, helpers=False):
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, "git never started"
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.communicate(timeout=60)
    assert _wait_until_gone(silent_server, helpers=False) == []
