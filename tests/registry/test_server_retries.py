"""The server client's retries, through a proxy in front of the real Prefect server that answers 503/502/429."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import CliResult, run_cli
from tests.registry.conftest import write_project
from tests.registry.test_server_deploy import api
from tests.servers.flaky_proxy import FaultyHttpProxy
from tests.servers.prefect import PrefectServer


def _deploy(root: Path, flow: str, proxy: FaultyHttpProxy, server: PrefectServer, **env: str) -> CliResult:
    write_project(root, flow, f"- name: d\n  flow_name: {flow}\n  entrypoint: flows/hello.py:hello\n"
                              f"  parameters: {{times: 2}}\n  work_pool: {{name: pool-{flow}}}\n")
    return run_cli("deploy", "--all", "--create-pool", cwd=root, env={
        **server.env(), "PREFECT_API_URL": proxy.url(), "FLOWDECK_HOME": str(root / ".flowdeck"), **env})


def test_deploy_retries_busy_answers_and_succeeds(
        prefect_server: PrefectServer, proxy: FaultyHttpProxy, tmp_path: Path, uid: str) -> None:
    # The same deploy (a fresh flow, pool and deployment) without faults: how many requests it takes.
    proxy.healthy()
    clean = _deploy(tmp_path / "a", f"clean-{uid}", proxy, prefect_server)
    assert clean.code == 0, clean.output
    needed = len([entry for entry in proxy.log if entry[2] != -1])
    clean_log = list(proxy.log)
    assert needed >= 6, proxy.log

    proxy.fail_every(3, [503, 502, 429])
    busy = _deploy(tmp_path / "b", f"busy-{uid}", proxy, prefect_server)
    assert busy.code == 0, busy.output
    injected = proxy.injected
    # Every injected answer cost exactly one retry, and nothing else changed: the server saw the same
    # number of requests as for the clean deploy (a retry that was not needed, or a request dropped
    # instead of retried, would change it).
    # (A real connection drop between the proxy and the server, logged as status -1 and retried by the
    # client, is not what this test is about: it is left out of the count.)
    answered = [entry for entry in proxy.forwarded if entry[2] != -1]
    assert len(answered) == needed, (clean_log, proxy.log)
    assert len(injected) == len(proxy.log) // 3 and {s for _, _, s, _ in injected} == {429, 502, 503}
    for i, (method, path, _, faulted) in enumerate(proxy.log):
        if faulted:
            assert (method, path) == proxy.log[i + 1][:2], (i, proxy.log)
    dep = api(prefect_server, "GET", f"deployments/name/busy-{uid}/d")
    assert dep["parameters"] == {"times": 2} and dep["work_pool_name"] == f"pool-busy-{uid}"


def test_a_dropped_connection_is_retried_only_where_a_second_try_is_harmless(
        prefect_server: PrefectServer, proxy: FaultyHttpProxy, tmp_path: Path, uid: str) -> None:
    # The first try of every read (GET, and the POST filters and counts) loses its connection with no answer.
    seen: set[tuple[str, str]] = set()

    def first_read(method: str, path: str) -> bool:
        read = method == "GET" or path.rstrip("/").endswith(("/filter", "/count"))
        if not read or (method, path) in seen:
            return False
        seen.add((method, path))
        return True

    proxy.drop = first_read
    ok = _deploy(tmp_path / "a", f"drop-{uid}", proxy, prefect_server)
    assert ok.code == 0, ok.output
    dropped = [(m, p) for m, p, status, _ in proxy.log if status == 0]
    assert any(m == "POST" for m, _ in dropped) and any(m == "GET" for m, _ in dropped), proxy.log
    for method, path in dropped:  # each was sent again and answered
        assert any(m == method and p == path and s > 0 for m, p, s, _ in proxy.log), (method, path)
    assert api(prefect_server, "GET", f"deployments/name/drop-{uid}/d")["parameters"] == {"times": 2}

    # A creation that may have been applied is never sent twice: the deploy fails with a clear error.
    before = len(proxy.log)
    proxy.drop = lambda method, path: method == "POST" and path.rstrip("/").endswith("/artifacts")
    lost = _deploy(tmp_path / "b", f"lost-{uid}", proxy, prefect_server)
    assert lost.code == 1 and "Traceback" not in lost.output, lost.output
    assert "cannot reach the Prefect server" in lost.stderr
    creations = [p for m, p, _, _ in proxy.log[before:] if m == "POST" and p.rstrip("/").endswith("/artifacts")]
    assert len(creations) == 1, proxy.log[before:]


def test_a_persistent_failure_is_a_clear_error(
        prefect_server: PrefectServer, proxy: FaultyHttpProxy, tmp_path: Path, uid: str) -> None:
    proxy.fail_all(503)
    down = _deploy(tmp_path / "a", f"down-{uid}", proxy, prefect_server, PREFECT_CLIENT_MAX_RETRIES="2")
    assert down.code == 1, down.output
    assert "Traceback" not in down.output and prefect_server.password not in down.output
    assert "still answered HTTP 503 to /admin/version after 2 retries" in down.stderr
    assert "PREFECT_CLIENT_MAX_RETRIES" in down.stderr
    assert len(proxy.log) == 3  # the first try and two retries

    # The server goes away in the middle of a deploy (the version check and the first reads pass).
    proxy.fail_all(502, after=3)
    midway = _deploy(tmp_path / "b", f"midway-{uid}", proxy, prefect_server, PREFECT_CLIENT_MAX_RETRIES="1")
    assert midway.code == 1, midway.output
    assert "Traceback" not in midway.output and "still answered HTTP 502 after 1 retry" in midway.stderr
    assert api(prefect_server, "GET", f"deployments/name/midway-{uid}/d") is None

    bad = _deploy(tmp_path / "c", f"bad-{uid}", proxy, prefect_server, PREFECT_CLIENT_MAX_RETRIES="lots")
    assert bad.code == 1 and "PREFECT_CLIENT_MAX_RETRIES must be a whole number" in bad.stderr, bad.output
