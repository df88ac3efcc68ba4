"""A pushed file is hashed once when its stamp proves it unchanged, and a change is still caught."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from flowdeck.errors import StorageError
from flowdeck.snapshot import writer
from flowdeck.steps.storage import manifest
from flowdeck.steps.storage.manifest import hashed_stamp


def test_a_file_changed_just_now_has_no_trusted_stamp(tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    path.write_bytes(b"print(1)\n")
    st, sha, stamp = hashed_stamp(path)
    assert (st.st_size, sha, stamp) == (9, hashlib.sha256(b"print(1)\n").hexdigest(), None)


def test_an_old_file_has_a_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest, "_RACY_NS", -(10**12))  # as if the file were older than the window
    path = tmp_path / "a.py"
    path.write_bytes(b"x" * 100)
    _, _, stamp = hashed_stamp(path)
    assert stamp is not None and stamp[2] == 100


@pytest.mark.parametrize("trusted", [True, False])
def test_a_file_changed_after_hashing_fails_the_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusted: bool
) -> None:
    if trusted:
        monkeypatch.setattr(manifest, "_RACY_NS", -(10**12))
    path = tmp_path / "a.bin"
    path.write_bytes(os.urandom(3000))
    _, sha, stamp = hashed_stamp(path)
    assert (stamp is not None) == trusted
    stamps = {path: stamp} if stamp is not None else {}
    local, _, info, _ = writer._build_pack([(sha, path, 3000)], tmp_path, stamps)
    assert info.blobs[sha][0][2] == 3000
    local.unlink()
    before = path.stat()
    path.write_bytes(os.urandom(3000))  # same size, other bytes
    # Within one timestamp tick the rewrite might keep the mtime (what the racy window is for): move it.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    with pytest.raises(StorageError, match="changed while it was being pushed"):
        writer._build_pack([(sha, path, 3000)], tmp_path, stamps)
