"""A pull never writes outside its destination, and a pull that is killed (while downloading, or in the middle
of its swap) is cleaned up or finished by the next pull of that directory, never while it is still alive."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flowdeck.errors import StorageError
from flowdeck.steps.storage import staging
from flowdeck.steps.storage.destfs import replace_into, unlink_from
from tests.conftest import REPO_ROOT, write_tree
from tests.steps.storage.conftest import Store


def _files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".flowdeck-pull")
    }


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".flowdeck-pull-"))


# --- symlinks in the destination -----------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX has the *at() calls")
def test_directories_are_walked_by_descriptor_on_posix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The path-checking fallback is for platforms without openat/renameat: it checks, then writes by path,
    # so a link swapped in between would be followed. It once ran on Linux too (os.replace is never listed
    # in os.supports_dir_fd); a link that appears after the walk started must not matter.
    from flowdeck.steps.storage import destfs

    assert destfs._AT
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    (target / "pkg").mkdir(parents=True)
    source = tmp_path / "new.py"
    source.write_text("pulled")
    real_open = os.open

    def swap_then_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # Between opening the destination and walking into pkg/, pkg becomes a link leading outside.
        if path == "pkg" and kwargs.get("dir_fd") is not None and not (target / "pkg").is_symlink():
            (target / "pkg").rmdir()
            (target / "pkg").symlink_to(outside)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(destfs.os, "open", swap_then_open)
    with pytest.raises(StorageError, match="symlink leading outside"):
        replace_into(target, "pkg/new.py", source)
    assert list(outside.iterdir()) == []


def test_a_symlinked_directory_leading_outside_is_never_written_through(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dest, outside = tmp_path / "src", tmp_path / "dest", tmp_path / "outside"
    write_tree(src, {"flow.py": "ok\n", "link/sub/evil.py": "evil\n"})
    dest.mkdir()
    outside.mkdir()
    (dest / "link").symlink_to(outside)
    monkeypatch.chdir(src)
    store.push()
    monkeypatch.chdir(dest)
    with pytest.raises(StorageError) as info:
        store.pull()
    assert info.value.message == (
        f"cannot pull 'link/sub/evil.py': link is a symlink leading outside {dest}"
    )
    assert list(outside.iterdir()) == []
    assert _leftovers(dest) == []


def test_a_file_symlink_leading_outside_is_replaced_not_written_through(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dest, outside = tmp_path / "src", tmp_path / "dest", tmp_path / "outside.txt"
    write_tree(src, {"config.py": "pulled\n"})
    dest.mkdir()
    outside.write_text("precious\n")
    (dest / "config.py").symlink_to(outside)
    monkeypatch.chdir(src)
    store.push()
    monkeypatch.chdir(dest)
    store.pull()
    assert outside.read_text() == "precious\n"
    assert not (dest / "config.py").is_symlink()
    assert (dest / "config.py").read_text() == "pulled\n"


def test_a_symlinked_directory_inside_the_destination_is_followed(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    write_tree(src, {"lib/new/mod.py": "x = 1\n"})
    (dest / "real_lib").mkdir(parents=True)
    (dest / "lib").symlink_to("real_lib")
    monkeypatch.chdir(src)
    store.push()
    monkeypatch.chdir(dest)
    store.pull()
    assert (dest / "real_lib/new/mod.py").read_text() == "x = 1\n"


def test_the_swap_checks_each_directory_as_it_writes(tmp_path: Path) -> None:
    # The pre-check could be raced (a link swapped in after it): the swap itself walks with O_NOFOLLOW.
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "a").mkdir()
    (dest / "a" / "link").symlink_to(outside)
    (outside / "victim.txt").write_text("precious\n")
    staged = tmp_path / "staged"
    staged.write_text("evil\n")
    with pytest.raises(StorageError, match=r"a/link is a symlink leading outside"):
        replace_into(dest, "a/link/new/file.py", staged)
    with pytest.raises(StorageError, match=r"a/link is a symlink leading outside"):
        unlink_from(dest, "a/link/victim.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    (dest / "file").write_text("")
    with pytest.raises(StorageError, match=r"file is a file in .*, where the tree has a directory"):
        replace_into(dest, "file/x.py", staged)


# --- pulls that are killed -------------------------------------------------------------------------------

DRIVER = """
import json, sys
from flowdeck.steps.storage import s3
args = json.loads(sys.argv[1])
s3.pull_from_s3(args["bucket"], "flows", args["credentials"], args["client_parameters"])
"""


def _start_pull(store: Store, dest: Path, pause: str | None = None) -> subprocess.Popen[str]:
    args = {"bucket": store.name, **store.step_args}
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if pause is not None:
        env[staging.PAUSE_ENV] = pause
    return subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(args)], cwd=dest, env=env,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(marker: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the pull ended before the pause: {proc.stderr.read() if proc.stderr else ''}")
        assert time.monotonic() < deadline, "the pull never reached its pause"
        time.sleep(0.05)


def _kill(proc: subprocess.Popen[Any]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


V1 = {f"mod{i}.py": f"v1 {i}\n" for i in range(8)}
V2 = {**{f"mod{i}.py": f"v2 {i}\n" for i in range(8)}, "added_in_v2.py": "new\n", "pkg/new.py": "new\n"}


@pytest.fixture
def s3_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    """Killing a pull is about the local directory: one backend (moto) is enough."""
    from tests.steps.storage.conftest import _s3_store

    return _s3_store(request.getfixturevalue("moto_server"), "moto")


def _push(store: Store, root: Path, files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for path in list(root.rglob("*")) if root.exists() else []:
        if path.is_file():
            path.unlink()
    write_tree(root, dict(files))
    monkeypatch.chdir(root)
    store.push(prune=True)


def test_the_next_pull_removes_the_staging_directory_of_a_killed_pull(
    s3_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    dest.mkdir()
    _push(s3_store, src, V1, monkeypatch)
    # What a pull killed while downloading leaves: a staging directory with some files and no journal.
    write_tree(dest, {".flowdeck-pull-dead1234/files/mod0.py": "half", ".flowdeck-pull-record-x1": "{"})
    monkeypatch.chdir(dest)
    s3_store.pull()
    assert _leftovers(dest) == []
    assert _files(dest) == _files(src)


def test_a_live_pulls_staging_directory_is_never_removed(
    s3_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    dest.mkdir()
    _push(s3_store, src, V1, monkeypatch)
    marker = tmp_path / "paused"
    live = _start_pull(s3_store, dest, pause=f"0:{marker}")
    try:
        _wait_for(marker, live)
        live_staging = _leftovers(dest)
        assert len(live_staging) == 2  # its lock and its staging directory
        monkeypatch.setattr(staging, "LOCK_WAIT", 0.5)
        monkeypatch.chdir(dest)
        with pytest.raises(StorageError, match=r"another pull of .* has been running for more than 0.5s"):
            s3_store.pull()
        assert _leftovers(dest) == live_staging
    finally:
        _kill(live)
    # Killed before moving anything in, after its journal: the next pull finishes it, then pulls.
    s3_store.pull()
    assert _leftovers(dest) == []
    assert _files(dest) == _files(src)


def test_a_pull_killed_during_its_swap_never_leaves_a_mix_behind(
    s3_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    dest.mkdir()
    _push(s3_store, src, V1, monkeypatch)
    monkeypatch.chdir(dest)
    s3_store.pull()
    v1_files = _files(dest)

    # v2 changes every file and adds two; the pull is killed after moving three of them in.
    _push(s3_store, src, V2, monkeypatch)
    marker = tmp_path / "paused"
    proc = _start_pull(s3_store, dest, pause=f"3:{marker}")
    try:
        _wait_for(marker, proc)
    finally:
        _kill(proc)

    # The deployment is rolled back to v1 and pulled again: exactly v1, no file of v2 left among it.
    _push(s3_store, src, V1, monkeypatch)
    monkeypatch.chdir(dest)
    s3_store.pull()
    assert _files(dest) == v1_files
    assert _leftovers(dest) == []
