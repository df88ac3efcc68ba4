"""``deploy --all`` against a real Prefect server: flowdeck versus ``prefect deploy --all``, 1/10/100 deployments.

Run: ``python benchmarks/registry.py [--counts 1,10,100]``. Starts a Prefect server (SQLite) from the Prefect
virtualenv of the tests (``scripts/setup-prefect``), puts a counting HTTP proxy in front of it, and for each
count deploys the same ``prefect.yaml`` (distinct flow names per tool and count, so each starts fresh) with
flowdeck and with ``prefect --no-prompt deploy --all``; then redeploys with flowdeck unchanged. Prints wall
times, the ratio prefect/flowdeck (goal: >= 3 at 100) and the HTTP requests each made (goal: an unchanged
redeploy in at most 2 requests per deployment).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.prefect import prefect_bin, start_prefect_server  # noqa: E402

FLOW = '''from prefect import flow


@flow(name="FLOWNAME")
def etl(source: str = "orders", limit: int = 10) -> int:
    """A flow."""
    return limit
'''


class CountingProxy:
    """Forwards HTTP to the server and counts the requests (keep-alive aware, unlike a TCP counter)."""

    def __init__(self, target: str) -> None:
        self.count = 0
        self._lock = threading.Lock()
        client = httpx.Client(base_url=target, trust_env=False, timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                with proxy._lock:
                    proxy.count += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length"}}
                response = client.request(self.command, self.path, content=body, headers=headers)
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in {"content-length", "transfer-encoding", "content-encoding", "connection"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self) -> int:
        """The requests counted since the last call."""
        with self._lock:
            count, self.count = self.count, 0
        return count


def _project(root: Path, flow_name: str, count: int) -> None:
    (root / "flows").mkdir(parents=True, exist_ok=True)
    (root / "flows" / "etl.py").write_text(FLOW.replace("FLOWNAME", flow_name))
    lines = ["name: bench", "pull:", "- prefect.deployments.steps.set_working_directory:",
             f"    directory: {root}", "deployments:"]
    for index in range(count):
        lines += [f"- name: etl-{index:03d}", "  entrypoint: flows/etl.py:etl",
                  f"  parameters: {{source: source-{index}}}", "  work_pool: {name: bench-pool}",
                  "  schedules:", "  - cron: '0 3 * * *'"]
    (root / "prefect.yaml").write_text("\n".join(lines) + "\n")


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", default="1,10,100")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        server = start_prefect_server(Path(tmp) / "server")
        try:
            proxy = CountingProxy(server.url.removesuffix("/api"))
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FLOWDECK_"))}
            env = dict(base_env, PREFECT_API_URL=proxy.url + "/api", PREFECT_API_AUTH_STRING=server.auth_string,
                       PREFECT_HOME=str(Path(tmp) / "client-home"), DO_NOT_TRACK="1",
                       FLOWDECK_HOME=str(Path(tmp) / "flowdeck-home"), PYTHONPATH=str(ROOT))
            user, password = server.auth_string.split(":", 1)
            httpx.post(f"{server.url}/work_pools/", json={"name": "bench-pool", "type": "process"},
                       auth=(user, password), trust_env=False).raise_for_status()
            print(f"{'deployments':>11}  {'flowdeck s':>10} {'reqs':>6}  {'prefect s':>10} {'reqs':>6}  "
                  f"{'ratio':>6}  {'unchanged s':>11} {'reqs/dep':>8}")
            for count in counts:
                fd_dir, pf_dir = Path(tmp) / f"fd-{count}", Path(tmp) / f"pf-{count}"
                _project(fd_dir, f"flowdeck-{count}", count)
                _project(pf_dir, f"prefect-{count}", count)
                proxy.take()
                fd_time = _run([sys.executable, "-m", "flowdeck", "-q", "deploy", "--all"], fd_dir, env)
                fd_reqs = proxy.take()
                pf_time = _run([str(prefect_bin()), "--no-prompt", "deploy", "--all"], pf_dir, env)
                pf_reqs = proxy.take()
                same_time = _run([sys.executable, "-m", "flowdeck", "-q", "deploy", "--all"], fd_dir, env)
                same_reqs = proxy.take()
                print(f"{count:>11}  {fd_time:>10.2f} {fd_reqs:>6}  {pf_time:>10.2f} {pf_reqs:>6}  "
                      f"{pf_time / fd_time:>5.1f}x  {same_time:>11.2f} {same_reqs / count:>8.2f}")
        finally:
            server.process.stop()


if __name__ == "__main__":
    main()
