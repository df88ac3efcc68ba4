"""The shared worker cache never serves what the server would refuse the caller, and still works offline
for repositories that need no credentials."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowdeck import gitrun
from flowdeck.errors import GitError
from flowdeck.gitcache import forget_proofs, mirror_path
from flowdeck.steps.git import git_clone
from tests.conftest import CliRunner
from tests.servers.flaky_proxy import FlakyProxy
from tests.servers.git import GitDaemon, GitHttpServer, RepoBuilder
from tests.steps.gitutil import assert_nowhere, head

MakeRepo = Callable[..., RepoBuilder]
WRONG = "fdWRONG-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries of an unreachable server happen without sleeping (the clock is the one thing tests fake)."""
    monkeypatch.setattr(gitrun, "_sleep", lambda _delay: None)


@pytest.fixture
def proxy_to() -> Iterator[Callable[[int], FlakyProxy]]:
    """``proxy_to(port)``: a TCP proxy to a real server that the test can take offline with ``close()``."""
    proxies: list[FlakyProxy] = []

    def make(port: int) -> FlakyProxy:
        proxies.append(FlakyProxy(port))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


def _commands(records: list[dict[str, object]]) -> list[object]:
    return [r["command"] for r in records if r["method"] == "POST"]


@pytest.mark.parametrize("intruder", ["wrong-token", "no-token"])
@pytest.mark.parametrize("into", ["new-directory", "existing-clone"])
def test_a_cache_hit_is_refused_when_the_server_refuses(
    git_http_server: GitHttpServer,
    make_repo: MakeRepo,
    project: Path,
    caplog: pytest.LogCaptureFixture,
    intruder: str,
    into: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    repo = make_repo()
    url = git_http_server.url(repo.name)
    token = git_http_server.token
    if into == "existing-clone":  # an old clone of the intruder's, from when it still had access
        git_clone(url, commit_sha=repo.shas[0], access_token=token, clone_directory_name="intruder")
    second = repo.commit({"second.txt": "2"})
    # The owner's clone puts the new commit into the worker's cache.
    git_clone(url, commit_sha=second, access_token=token, clone_directory_name="owner")
    caplog.clear()
    mark = git_http_server.mark()
    kwargs: dict[str, object] = {"access_token": WRONG} if intruder == "wrong-token" else {}
    with pytest.raises(GitError) as info:
        git_clone(url, commit_sha=second, clone_directory_name="intruder", **kwargs)  # type: ignore[arg-type]
    text = str(info.value)
    assert text.startswith(f"Failed to clone repository '{url}' with exit code 128: git said: ")
    assert (
        "(hint: authentication failed: the server refused the credentials given"
        if intruder == "wrong-token"
        else "(hint: authentication failed: this repository needs credentials"
    ) in text
    assert "git cache hit" not in caplog.text
    asked = git_http_server.since(mark)
    assert asked and all(r.get("status") == 401 for r in asked)  # the server was asked, and said no
    assert "fetch" not in _commands(asked)
    assert_nowhere(WRONG, text, caplog.text, repr(info.value.__context__))
    assert_nowhere(token, text, caplog.text)
    if into == "new-directory":
        assert not (project / "intruder").exists()
    else:
        assert head(project / "intruder") == repo.shas[0]  # left as it was


def test_the_right_token_is_served_from_the_cache(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    repo = make_repo()
    old = repo.shas[0]
    repo.commit({"later.txt": "l"})
    url = git_http_server.url(repo.name)
    token = git_http_server.token
    git_clone(url, access_token=token)  # fills the cache
    forget_proofs()  # as in a new worker process
    mark = git_http_server.mark()
    out = git_clone(url, commit_sha=old, access_token=token, clone_directory_name="pinned")
    assert head(project / out["directory"]) == old
    assert f"git cache hit: {old}" in caplog.text
    asked = git_http_server.since(mark)
    assert _commands(asked) == ["ls-refs"]  # one ref listed to prove the token, no pack sent
    assert all(r["authorization"] and r.get("style") for r in asked)
    # Proven a moment ago in this process: the next hit needs no network at all.
    mark = git_http_server.mark()
    git_clone(url, commit_sha=old, access_token=token, clone_directory_name="again")
    assert git_http_server.since(mark) == []


@pytest.mark.parametrize("caller", ["right-token", "no-token"])
def test_an_unreachable_server_never_opens_a_private_cache(
    git_http_server: GitHttpServer,
    make_repo: MakeRepo,
    project: Path,
    proxy_to: Callable[[int], FlakyProxy],
    caplog: pytest.LogCaptureFixture,
    caller: str,
) -> None:
    caplog.set_level(logging.INFO)
    repo = make_repo()
    proxy = proxy_to(git_http_server.port)
    url = f"https://127.0.0.1:{proxy.port}/{repo.name}.git"
    token = git_http_server.token
    git_clone(url, commit_sha=repo.shas[0], access_token=token, clone_directory_name="a")
    forget_proofs()
    proxy.close()  # the server is gone
    kwargs: dict[str, object] = {"access_token": token} if caller == "right-token" else {}
    with pytest.raises(GitError) as info:
        git_clone(url, commit_sha=repo.shas[0], clone_directory_name="b", **kwargs)  # type: ignore[arg-type]
    text = str(info.value)
    assert "host unreachable" in text
    assert "the cached copy of this repository is only used once the server accepts the credentials" in text
    assert "git cache hit" not in caplog.text
    assert not (project / "b").exists()
    assert_nowhere(token, text, caplog.text)


@pytest.mark.parametrize("server", ["git-daemon", "public-https"])
def test_a_public_repository_works_offline_from_the_cache(
    git_http_server: GitHttpServer,
    git_daemon: GitDaemon,
    make_repo: MakeRepo,
    project: Path,
    proxy_to: Callable[[int], FlakyProxy],
    caplog: pytest.LogCaptureFixture,
    server: str,
) -> None:
    caplog.set_level(logging.INFO)
    repo = make_repo(public=server == "public-https")
    if server == "git-daemon":
        proxy = proxy_to(git_daemon.port)
        url = f"git://127.0.0.1:{proxy.port}/{repo.name}.git"
    else:
        proxy = proxy_to(git_http_server.port)
        url = f"https://127.0.0.1:{proxy.port}/{repo.name}.git"
    git_clone(url, commit_sha=repo.shas[0], clone_directory_name="online")
    forget_proofs()
    proxy.close()
    out = git_clone(url, commit_sha=repo.shas[0], clone_directory_name="offline")
    assert head(project / out["directory"]) == repo.shas[0]
    assert "cannot be reached" in caplog.text
    assert f"git cache hit: {repo.shas[0]}" in caplog.text


def test_a_mirror_last_fetched_with_credentials_is_not_served_offline(
    git_http_server: GitHttpServer,
    make_repo: MakeRepo,
    project: Path,
    proxy_to: Callable[[int], FlakyProxy],
) -> None:
    # Public at first; then a caller with a token fetched through the same mirror (the repository may have
    # become private since): an anonymous caller must not get that offline.
    repo = make_repo(public=True)
    proxy = proxy_to(git_http_server.port)
    url = f"https://127.0.0.1:{proxy.port}/{repo.name}.git"
    git_clone(url, commit_sha=repo.shas[0], clone_directory_name="anon")
    second = repo.commit({"second.txt": "2"})
    git_clone(url, commit_sha=second, access_token=git_http_server.token, clone_directory_name="owner")
    forget_proofs()
    proxy.close()
    with pytest.raises(GitError, match="host unreachable"):
        git_clone(url, commit_sha=second, clone_directory_name="anon-offline")


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_a_local_repository_works_offline_from_the_cache(
    make_repo: MakeRepo, project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, form: str
) -> None:
    caplog.set_level(logging.INFO)
    repo = make_repo()
    url = str(repo.bare) if form == "path" else repo.bare.as_uri()
    git_clone(url, commit_sha=repo.shas[0], clone_directory_name="online")
    assert mirror_path(url).exists()
    forget_proofs()
    # Readable: served from the cache without the network.
    out = git_clone(url, commit_sha=repo.shas[0], clone_directory_name="again")
    assert head(project / out["directory"]) == repo.shas[0]
    # Gone (an unmounted disk): still served from the cache.
    shutil.move(repo.bare, tmp_path / "moved.git")
    out = git_clone(url, commit_sha=repo.shas[0], clone_directory_name="offline")
    assert head(project / out["directory"]) == repo.shas[0]
    assert "is not there" in caplog.text


def test_an_unreadable_local_repository_is_not_served_from_the_cache(
    make_repo: MakeRepo, project: Path, tmp_path: Path
) -> None:
    repo = make_repo()
    url = str(repo.bare)
    git_clone(url, commit_sha=repo.shas[0], clone_directory_name="online")
    # A path the caller cannot read through (root can read anything, but not through a file).
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    shutil.move(repo.bare, tmp_path / "moved.git")
    repo.bare.parent.joinpath(repo.bare.name).symlink_to(blocker / "x")
    with pytest.raises(GitError, match="cannot read"):
        git_clone(url, commit_sha=repo.shas[0], clone_directory_name="offline")


@pytest.mark.parametrize("caller", ["wrong-token", "no-token", "right-token"])
def test_steps_run_pull_checks_the_token_before_a_cache_hit(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path, cli: type[CliRunner], caller: str
) -> None:
    repo = make_repo()
    url = git_http_server.url(repo.name, "gitlab.localhost")
    token = git_http_server.token
    git_clone(url, commit_sha=repo.shas[-1], access_token=token, clone_directory_name="owner")
    (project / "prefect.yaml").write_text(
        "name: demo\n"
        "prefect-version: 3.0.0\n"
        "pull:\n"
        "  - prefect.deployments.steps.git_clone:\n"
        f"      repository: {url}\n"
        f"      commit_sha: {repo.shas[-1]}\n"
        "      clone_directory_name: mine\n"
        + ('      access_token: "{{ $FD_TEST_TOKEN }}"\n' if caller != "no-token" else "")
    )
    given = {"wrong-token": WRONG, "right-token": token, "no-token": ""}[caller]
    result = cli.run("steps", "run", "pull", cwd=project, env={"FD_TEST_TOKEN": given}, timeout=120)
    assert_nowhere(token, result.output)
    assert_nowhere(WRONG, result.output)
    if caller == "right-token":
        assert result.code == 0, result.output
        assert f"git cache hit: {repo.shas[-1]}" in result.output
        assert head(project / "mine") == repo.shas[-1]
        return
    assert result.code == 1, result.output
    assert "error: prefect.yaml:4:5: pull[0] git_clone failed: Failed to clone repository" in result.stderr
    assert "authentication failed" in result.stderr
    assert "git cache hit" not in result.output
    assert "Traceback" not in result.output
    assert not (project / "mine").exists()
