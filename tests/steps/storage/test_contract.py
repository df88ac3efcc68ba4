"""The storage contract: the same behaviour on S3 (moto, SeaweedFS), Azure (Azurite) and GCS (fake-gcs)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from flowdeck.errors import StorageError
from flowdeck.steps.storage.manifest import MANIFEST_NAME, Manifest
from tests.conftest import write_tree
from tests.steps.storage.conftest import Store

TREE: dict[str, str | bytes] = {
    "flow.py": "print('hello')\n",
    "pkg/__init__.py": "",
    "pkg/deep/mod.py": "X = 1\n",
    "dir one/ünï cødé file+%.txt": "unicode\n",
    "scripts/run.sh": "#!/bin/sh\necho run\n",
    "data/blob.bin": bytes(range(256)) * 64,
    "pkg/mod.pyc": b"compiled",
    ".venv/lib/site.py": "venv\n",
    ".prefectignore": "*.pyc\n.venv/\n",
}
PUSHED = [
    "dir one/ünï cødé file+%.txt",
    "flow.py",
    "pkg/__init__.py",
    "pkg/deep/mod.py",
    "scripts/run.sh",
    "data/blob.bin",
    ".prefectignore",
]


def _project(root: Path) -> Path:
    write_tree(root, TREE)
    os.chmod(root / "scripts/run.sh", 0o755)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name != ".flowdeck-pull.json"
    }


def _summary(caplog: pytest.LogCaptureFixture, verb: str) -> dict[str, int]:
    """Parse the last summary line of a push or pull."""
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith(verb)][-1]
    return {
        name: int(n)
        for n, name in re.findall(
            r"(\d+) (uploaded|downloaded|from cache|unchanged|removed|"
            r"deleted|unchanged skipped)",
            line,
        )
    }


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="flowdeck")
    return caplog


def test_round_trip_keeps_content_names_and_exec_bits(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _project(tmp_path / "src")
    monkeypatch.chdir(src)
    out = store.push()
    assert out == {store.name_arg: store.name, "folder": "flows", "snapshot": out["snapshot"]}
    assert re.fullmatch(r"[0-9a-f]{64}", out["snapshot"])
    # The folder holds exactly the plain layout; the snapshot lives beside it, out of Prefect's pulls' way.
    assert store.keys("flows") == sorted(["flows/" + p for p in PUSHED] + ["flows/" + MANIFEST_NAME])
    assert f".flowdeck-snapshots/flows/snapshots/{out['snapshot']}.json" in store.keys("")

    dest = tmp_path / "dest"
    dest.mkdir()
    monkeypatch.chdir(dest)
    out = store.pull()
    assert out == {store.name_arg: store.name, "folder": "flows", "directory": str(dest)}
    assert _files(dest) == {p: (src / p).read_bytes() for p in PUSHED}
    assert os.stat(dest / "scripts/run.sh").st_mode & 0o777 == 0o755
    assert os.stat(dest / "flow.py").st_mode & 0o111 == 0
    assert not [p for p in dest.iterdir() if p.name.startswith(".flowdeck-pull-")]  # staging cleaned up


def test_push_is_incremental_and_pull_reuses_the_cache(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    src = _project(tmp_path / "src")
    monkeypatch.chdir(src)
    store.push()
    assert _summary(logs, "pushed")["uploaded"] == len(PUSHED)
    store.push()
    assert _summary(logs, "pushed")["uploaded"] == 0
    (src / "flow.py").write_text("print('changed')\n")
    store.push()
    assert _summary(logs, "pushed")["uploaded"] == 1

    first = tmp_path / "first"
    first.mkdir()
    monkeypatch.chdir(first)
    store.pull()
    assert _summary(logs, "pulled")["downloaded"] == len(PUSHED)
    store.pull()  # same directory, unchanged tree: nothing fetched, nothing copied
    assert _summary(logs, "pulled") == {
        "downloaded": 0,
        "from cache": 0,
        "unchanged": len(PUSHED),
        "removed": 0,
    }
    second = tmp_path / "second"
    second.mkdir()
    monkeypatch.chdir(second)
    store.pull()  # a new directory on the same worker: everything from the cache
    assert _summary(logs, "pulled")["downloaded"] == 0
    assert _summary(logs, "pulled")["from cache"] == len(PUSHED)
    assert _files(second)["flow.py"] == b"print('changed')\n"


def test_prune_deletes_only_stale_files_of_the_folder(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.raw_put("flows-2/keep.txt", b"sibling")
    store.raw_put("outside.txt", b"outside")
    src = _project(tmp_path / "src")
    monkeypatch.chdir(src)
    store.push()
    (src / "pkg/deep/mod.py").unlink()
    store.push()
    assert "flows/pkg/deep/mod.py" in store.keys("")  # without prune, a push only adds
    store.push(prune=True)
    assert "flows/pkg/deep/mod.py" not in store.keys("")
    assert "flows-2/keep.txt" in store.keys("") and "outside.txt" in store.keys("")


def test_pull_restores_exactly_the_pushed_tree(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _project(tmp_path / "src")
    monkeypatch.chdir(src)
    store.push()
    dest = tmp_path / "dest"
    write_tree(dest, {"user-notes.txt": "mine\n"})
    monkeypatch.chdir(dest)
    store.pull()
    assert (dest / "pkg/deep/mod.py").exists()

    (src / "pkg/deep/mod.py").unlink()
    monkeypatch.chdir(src)
    store.push()  # no prune: the stale object stays in the bucket ...
    store.raw_put("flows-2/sibling.txt", b"x")
    monkeypatch.chdir(dest)
    store.pull()
    # ... but the pull follows the manifest: the deleted file is gone, and it was removed locally because
    # an earlier pull wrote it; the user's own file is kept; the sibling folder is not pulled.
    assert not (dest / "pkg/deep").exists()
    assert (dest / "user-notes.txt").read_text() == "mine\n"
    assert not (dest / "sibling.txt").exists()
    assert sorted(_files(dest)) == sorted([p for p in PUSHED if p != "pkg/deep/mod.py"] + ["user-notes.txt"])


def test_pull_of_a_folder_without_manifest_gets_every_object_but_no_sibling(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A folder written by Prefect's own push step: plain objects, no manifest, maybe folder markers.
    store.raw_put("legacy/a.py", b"a")
    store.raw_put("legacy/sub/b.py", b"b")
    if store.kind != "seaweedfs":  # SeaweedFS turns a trailing-slash key into a real directory
        store.raw_put("legacy/sub/", b"")
    store.raw_put("legacy-2/c.py", b"c")
    monkeypatch.chdir(tmp_path)
    out = store.pull(folder="legacy/")
    assert out["directory"] == str(tmp_path)
    assert _files(tmp_path) == {"a.py": b"a", "sub/b.py": b"b"}


@pytest.mark.parametrize("key", ["evil/../escape.txt", "evil//abs.txt"])
def test_pull_refuses_keys_that_escape_the_target(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    try:
        store.raw_put(key, b"x")
    except Exception:
        pytest.skip(f"{store.kind} cannot store the key {key!r}")
    if key not in store.keys(""):
        pytest.skip(f"{store.kind} normalises the key {key!r}")
    target = tmp_path / "target"
    target.mkdir()
    monkeypatch.chdir(target)
    with pytest.raises(StorageError) as info:
        store.pull(folder="evil")
    assert str(info.value) == (
        f"refusing to pull {key!r}: its name would write outside the target directory "
        "(hint: remove or rename that object in the store)"
    )
    assert list(target.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def test_failed_pull_leaves_the_previous_pull_untouched(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _project(tmp_path / "src")
    monkeypatch.chdir(src)
    store.push()
    dest = tmp_path / "dest"
    dest.mkdir()
    monkeypatch.chdir(dest)
    store.pull()
    before = _files(dest)

    (src / "flow.py").write_text("print('v2')\n")
    (src / "pkg/__init__.py").write_text("V = 2\n")
    monkeypatch.chdir(src)
    store.push()
    store.raw_put("flows/pkg/__init__.py", b"tampered")  # the store no longer matches the manifest
    monkeypatch.chdir(dest)
    with pytest.raises(StorageError, match="does not match the manifest"):
        store.pull()
    assert _files(dest) == before
    assert not [p for p in dest.iterdir() if p.name.startswith(".flowdeck-pull-")]


def test_a_pull_refuses_a_folder_whose_push_did_not_finish(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.raw_put("flows/" + MANIFEST_NAME, Manifest(complete=False).to_bytes())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError) as info:
        store.pull()
    scheme = {"azurite": "az", "fake-gcs": "gs"}.get(store.kind, "s3")
    assert str(info.value) == (
        f"the last push to {scheme}://{store.name}/flows/ did not finish, so the folder "
        "holds a mix of two trees (hint: run the push step again, then pull)"
    )


def test_large_files_stream_in_parts(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = os.urandom(1024 * 1024) * 18  # 18 MiB: above every backend's multipart threshold
    write_tree(tmp_path / "src", {"big.bin": big})
    monkeypatch.chdir(tmp_path / "src")
    store.push()
    assert store.raw_get("flows/big.bin") == big
    (tmp_path / "dest").mkdir()
    monkeypatch.chdir(tmp_path / "dest")
    store.pull()
    assert (tmp_path / "dest/big.bin").read_bytes() == big


def test_missing_bucket_is_a_clear_error(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(tmp_path, {"a.py": "a"})
    monkeypatch.chdir(tmp_path)
    store.name = "fd-no-such-bucket"
    with pytest.raises(StorageError) as info:
        store.push()
    assert "fd-no-such-bucket" in str(info.value)
    assert "hint:" in str(info.value)
