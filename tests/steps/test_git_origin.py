"""point_origin: a new clone of the git cache points at the real repository, exactly as git would write it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flowdeck.gitrun import GitCommandError
from flowdeck.steps.gitmirror import local_clone, point_origin


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    _git("init", "-q", "-b", "main", str(src))
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x", cwd=src)
    _git("clone", "-q", "--bare", str(src), str(tmp_path / "m.git"))
    return tmp_path / "m.git"


@pytest.mark.parametrize("url", [
    "https://git.example.com/org/repo.git",
    "git://127.0.0.1:9418/project.git",
    "git@github.com:org/repo.git",
    '/srv/we#ird;dir "quoted" \\back\\slash/repo',
    "https://exämple.com/ünïcode repo.git",
])
def test_the_clone_points_at_the_real_repository(mirror: Path, tmp_path: Path, url: str) -> None:
    clone = tmp_path / "clone"
    local_clone(mirror, clone, checkout=True)
    point_origin(clone, url)
    assert _git("config", "--get-all", "remote.origin.url", cwd=clone).rstrip("\n") == url
    assert str(mirror) not in (clone / ".git" / "config").read_text()
    assert _git("status", "--porcelain", cwd=clone) == ""  # the rest of the config still parses


def test_an_unusual_config_goes_through_git(mirror: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    local_clone(mirror, clone)
    _git("config", "--add", "remote.origin.url", "https://second.example/repo.git", cwd=clone)
    with pytest.raises(GitCommandError):  # two urls: git refuses to guess which to replace, and so do we
        point_origin(clone, "https://real.example/repo.git")
    clone2 = tmp_path / "clone2"
    local_clone(mirror, clone2)
    point_origin(clone2, "/srv/line\nbreak")  # a control character: written by git itself
    assert _git("config", "--get", "remote.origin.url", cwd=clone2) == "/srv/line\nbreak\n"
