"""Faults against a real Prefect server: killed mid-``deploy --all``; errors the server reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flowdeck.errors import RegistryError
from tests.conftest import REPO_ROOT, write_tree
from tests.registry.conftest import FLOW
from tests.servers.prefect import PrefectServer, start_prefect_server

COUNT = 24


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrefectServer]:
    """A server of this test's own, since the test kills it."""
    from flowdeck.registry import choose

    root = tmp_path_factory.mktemp("prefect-killed")
    server = start_prefect_server(root)
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    choose.reset()
    holder = [server]
    yield server
    holder[-1].process.stop()
    choose.reset()


def _project(root: Path, times: int) -> None:
    deployments = "".join(f"- name: d{i}\n  entrypoint: flows/hello.py:hello\n  flow_name: killed\n"
                          f"  parameters: {{times: {times}}}\n" for i in range(COUNT))
    write_tree(root, {"flows/hello.py": FLOW, "prefect.yaml": "pull:\n- prefect.deployments.steps."
                      f"set_working_directory:\n    directory: {root}\ndeployments:\n{deployments}"})


def _count(server: PrefectServer, client: httpx.Client) -> int:
    response = client.post(f"{server.url}/artifacts/count", json={"artifacts": {"type": {"any_": [
        "flowdeck-version"]}}})
    return int(response.json())


def test_a_server_killed_mid_deploy_all_keeps_the_previous_versions(
        own_server: PrefectServer, project: Path) -> None:
    from flowdeck.registry import choose, current

    _project(project, 1)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.run([sys.executable, "-m", "flowdeck", "deploy", "--all"], cwd=project, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    _project(project, 2)
    user, password = own_server.auth_string.split(":", 1)
    with httpx.Client(auth=(user, password), trust_env=False, timeout=5) as client:
        base = _count(own_server, client)
        proc = subprocess.Popen([sys.executable, "-m", "flowdeck", "deploy", "--all"], cwd=project, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if _count(own_server, client) >= base + 3:
                break
            time.sleep(0.01)
    assert proc.poll() is None, "the deploy finished before the server could be killed"
    own_server.process.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    os.killpg(own_server.process.pid, signal.SIGKILL)
    own_server.process.proc.wait(10)  # type: ignore[union-attr]
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, out + err
    assert "cannot reach the Prefect server" in err and "Traceback" not in err
    # The same server again, on the same database.
    port = int(own_server.url.rsplit(":", 1)[1].split("/")[0])
    again = start_prefect_server(own_server.home.parent, auth_string=own_server.auth_string, port=port)
    own_server.process = again.process
    choose.reset()
    registry = current()
    for i in range(COUNT):
        live = registry.get_version(f"killed/d{i}")
        # Every deployment still has its first version, and it is live; nothing was half-written.
        assert live.revision == 1 and live.record["parameters"] == {"times": 1}, (i, live)
    nxt = subprocess.run([sys.executable, "-m", "flowdeck", "deploy", "--all"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=600)
    assert nxt.returncode == 0, nxt.stderr
    for i in range(COUNT):
        assert registry.get_version(f"killed/d{i}").record["parameters"] == {"times": 2}


def test_server_errors_are_located_and_actionable(prefect_server: PrefectServer) -> None:
    from flowdeck.registry.server.client import PrefectClient, ServerConfig

    with PrefectClient(ServerConfig(prefect_server.url, auth_string=prefect_server.auth_string)) as client:
        with pytest.raises(RegistryError) as info:
            client.post("variables/", {"name": "bogus_field_test", "value": 1, "colour": "red"},
                        what="variable 'bogus_field_test'")
        text = str(info.value)
        assert "variable 'bogus_field_test'" in text and "colour: Extra inputs are not permitted" in text
        assert prefect_server.password not in text
        with pytest.raises(RegistryError, match=r"deployment 'nope/nope' not found on the Prefect server"):
            client.get("deployments/name/nope/nope", what="deployment 'nope/nope'")
        assert client.check_version().startswith("3.")


def test_a_server_of_another_major_version_is_refused() -> None:
    """An old Prefect 2 server (a loopback stub answering /admin/version; there is no real one here)."""
    import http.server
    import threading

    from flowdeck.registry.server.client import PrefectClient, ServerConfig

    class Old(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'"2.20.3"'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Old)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{stub.server_address[1]}/api"
        with PrefectClient(ServerConfig(url)) as client, pytest.raises(RegistryError) as info:
            client.get("variables/name/x")
        assert "runs version 2.20.3; flowdeck speaks Prefect 3.x servers only" in str(info.value)
    finally:
        stub.shutdown()
