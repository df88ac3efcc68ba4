"""Benchmark flowdeck's git_clone against a plain ``git clone`` of the same commit, served on loopback.

    python benchmarks/git_clone.py            # 3000 commits, 3000 files, 3 runs per case
    python benchmarks/git_clone.py --quick    # a small repository, one run (a smoke test)

It builds a repository with ``git fast-import``, serves it with git-daemon on 127.0.0.1, and times:
cold (no cache, then an empty cache) and warm (a filled cache into a new directory, then a re-run into the
existing clone) clones at a branch and at a ``commit_sha`` 100 commits behind. Each time is printed as a
ratio to a plain ``git clone`` (plus ``git checkout <sha>`` for the pinned case) run in the same script.

A cache hit first proves the caller's access to the server (``git ls-remote URL HEAD``, remembered for a
minute in the process). The second table measures what that costs where it matters, over HTTPS with a
token (the token-checking test server, ``tests/servers/git_http_server.py``, on loopback): the check
alone, and a warm ``commit_sha`` clone with the check against the same clone with the proof remembered
(that is, without the check), both also as ratios to a plain ``git clone`` over the same HTTPS.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _run(*argv: str, cwd: Path | None = None, stdin: bytes | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode().strip()


def build_repo(bare: Path, commits: int, files: int, seed: int = 7) -> None:
    """A bare repository with ``commits`` commits on main touching ``files`` files, via fast-import."""
    rng = random.Random(seed)
    words = [f"w{rng.randrange(10**6):06d}" for _ in range(4000)]

    def content() -> bytes:
        return (" ".join(rng.choice(words) for _ in range(rng.randrange(100, 400))) + "\n").encode()

    chunks: list[bytes] = []

    def data(payload: bytes) -> None:
        chunks.append(b"data %d\n" % len(payload) + payload + b"\n")

    for n in range(1, commits + 1):
        chunks.append(b"commit refs/heads/main\nmark :%d\n" % n)
        chunks.append(b"committer Bench <bench@flowdeck.invalid> %d +0000\n" % (1_700_000_000 + n * 60))
        data(b"change %d\n" % n)
        if n > 1:
            chunks.append(b"from :%d\n" % (n - 1))
        paths = range(files) if n == 1 else rng.sample(range(files), 3)
        for i in paths:
            chunks.append(b"M 100644 inline pkg%02d/mod%05d.py\n" % (i % 50, i))
            data(content())
    _run("git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    _run("git", "fast-import", "--quiet", cwd=bare, stdin=b"".join(chunks))
    _run("git", "repack", "-a", "-d", "--quiet", cwd=bare)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(action: Callable[[], object], runs: int, reset: Callable[[], None]) -> float:
    """Median wall time of ``action`` over ``runs`` runs, calling ``reset`` before each."""
    times = []
    for _ in range(runs):
        reset()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    """Build, serve, measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small repository, one run per case")
    parser.add_argument("--commits", type=int)
    parser.add_argument("--files", type=int)
    parser.add_argument("--runs", type=int)
    args = parser.parse_args()
    commits = args.commits or (300 if args.quick else 3000)
    files = args.files or (300 if args.quick else 3000)
    runs = args.runs or (1 if args.quick else 3)

    work = Path(tempfile.mkdtemp(prefix="flowdeck-bench-git-"))
    os.environ.update(
        {
            "HOME": str(work / "home"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "FLOWDECK_CACHE_DIR": str(work / "cache"),
        }
    )
    os.environ.pop("FLOWDECK_NO_CACHE", None)
    (work / "home").mkdir()
    from flowdeck.gitcache import forget_proofs
    from flowdeck.steps.git import git_clone  # after the environment is set

    served = work / "served"
    served.mkdir()
    started = time.perf_counter()
    build_repo(served / "bench.git", commits, files)
    print(f"built {commits} commits x {files} files in {time.perf_counter() - started:.1f}s")
    sha = _run("git", "rev-parse", "main~100" if commits > 100 else "main", cwd=served / "bench.git")
    port = free_port()
    daemon = subprocess.Popen(
        [
            str(Path(_run("git", "--exec-path")) / "git-daemon"),
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
            f"--base-path={served}",
            "--export-all",
            str(served),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"git://127.0.0.1:{port}/bench.git"
    try:
        for _ in range(100):
            if subprocess.run(["git", "ls-remote", url], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.05)
        counter = iter(range(10**6))

        def fresh_dir() -> None:
            # Each run clones into a new directory; deleting trees between runs would measure the disk.
            run_dir = work / "runs" / str(next(counter))
            run_dir.mkdir(parents=True)
            os.chdir(run_dir)

        def no_reset() -> None:
            pass

        def fresh_and_forget() -> None:
            # As in a new worker process: the proof of access made by an earlier run is not remembered.
            fresh_dir()
            forget_proofs()

        def empty_cache() -> None:
            shutil.rmtree(work / "cache", ignore_errors=True)
            fresh_dir()

        def plain_branch() -> None:
            _run("git", "clone", "--quiet", "--branch", "main", url, "plain")

        def plain_sha() -> None:
            _run("git", "clone", "--quiet", "--no-checkout", url, "plain")
            _run("git", "checkout", "--quiet", "--detach", sha, cwd=Path("plain"))

        rows: list[tuple[str, float, float]] = []

        def case(name: str, baseline: float, action: Callable[[], object], reset: Callable[[], None]) -> None:
            seconds = timed(action, runs, reset)
            rows.append((name, seconds, seconds / baseline))

        # Warm up the page cache and the daemon once, untimed: the first clone on a cold disk is slower.
        timed(plain_branch, 1, fresh_dir)
        timed(lambda: git_clone(url, cache=False), 1, fresh_dir)
        base_branch = timed(plain_branch, runs, fresh_dir)
        base_sha = timed(plain_sha, runs, fresh_dir)
        rows.append(("plain git clone --branch main", base_branch, 1.0))
        rows.append(("plain git clone + checkout <sha>", base_sha, 1.0))
        case(
            "cold, branch, no cache",
            base_branch,
            lambda: git_clone(url, branch="main", cache=False),
            fresh_dir,
        )
        case(
            "cold, commit_sha, no cache",
            base_sha,
            lambda: git_clone(url, commit_sha=sha, cache=False),
            fresh_dir,
        )
        case("cold, branch, empty cache", base_branch, lambda: git_clone(url, branch="main"), empty_cache)
        case("cold, commit_sha, empty cache", base_sha, lambda: git_clone(url, commit_sha=sha), empty_cache)
        git_clone(url)  # fill the cache
        case(
            "warm cache, branch, new directory", base_branch, lambda: git_clone(url, branch="main"), fresh_dir
        )
        case(
            "warm cache, commit_sha, new directory",
            base_sha,
            lambda: git_clone(url, commit_sha=sha),
            fresh_and_forget,
        )
        case(
            "warm cache, commit_sha, new dir, proof kept",
            base_sha,
            lambda: git_clone(url, commit_sha=sha),
            fresh_dir,
        )
        fresh_dir()
        git_clone(url, branch="main")
        git_clone(url, commit_sha=sha)
        case("warm, branch, existing clone", base_branch, lambda: git_clone(url, branch="main"), no_reset)
        case("warm, commit_sha, existing clone", base_sha, lambda: git_clone(url, commit_sha=sha), no_reset)
        https_rows = _https_cases(work, served, sha, runs, fresh_dir, fresh_and_forget)
    finally:
        os.killpg(daemon.pid, 15)
        daemon.wait(10)
        os.chdir(ROOT)
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nrepository: {commits} commits, {files} files, git:// on loopback; commit_sha is main~100; "
        f"median of {runs} run(s)\n"
    )
    print(f"{'case':42} {'seconds':>9} {'x plain git clone':>18}")
    for name, seconds, ratio in rows:
        print(f"{name:42} {seconds:9.3f} {ratio:18.2f}")
    print("\nthe access check on a cache hit, over HTTPS with a token (loopback, TLS, the test server)\n")
    print(f"{'case':42} {'seconds':>9} {'x plain clone':>14} {'x without check':>16}")
    for name, seconds, plain, without in https_rows:
        print(f"{name:42} {seconds:9.3f} {plain:14.2f} {without:16.2f}")
    return 0


def _https_cases(
    work: Path,
    served: Path,
    sha: str,
    runs: int,
    fresh_dir: Callable[[], None],
    fresh_and_forget: Callable[[], None],
) -> list[tuple[str, float, float, float]]:
    """Serve ``served`` over HTTPS with a token and time the check; rows of (name, s, x plain, x no check)."""
    from flowdeck.gitauth import format_credentials, git_env
    from flowdeck.gitcache import forget_proofs, mirror_path, prove_access
    from flowdeck.steps.git import git_clone
    from tests.servers.git import make_test_tls

    tls = make_test_tls(work / "tls")
    token = "bench-" + secrets.token_hex(12)
    secrets_file = work / "secrets.json"
    secrets_file.write_text(json.dumps({"token": token, "pairs": []}))
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "servers" / "git_http_server.py"),
            "--root",
            str(served),
            "--port",
            str(port),
            "--secrets",
            str(secrets_file),
            "--tls-cert",
            str(tls["cert"]),
            "--tls-key",
            str(tls["key"]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        if not server.stdout.readline().startswith("READY"):
            raise SystemExit("the HTTPS git server did not start")
        os.environ["GIT_SSL_CAINFO"] = str(tls["ca"])
        url = f"https://127.0.0.1:{port}/bench.git"
        env = git_env(url, format_credentials(url, {"access_token": token}))

        def plain_sha() -> None:
            # The token travels as flowdeck sends it (an extraHeader in the environment), never in argv.
            subprocess.run(
                ["git", "clone", "--quiet", "--no-checkout", url, "plain"], env=env, check=True
            )
            subprocess.run(["git", "checkout", "--quiet", "--detach", sha], cwd="plain", check=True)

        def check() -> None:
            prove_access(mirror_path(url), url, env)

        fresh_dir()
        git_clone(url, access_token=token)  # fill the cache for this URL
        base = timed(plain_sha, runs, fresh_dir)
        without = timed(lambda: git_clone(url, commit_sha=sha, access_token=token), runs, fresh_dir)
        with_check = timed(lambda: git_clone(url, commit_sha=sha, access_token=token), runs, fresh_and_forget)
        alone = timed(check, max(runs, 5), forget_proofs)
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)
    return [
        ("plain git clone + checkout <sha>, https", base, 1.0, base / without),
        ("warm commit_sha, new dir, without check", without, without / base, 1.0),
        ("warm commit_sha, new dir, with check", with_check, with_check / base, with_check / without),
        ("the check alone (ls-remote HEAD)", alone, alone / base, alone / without),
    ]


if __name__ == "__main__":
    sys.exit(main())
