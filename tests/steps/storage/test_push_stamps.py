"""A pushed file is hashed once when its stamp proves it unchanged, and a change is still caught."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import zstandard

from flowdeck.errors import StorageError
from flowdeck.snapshot import writer
from flowdeck.snapshot.frames import SAMPLE
from flowdeck.snapshot.packbody import HELD, RawPackBody
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


def _stamped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blobs: dict[str, bytes]
) -> tuple[list[tuple[str, Path, int]], dict[Path, Any]]:
    monkeypatch.setattr(manifest, "_RACY_NS", -(10**12))
    items: list[tuple[str, Path, int]] = []
    stamps: dict[Path, Any] = {}
    for name, data in blobs.items():
        path = tmp_path / name
        path.write_bytes(data)
        _, sha, stamp = hashed_stamp(path)
        items.append((sha, path, len(data)))
        stamps[path] = stamp
    return items, stamps


def test_a_raw_pack_streamed_from_its_files_is_the_pack_a_temporary_file_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tail of 5 bytes and a small file are compressed frames held in memory; the rest is read from the files.
    sizes = {"a.bin": 3 * 1024 * 1024 + 5, "b.bin": 200 * 1024, "c.bin": 1024 * 1024, "d.bin": 900}
    blobs = {n: os.urandom(s) for n, s in sizes.items()}
    blobs["e.py"] = b"print(1)\n" * 1000
    items, stamps = _stamped(tmp_path, monkeypatch, blobs)
    local, name, info, _ = writer._build_pack(items, tmp_path, stamps)
    opened = RawPackBody.open(items, stamps, zstandard.ZstdCompressor(level=3))
    assert opened is not None
    body, streamed_info = opened
    with body:
        assert writer._index(streamed_info)[0] == name and streamed_info == info
        assert body.size == info.size == local.stat().st_size
        expected = local.read_bytes()
        assert body.read(1) == expected[:1] and body.read(2) == expected[1:3]
        for step in (1001, 128 * 1024, 10**9):
            body.seek(0)
            got = bytearray()
            while piece := body.read(step):
                got += piece
            assert got == expected
        body.seek(-7, 2)
        assert body.read() == expected[-7:] and body.tell() == body.size
        body.check_unchanged(stamps)


def test_a_pack_that_compresses_or_a_changed_file_is_not_streamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compressor = zstandard.ZstdCompressor(level=3)
    items, stamps = _stamped(tmp_path, monkeypatch, {"a.py": b"print(1)\n" * 10000, "b.bin": os.urandom(99999)})
    many = {f"s{i}": os.urandom(SAMPLE) for i in range(HELD // SAMPLE + 1)}
    small, small_stamps = _stamped(tmp_path, monkeypatch, many)
    assert RawPackBody.open(small, small_stamps, compressor) is None  # too many frames to hold
    assert RawPackBody.open(items, stamps, compressor) is None
    assert RawPackBody.open(items[1:], {}, compressor) is None  # no stamp
    opened = RawPackBody.open(items[1:], stamps, compressor)
    assert opened is not None
    with opened[0] as body:
        path = items[1][1]
        before = path.stat()
        path.write_bytes(os.urandom(99999))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
        with pytest.raises(StorageError, match="changed while it was being pushed"):
            body.check_unchanged(stamps)
