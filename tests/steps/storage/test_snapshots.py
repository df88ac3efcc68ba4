"""Snapshots, on every store: exact round trips, incremental packs, pinned pulls, rollback, corruption, gc."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest

from flowdeck.errors import StorageError
from flowdeck.snapshot import writer
from flowdeck.snapshot.pin import pinned_snapshots
from flowdeck.steps.storage import manifest
from tests.conftest import write_tree
from tests.steps.storage.conftest import Store

TREE: dict[str, str | bytes] = {
    "flow.py": "print('v1')\n",
    "empty.txt": "",
    "pkg/__init__.py": "",
    "dir one/ünï cødé file+%.txt": "unicode\n",
    "scripts/run.sh": "#!/bin/sh\necho run\n",
    "data/blob.bin": os.urandom(3 * 1024 * 1024 + 17),  # several 1 MiB frames
    "data/same.bin": b"duplicate content\n",
    "data/copy.bin": b"duplicate content\n",
    "skip.pyc": b"compiled",
    ".prefectignore": "*.pyc\n",
}


def _project(root: Path) -> Path:
    write_tree(root, TREE)
    os.chmod(root / "scripts/run.sh", 0o755)
    os.symlink("flow.py", root / "link.py")  # a file symlink is pushed as the file it points to
    return root


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode & 0o777)
        for p in root.rglob("*")
        if p.is_file() and p.name != ".flowdeck-pull.json"
    }


def _expected(src: Path) -> dict[str, tuple[bytes, int]]:
    return {k: v for k, v in _files(src).items() if not k.endswith(".pyc")}


def _location(store: Store, folder: str = "flows") -> str:
    scheme = {"azurite": "az", "fake-gcs": "gs"}.get(store.kind, "s3")
    return f"{scheme}://{store.name}/{folder}/"


def _pin(store: Store, sid: str, version: str = "etl/prod version 1") -> Any:
    return pinned_snapshots([{"location": _location(store), "id": sid}], version)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="flowdeck")
    return caplog


def _last(logs: pytest.LogCaptureFixture, start: str) -> str:
    return [r.getMessage() for r in logs.records if r.getMessage().startswith(start)][-1]


@pytest.mark.parametrize("settled", [False, True], ids=["fresh-files", "settled-files"])
def test_snapshot_only_push_round_trips_exactly(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settled: bool
) -> None:
    src = _project(tmp_path / "src")
    monkeypatch.chdir(src)
    built: list[object] = []
    if settled:
        # As if the files were older than the racy window: their stamps are trusted, so on S3 every pack is
        # streamed from the files (flowdeck/snapshot/packbody.py) instead of a temporary file.
        monkeypatch.setattr(manifest, "_RACY_NS", -(10**12))
        real = writer._build_pack
        monkeypatch.setattr(writer, "_build_pack", lambda *a: built.append(a) or real(*a))
    out = store.push(plain_layout=False)
    assert not built or store.kind in {"azurite", "fake-gcs"}
    sid = out["snapshot"]
    keys = store.keys("")
    assert not [k for k in keys if k.startswith("flows/")]  # no per-file layout at all
    packs = [k for k in keys if k.endswith(".pack")]
    assert 1 <= len(packs) <= 4  # a few packs, not one object per file
    assert f".flowdeck-snapshots/flows/snapshots/{sid}.json" in keys

    dest = tmp_path / "dest"
    dest.mkdir()
    monkeypatch.chdir(dest)
    store.pull()  # not pinned: HEAD names the snapshot, since the push wrote no plain layout
    assert _files(dest) == _expected(src)
    assert (dest / "link.py").read_bytes() == b"print('v1')\n" and not (dest / "link.py").is_symlink()
    assert (dest / "scripts/run.sh").stat().st_mode & 0o777 == 0o755
    assert not [p for p in dest.iterdir() if p.name.startswith(".flowdeck-pull-")]


def test_redeploy_uploads_about_the_changed_file_and_a_warm_pull_downloads_about_it(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    src = _project(tmp_path / "src")
    monkeypatch.chdir(src)
    first = store.push()["snapshot"]
    packs_before = {k for k in store.keys("") if k.endswith(".pack")}
    (src / "flow.py").write_text("print('v2')\n")
    second = store.push()["snapshot"]
    assert second != first
    new_packs = {k for k in store.keys("") if k.endswith(".pack")} - packs_before
    assert len(new_packs) == 1
    assert len(store.raw_get(new_packs.pop())) < 100  # one small frame: that file, not the tree
    assert "1 packs uploaded" in _last(logs, "snapshot " + second[:12])

    dest = tmp_path / "dest"
    dest.mkdir()
    monkeypatch.chdir(dest)
    with _pin(store, first):
        store.pull()
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    with _pin(store, second):
        store.pull()  # warm cache: only flow.py's new content is downloaded
    line = _last(logs, "pulled")
    assert re.search(r": 2 downloaded \(\d+ B\)", line), line  # flow.py and link.py share that content
    assert _files(other) == _expected(src)


def test_a_pinned_pull_restores_the_first_version_after_a_second_push(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _project(tmp_path / "src")
    monkeypatch.chdir(src)
    first = store.push()["snapshot"]
    v1 = _expected(src)
    (src / "flow.py").write_text("print('v2')\n")
    (src / "pkg/__init__.py").unlink()
    store.push(prune=True)  # the plain layout now holds v2 only
    dest = tmp_path / "dest"
    dest.mkdir()
    monkeypatch.chdir(dest)
    store.pull()
    assert (dest / "flow.py").read_text() == "print('v2')\n"
    with _pin(store, first):
        store.pull()
    assert _files(dest) == v1


def test_a_truncated_or_altered_pack_fails_the_pull_and_keeps_the_directory(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _project(tmp_path / "src")
    monkeypatch.chdir(src)
    sid = store.push(plain_layout=False)["snapshot"]
    pack = max((k for k in store.keys("") if k.endswith(".pack")), key=lambda k: len(store.raw_get(k)))
    good = store.raw_get(pack)
    dest = tmp_path / "dest"
    write_tree(dest, {"mine.txt": "keep\n"})
    monkeypatch.chdir(dest)
    monkeypatch.setenv("FLOWDECK_NO_CACHE", "1")
    for damaged in (good[: len(good) // 2], good[:100] + bytes([good[100] ^ 0xFF]) + good[101:]):
        store.raw_put(pack, damaged)
        with _pin(store, sid), pytest.raises(StorageError) as info:
            store.pull()
        message = str(info.value)
        assert message.startswith(f"etl/prod version 1: snapshot {sid[:12]}…"), message
        assert "corrupt" in message and "flowdeck deploy" in message
        assert sorted(p.name for p in dest.iterdir()) == ["mine.txt"]
    store.raw_put(pack, good)
    with _pin(store, sid):
        store.pull()
    assert {k: v for k, v in _files(dest).items() if k != "mine.txt"} == _expected(src)


def test_a_missing_snapshot_names_the_version_and_what_to_do(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(tmp_path / "src", {"a.py": "a\n"})
    monkeypatch.chdir(tmp_path / "src")
    store.push()
    missing = "ab" * 32
    dest = tmp_path / "dest"
    write_tree(dest, {"a.py": "local\n"})
    monkeypatch.chdir(dest)
    with _pin(store, missing, "etl/prod version 7"), pytest.raises(StorageError) as info:
        store.pull()
    assert str(info.value) == (
        f"etl/prod version 7: snapshot {missing[:12]}…: the snapshot "
        f"{_location(store).replace('/flows/', '/.flowdeck-snapshots/flows/')}snapshots/{missing}.json does not exist "
        "(hint: deploy the code again with `flowdeck deploy` (or roll back to another version); "
        "`flowdeck snapshot ls` shows the snapshots the store holds)"
    )
    assert (dest / "a.py").read_text() == "local\n"


def test_the_snapshot_manifest_is_written_last(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A push that dies after its packs leaves no manifest: nothing can name an incomplete snapshot.
    import flowdeck.snapshot.writer as writer

    src = _project(tmp_path / "src")
    monkeypatch.chdir(src)
    written: list[str] = []
    real = writer.SnapshotManifest.to_bytes

    def dying(self: Any) -> bytes:
        written.extend(store.keys(""))
        raise StorageError("the server went away")

    monkeypatch.setattr(writer.SnapshotManifest, "to_bytes", dying)
    with pytest.raises(StorageError):
        store.push(plain_layout=False)
    assert [k for k in written if k.endswith(".pack")]
    assert not [k for k in store.keys("") if "/snapshots/" in k or k.endswith("HEAD")]
    monkeypatch.setattr(writer.SnapshotManifest, "to_bytes", real)
    store.push(plain_layout=False)  # the re-run reuses the packs already uploaded
    assert len([k for k in store.keys("") if k.endswith(".pack")]) == len([k for k in written if k.endswith(".pack")])
    _ = json


def test_a_damaged_cached_pack_is_downloaded_again(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowdeck.paths import cache_dir

    src = _project(tmp_path / "src")
    monkeypatch.chdir(src)
    sid = store.push(plain_layout=False)["snapshot"]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        with _pin(store, sid):
            store.pull()
        if name == "b":
            break
        # Packs of many small files are cached whole; large files, streamed, are cached file by file.
        cached = [p for p in (cache_dir() / "storage").glob("*/**/*") if p.is_file() and "packidx" not in p.parts]
        assert cached
        for path in cached:
            path.unlink()  # a new inode: the files pulled into a/ (hard links) stay as they are
            path.write_bytes(b"garbage")
    assert _files(tmp_path / "b") == _expected(src)
