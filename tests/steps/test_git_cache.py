"""The worker cache: one bare mirror per URL, incremental fetches, no network for cached pins, robustness."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowdeck.gitcache import mirror_path
from flowdeck.paths import cache_dir
from flowdeck.steps.git import git_clone
from tests.servers.git import GitHttpServer, RepoBuilder
from tests.servers.process import unavailable
from tests.steps.gitutil import git_out, head, start_worker

MakeRepo = Callable[..., RepoBuilder]


def _commands(records: list[dict[str, object]]) -> list[object]:
    return [r["command"] for r in records if r["method"] == "POST"]


def test_a_second_clone_only_asks_what_changed(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path
) -> None:
    repo = make_repo()
    url = git_http_server.url(repo.name)
    token = git_http_server.token
    git_clone(url, branch="main", access_token=token, clone_directory_name="first")
    mark = git_http_server.mark()
    git_clone(url, branch="main", access_token=token, clone_directory_name="second")
    assert head(project / "second") == repo.shas[-1]
    assert _commands(git_http_server.since(mark)) == ["ls-refs"]  # no pack was sent
    new = repo.commit({"new.txt": "n"})
    mark = git_http_server.mark()
    git_clone(url, branch="main", access_token=token, clone_directory_name="third")
    assert head(project / "third") == new
    assert _commands(git_http_server.since(mark)) == ["ls-refs", "fetch"]
    # The clone points at the real repository, not at the cache.
    assert git_out(project / "third", "config", "--get", "remote.origin.url") == url
    assert git_out(project / "third", "rev-parse", "--is-shallow-repository") == "false"


def test_a_cached_pinned_commit_needs_no_network(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path
) -> None:
    repo = make_repo()
    old = repo.shas[0]
    repo.commit({"later.txt": "l"})
    url = git_http_server.url(repo.name)
    git_clone(url, access_token=git_http_server.token)  # fills the cache, and proves the token to it
    mark = git_http_server.mark()
    # Within gitcache.PROOF_TTL of that proof; test_git_cache_access covers the check made after it.
    out = git_clone(url, commit_sha=old, access_token=git_http_server.token, clone_directory_name="pinned")
    assert head(project / out["directory"]) == old
    assert git_http_server.since(mark) == []


def test_a_commit_on_no_branch_is_fetched_by_sha_and_kept(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path
) -> None:
    repo = make_repo()
    url = git_http_server.url(repo.name)
    git_clone(url, access_token=git_http_server.token)
    repo.branch("tmp")
    orphan = repo.commit({"orphan.txt": "o"})
    repo.git("push", "--quiet", str(repo.bare), "--delete", "tmp")  # reachable only by sha now
    out = git_clone(url, commit_sha=orphan, access_token=git_http_server.token, clone_directory_name="o")
    assert head(project / out["directory"]) == orphan
    mirror = mirror_path(url)
    assert git_out(mirror, "rev-parse", f"refs/flowdeck/pins/{orphan}") == orphan


@pytest.mark.parametrize("how", ["argument", "env"])
def test_the_cache_can_be_turned_off(
    git_http_server: GitHttpServer,
    make_repo: MakeRepo,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    repo = make_repo()
    if how == "env":
        monkeypatch.setenv("FLOWDECK_NO_CACHE", "1")
    out = git_clone(
        git_http_server.url(repo.name), access_token=git_http_server.token, cache=how != "argument"
    )
    assert head(project / out["directory"]) == repo.shas[-1]
    assert not (cache_dir() / "git").exists()


def test_leftovers_of_an_interrupted_fetch_are_cleaned(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path
) -> None:
    repo = make_repo()
    url = git_http_server.url(repo.name)
    git_clone(url, access_token=git_http_server.token, clone_directory_name="a")
    mirror = mirror_path(url)
    # What a git killed in the middle of a fetch leaves behind.
    (mirror / "refs" / "heads" / "main.lock").write_text("0" * 40)
    (mirror / "packed-refs.lock").write_text("")
    (mirror / "objects" / "pack" / "tmp_pack_XXXX").write_bytes(b"PACK partial")
    half = mirror.with_name(mirror.name + ".tmp-dead")
    (half / "objects").mkdir(parents=True)
    new = repo.commit({"new.txt": "n"})
    out = git_clone(url, access_token=git_http_server.token, clone_directory_name="b")
    assert head(project / out["directory"]) == new
    assert not (mirror / "refs" / "heads" / "main.lock").exists()
    assert not half.exists()
    assert git_out(mirror, "fsck", "--connectivity-only") == ""


def test_a_damaged_mirror_is_rebuilt(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path
) -> None:
    repo = make_repo()
    url = git_http_server.url(repo.name)
    git_clone(url, access_token=git_http_server.token, clone_directory_name="a")
    mirror = mirror_path(url)
    (mirror / "HEAD").write_text("garbage\n")
    out = git_clone(url, access_token=git_http_server.token, clone_directory_name="b")
    assert head(project / out["directory"]) == repo.shas[-1]


def test_a_worker_killed_mid_clone_leaves_a_usable_cache(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path
) -> None:
    files: dict[str, str | None] = {f"d/f{i:03}.txt": os.urandom(32 * 1024).hex() for i in range(200)}
    repo = make_repo(files)
    url = git_http_server.url(repo.name)
    for delay in (0.3, 0.6):
        worker = start_worker(
            project, {"repository": url, "clone_directory_name": "killed"}, git_http_server.token
        )
        time.sleep(delay)
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its git children, mid-transfer if unlucky
        worker.communicate(timeout=30)
    out = git_clone(url, access_token=git_http_server.token, clone_directory_name="after")
    assert head(project / out["directory"]) == repo.shas[-1]
    assert git_out(mirror_path(url), "fsck", "--connectivity-only") == ""
    # The killed clone's directory, if it got that far, is a complete clone or absent - never half-written;
    # running the step again there completes it and removes the temporary clone of the killed run.
    if (project / "killed").exists():
        assert head(project / "killed") == repo.shas[-1]
    git_clone(url, access_token=git_http_server.token, clone_directory_name="killed")
    assert head(project / "killed") == repo.shas[-1]
    assert sorted(p.name for p in project.iterdir()) == ["after", "after.lock", "killed", "killed.lock"]


def test_concurrent_workers_share_one_mirror(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path
) -> None:
    repo = make_repo()
    url = git_http_server.url(repo.name)
    workers = [
        start_worker(project, {"repository": url, "clone_directory_name": f"w{i}"}, git_http_server.token)
        for i in range(4)
    ]
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr
        name = json.loads(stdout)["directory"]
        assert head(project / name) == repo.shas[-1]
    assert [p.name for p in (cache_dir() / "git").glob("*.git")] == [mirror_path(url).name]


def test_a_renamed_default_branch_is_followed(
    git_http_server: GitHttpServer, make_repo: MakeRepo, project: Path
) -> None:
    repo = make_repo()
    url = git_http_server.url(repo.name)
    git_clone(url, access_token=git_http_server.token, clone_directory_name="a")
    repo.branch("trunk")
    trunk = repo.commit({"trunk.txt": "t"})
    subprocess.run(["git", "symbolic-ref", "HEAD", "refs/heads/trunk"], cwd=repo.bare, check=True)
    repo.git("push", "--quiet", str(repo.bare), "--delete", "main")
    out = git_clone(url, access_token=git_http_server.token, clone_directory_name="b")
    assert head(project / out["directory"]) == trunk
    assert git_out(project / out["directory"], "branch", "--show-current") == "trunk"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real tmpfs (another filesystem than the cache's), mounted for the test and unmounted after it."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        unavailable("mounting a tmpfs", f"run the tests as root: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], capture_output=True, check=False)


@pytest.mark.parametrize("where", ["workdir", "cache"])
def test_the_cache_works_across_filesystems(
    git_http_server: GitHttpServer,
    make_repo: MakeRepo,
    project: Path,
    tmpfs: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    repo = make_repo()
    url = git_http_server.url(repo.name)
    if where == "workdir":  # TMPDIR-style: the flow's working directory on a tmpfs, the cache on disk
        workdir = tmpfs / "work"
        workdir.mkdir()
        monkeypatch.chdir(workdir)
    else:
        workdir = project
        monkeypatch.setenv("FLOWDECK_CACHE_DIR", str(tmpfs / "cache"))
    token = git_http_server.token
    out = git_clone(url, access_token=token, clone_directory_name="a")
    assert head(workdir / out["directory"]) == repo.shas[-1]
    out = git_clone(url, commit_sha=repo.shas[0], access_token=token, clone_directory_name="b")
    assert head(workdir / out["directory"]) == repo.shas[0]
    assert os.stat(workdir / "a").st_dev != os.stat(mirror_path(url)).st_dev
    assert git_out(workdir / "a", "fsck", "--connectivity-only") == ""
