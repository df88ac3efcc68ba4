"""flowdeck.locks: the flock the worker's hot path takes (git clones, the git cache, pull destinations)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from flowdeck.locks import LockTimeout, held

HOLD = """
import sys, time
from flowdeck.locks import held
with held(sys.argv[1], wait=5):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_another_process_waits_for_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    proc = _holder(lock, 0.5)
    waited: list[bool] = []
    started = time.monotonic()
    with held(lock, wait=30, on_wait=lambda: waited.append(True)):
        assert time.monotonic() - started > 0.2  # it waited for the holder, not a wall-time bound
    assert waited == [True]
    proc.wait()


def test_a_lock_held_too_long_raises(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    proc = _holder(lock, 30)
    try:
        with pytest.raises(LockTimeout), held(lock, wait=0.2):
            pass
    finally:
        proc.kill()
        proc.wait()
    with held(lock, wait=1):  # the kernel released it with the process
        pass


def test_remove_deletes_the_file_and_keep_leaves_it(tmp_path: Path) -> None:
    with held(tmp_path / "a.lock", wait=1, remove=True):
        assert (tmp_path / "a.lock").exists()
    assert not (tmp_path / "a.lock").exists()
    with held(tmp_path / "b.lock", wait=1):
        pass
    assert (tmp_path / "b.lock").exists()


def test_filelock_holders_and_flowdeck_exclude_each_other(tmp_path: Path) -> None:
    # Prefect's own steps lock `<dir>.lock` with filelock: the same flock.
    lock = tmp_path / "dest.lock"
    with FileLock(str(lock)), pytest.raises(LockTimeout), held(lock, wait=0.1):
        pass


def test_never_follows_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "x.lock").symlink_to(target)
    with pytest.raises(OSError), held(tmp_path / "x.lock", wait=0.1):
        pass
    assert target.read_text() == "keep"



def test_callers_turn_only_their_own_lock_timeout_into_their_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A timeout raised by the work done under the lock (another lock, say a submodule's mirror) is not
    # reported as this lock's; a timeout taking this lock is.
    from flowdeck import gitcache
    from flowdeck.errors import GitError, StorageError
    from flowdeck.steps.storage.staging import LOCK_NAME, locked_destination

    inner = LockTimeout("another lock")
    with pytest.raises(LockTimeout) as caught, locked_destination(tmp_path):
        raise inner
    assert caught.value is inner
    url, cache = "git://127.0.0.1/x.git", tmp_path / "cache"
    with pytest.raises(LockTimeout) as caught, gitcache.locked_mirror(url, cache):
        raise inner
    assert caught.value is inner

    holder = _holder(tmp_path / LOCK_NAME, 3)
    try:
        with pytest.raises(StorageError, match="another pull"), locked_destination(tmp_path, wait=0.2):
            pass
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.setattr(gitcache, "LOCK_TIMEOUT", 0.2)
    holder = _holder(Path(str(gitcache.mirror_path(url, cache)) + ".lock"), 3)
    try:
        with pytest.raises(GitError, match="in use by another process"), gitcache.locked_mirror(url, cache):
            pass
    finally:
        holder.kill()
        holder.wait()
