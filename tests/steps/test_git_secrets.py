"""A sentinel token must appear nowhere: output, logs, errors, the clone's and the cache's files, argv."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flowdeck.errors import GitError
from flowdeck.gitcache import forget_proofs
from flowdeck.paths import cache_dir
from flowdeck.steps.git import git_clone
from tests.servers.git import GitHttpServer, RepoBuilder
from tests.steps.gitutil import assert_not_in_tree, assert_nowhere, git_out, head, start_worker

MakeRepo = Callable[..., RepoBuilder]


@pytest.mark.parametrize("host", ["github.localhost", "gitlab.localhost", "bitbucket.localhost"])
def test_the_token_is_nowhere_after_a_clone(
    git_http_server: GitHttpServer,
    make_repo: MakeRepo,
    project: Path,
    host: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    token = git_http_server.token
    sub = make_repo({"s.txt": "s"})
    repo = make_repo()
    repo.add_submodule("sub", git_http_server.url(sub.name, host), sub.shas[-1])
    url = git_http_server.url(repo.name, host)
    out = git_clone(url, access_token=token, include_submodules=True)
    git_clone(url, access_token=token, include_submodules=True)  # and again, through the update path
    clone = project / out["directory"]
    assert head(clone) == repo.shas[-1]
    assert git_out(clone, "config", "--get", "remote.origin.url") == url
    captured = capfd.readouterr()
    assert_nowhere(token, caplog.text, captured.out, captured.err, str(out))
    assert_not_in_tree(token, clone)
    assert_not_in_tree(token, cache_dir())
    mirrors = list((cache_dir() / "git").glob("*.git"))
    assert len(mirrors) == 1
    assert git_out(mirrors[0], "config", "--get", "remote.origin.url") == url


def test_a_token_in_the_url_is_moved_out_of_it(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = git_http_server.token
    repo = make_repo()
    clean = git_http_server.url(repo.name, "gitlab.localhost")
    with_token = clean.replace("https://", f"https://oauth2:{token.replace('/', '%2F')}@")
    out = git_clone(with_token, cache=False)
    clone = project / out["directory"]
    assert git_out(clone, "config", "--get", "remote.origin.url") == clean
    assert_not_in_tree(token, clone)
    assert_nowhere(token, caplog.text)


def test_a_prefect_clone_with_a_stored_token_is_cleaned(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path
) -> None:
    token = git_http_server.token
    repo = make_repo()
    url = git_http_server.url(repo.name)
    git_clone(url, access_token=token, cache=False)
    clone = project / repo.name
    leaky = url.replace("https://", f"https://{token.replace('/', '%2F')}@")
    git_out(clone, "remote", "set-url", "origin", leaky)  # what Prefect leaves behind
    git_clone(url, access_token=token, cache=False)
    assert git_out(clone, "config", "--get", "remote.origin.url") == url
    assert_not_in_tree(token, clone / ".git")


@pytest.mark.parametrize(
    ("case", "hint"),
    [
        ("missing-repo", "repository not found"),
        ("wrong-style", "authentication failed"),
        ("no-token", "authentication failed"),
    ],
)
def test_errors_name_the_problem_without_the_token(
    git_http_server: GitHttpServer,
    make_repo: MakeRepo,
    project: Path,
    case: str,
    hint: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = git_http_server.token
    repo = make_repo()
    kwargs: dict[str, object] = {"access_token": token}
    url = git_http_server.url(repo.name, "gitlab.localhost")
    if case == "missing-repo":
        url = git_http_server.url("nope", "github.localhost")
    elif case == "wrong-style":  # GitLab refuses a token offered as a bare user name
        kwargs = {"credentials": {"username": token, "password": "x"}}
    else:
        kwargs = {}
    started = time.monotonic()
    with pytest.raises(GitError) as info:
        git_clone(url, **kwargs)  # type: ignore[arg-type]
    assert time.monotonic() - started < 30, "a missing credential must fail at once, not wait for a prompt"
    text = str(info.value)
    assert text.startswith(f"Failed to clone repository '{url}' with exit code 128: git said: ")
    assert f"(hint: {hint}" in text
    assert_nowhere(token, text, caplog.text, repr(info.value.__cause__), repr(info.value.__context__))
    assert list(project.iterdir()) in ([], [project / f"{url.rsplit('/', 1)[-1][:-4]}.lock"])


def _cmdlines() -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    found.append(fh.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return found


def test_the_token_never_shows_in_the_process_list(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path
) -> None:
    token = git_http_server.token
    # Large enough that the clone runs for a while: 300 files of 48 KiB of incompressible text.
    files: dict[str, str | None] = {f"data/f{i:03}.txt": os.urandom(36 * 1024).hex() for i in range(300)}
    repo = make_repo(files)
    seen: list[str] = []
    stop = threading.Event()

    def scan() -> None:
        while not stop.is_set():
            seen.extend(c for c in _cmdlines() if "git" in c)

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        runs: list[dict[str, object]] = [
            {"repository": git_http_server.url(repo.name, host), "clone_directory_name": host}
            for host in ("github.localhost", "gitlab.localhost")
        ]
        # A pinned commit already in the cache: the worker proves the token with ls-remote first.
        runs.append(
            {
                "repository": git_http_server.url(repo.name, "gitlab.localhost"),
                "commit_sha": repo.shas[-1],
                "clone_directory_name": "pinned",
            }
        )
        for kwargs in runs:
            worker = start_worker(project, kwargs, token)
            stdout, stderr = worker.communicate(timeout=120)
            assert worker.returncode == 0, stderr
            assert_nowhere(token, stdout, stderr)
    finally:
        stop.set()
        scanner.join()
    assert any(("clone" in c or "fetch" in c or "remote-https" in c) for c in seen), "no git process was seen"
    assert_nowhere(token, *seen)


def test_the_token_is_never_in_gits_argv_nor_files_including_the_access_check(
    git_http_server: GitHttpServer,
    make_repo: MakeRepo,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    # Every git flowdeck starts goes through this recorder first (then the real git runs), so the check
    # does not depend on catching short-lived processes in /proc.
    real = shutil.which("git")
    assert real is not None
    argv_log = tmp_path / "argv.log"
    shim = tmp_path / "bin" / "git"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{argv_log}"\nexec "{real}" "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    token = git_http_server.token
    wrong = "fdWRONG/" + token[::-1]
    repo = make_repo()
    url = git_http_server.url(repo.name, "gitlab.localhost")
    git_clone(url, commit_sha=repo.shas[-1], access_token=token, clone_directory_name="a")
    forget_proofs()
    git_clone(url, commit_sha=repo.shas[-1], access_token=token, clone_directory_name="b")  # proof, then hit
    with pytest.raises(GitError) as info:
        git_clone(url, commit_sha=repo.shas[-1], access_token=wrong, clone_directory_name="c")
    git_clone(url, branch="main", access_token=token, clone_directory_name="b")  # the update path
    argv = argv_log.read_text()
    assert "ls-remote --quiet " + url + " HEAD" in argv
    captured = capfd.readouterr()
    for secret in (token, wrong):
        assert_nowhere(secret, argv, caplog.text, captured.out, captured.err, str(info.value))
        assert_not_in_tree(secret, project)
        assert_not_in_tree(secret, cache_dir())
