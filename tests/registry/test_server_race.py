"""Concurrent deploys of one deployment to a real Prefect server converge, and `deploy --watch` redeploys
to the server. The deployment the server holds is compared field by field with the version flowdeck says
is live: the two must agree whatever the interleaving."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flowdeck.registry.server.payload import live_key
from tests.conftest import REPO_ROOT, CliRunner
from tests.deploy.test_watch import _Output
from tests.registry.conftest import write_project
from tests.registry.test_server_deploy import api
from tests.servers.flaky_proxy import FaultyHttpProxy
from tests.servers.prefect import PrefectServer


def _held(server: PrefectServer, name: str) -> dict[str, Any]:
    flow, dep = name.split("/")
    found: dict[str, Any] = api(server, "GET", f"deployments/name/{flow}/{dep}")
    return found


def _agrees(dep: dict[str, Any], record: dict[str, Any], label: str) -> bool:
    pool = record.get("work_pool") or {}
    return bool(dep["parameters"] == record.get("parameters", {}) and dep["version"] == label
                and dep["pull_steps"] == record.get("pull_steps", [])
                and (dep.get("job_variables") or {}) == (pool.get("job_variables") or {}))


def _reverse_live_pointer_writes(proxy: FaultyHttpProxy) -> None:
    """Hold the first live-pointer writes longest, so that they reach the server in the reverse order of the
    deployment writes before them: the old code then left the pointer on an early deploy's version while the
    deployment held a later one's."""
    seen = itertools.count()

    def delay(method: str, path: str, body: bytes) -> float:
        if method == "POST" and path.endswith("/artifacts/") and b'-live"' in body:
            return max(0.0, 0.6 * (7 - next(seen)))
        return 0.0

    proxy.delay = delay


@pytest.mark.parametrize("through", ["direct", "reordering proxy"])
def test_concurrent_deploys_leave_the_deployment_and_the_live_pointer_on_one_version(
        server: PrefectServer, proxy: FaultyHttpProxy, project: Path, cli: type[CliRunner], uid: str,
        through: str) -> None:
    flow = f"race-{uid}"
    name = f"{flow}/x"
    write_project(project, flow, f"- name: x\n  entrypoint: flows/hello.py:hello\n  flow_name: {flow}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if through != "direct":
        _reverse_live_pointer_writes(proxy)
        env["PREFECT_API_URL"] = proxy.url()
    # Each deploy differs in a parameter and a job variable, so the server's deployment says whose it is.
    procs = [subprocess.Popen([sys.executable, "-m", "flowdeck", "deploy", "--all", "--param", f"times={i}",
                               "-jv", f'env={{"WHO": "{i}"}}'],
                              cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    from flowdeck.registry import current

    versions = current().list_versions(name)
    assert sorted(v.record["parameters"]["times"] for v in versions) == list(range(8))
    live = [v for v in versions if v.live]
    assert len(live) == 1
    dep = _held(server, name)
    assert _agrees(dep, live[0].record, live[0].label), (dep["parameters"], live[0].record["parameters"])
    # The live pointer itself (not only what history derives from the deployment) names that version.
    pointer = api(server, "GET", f"artifacts/{live_key(name)}/latest")["data"]
    assert pointer["revision"] == live[0].revision, (pointer, live[0].revision)
    # The deploy whose version won says so; one that a later deploy replaced says that instead.
    winner = live[0].record["parameters"]["times"]
    assert f"(revision {live[0].revision}, live)" in outputs[winner][0], outputs[winner]
    for i, (stdout, stderr) in enumerate(outputs):
        if "not live" in stdout:
            assert i != winner and "a concurrent deploy" in stderr, (stdout, stderr)
    shown = cli.run("deployment", "history", name)
    assert shown.code == 0 and "warning" not in shown.output, shown.output


def test_concurrent_deploy_all_of_several_deployments_converges(
        server: PrefectServer, proxy: FaultyHttpProxy, project: Path, uid: str) -> None:
    flow = f"many-{uid}"
    names = [f"{flow}/d{n}" for n in range(3)]
    write_project(project, flow, "".join(f"- name: d{n}\n  entrypoint: flows/hello.py:hello\n  flow_name: {flow}\n"
                                         for n in range(3)))
    _reverse_live_pointer_writes(proxy)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PREFECT_API_URL": proxy.url()}
    # The batched re-read of --all (several deployments) settles each deployment on its own.
    procs = [subprocess.Popen([sys.executable, "-m", "flowdeck", "deploy", "--all", "--param", f"times={i}"],
                              cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    from flowdeck.registry import current

    for name in names:
        versions = current().list_versions(name)
        assert sorted(v.record["parameters"]["times"] for v in versions) == list(range(4))
        live = [v for v in versions if v.live]
        assert len(live) == 1 and _agrees(_held(server, name), live[0].record, live[0].label), name
        pointer = api(server, "GET", f"artifacts/{live_key(name)}/latest")["data"]
        assert pointer["revision"] == live[0].revision, (name, pointer, live[0].revision)
    # Once settled, a sequential --all reports every deployment live and warns about nothing.
    again = subprocess.run([sys.executable, "-m", "flowdeck", "deploy", "--all", "--param", "times=9"],
                           cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count(", live)") == 3 and "warning" not in again.stderr, again


def test_history_reports_a_deployment_changed_outside_flowdeck(
        server: PrefectServer, project: Path, cli: type[CliRunner], uid: str) -> None:
    flow = f"drift-{uid}"
    name = f"{flow}/x"
    write_project(project, flow, f"- name: x\n  entrypoint: flows/hello.py:hello\n  flow_name: {flow}\n")
    for times in (1, 2):
        deployed = cli.run("deploy", "--all", "--param", f"times={times}")
        assert deployed.code == 0 and "warning" not in deployed.output, deployed.output
    clean = cli.run("deployment", "history", name)
    assert clean.code == 0 and "warning" not in clean.output, clean.output
    dep = _held(server, name)
    # As `prefect deploy` (or the UI) would: the deployment no longer holds a version flowdeck recorded.
    api(server, "PATCH", f"deployments/{dep['id']}", {"parameters": {"times": 99}, "version": "by-hand"})
    drifted = cli.run("deployment", "history", name)
    assert drifted.code == 0, drifted.output
    assert "changed outside flowdeck" in drifted.stderr and "since revision 2" in drifted.stderr, drifted.output
    held = cli.run("deployment", "show", name, "--version", "0", "--json")
    assert held.code == 0 and json.loads(held.stdout)["record"]["parameters"] == {"times": 99}, held.output
    # Back to revision 1's configuration (a deploy that stopped before moving the pointer looks the same):
    # the deployment is the truth, so revision 1 is shown as live, with a warning naming both.
    api(server, "PATCH", f"deployments/{dep['id']}", {"parameters": {"times": 1}, "version": dep["version"]})
    older = cli.run("deployment", "history", name, "--json")
    assert older.code == 0, older.output
    assert [r["revision"] for r in json.loads(older.stdout) if r["live"]] == [1], older.stdout
    assert "holds revision 1" in older.stderr and "names revision 2" in older.stderr, older.stderr
    promoted = cli.run("deployment", "promote", name, "--to", "1")
    assert promoted.code == 0 and "revision 1) is live" in promoted.stdout, promoted.output
    settled = cli.run("deployment", "history", name)
    assert settled.code == 0 and "warning" not in settled.output, settled.output
    # A redeploy of the live content is not "unchanged" while the deployment holds something else: it writes
    # the deployment again (a new revision), and then an identical redeploy writes nothing.
    api(server, "PATCH", f"deployments/{dep['id']}", {"pull_steps": []})
    again = cli.run("deploy", "--all", "--param", "times=1")
    assert again.code == 0 and "revision 3, live" in again.stdout, again.output
    assert "changed outside flowdeck" in again.stderr and "deploying it again" in again.stderr, again.output
    assert _held(server, name)["pull_steps"] != []
    same = cli.run("deploy", "--all", "--param", "times=1")
    assert same.code == 0 and "unchanged" in same.stdout and "warning" not in same.output, same.output


def test_watch_redeploys_to_the_server_and_stops_cleanly(
        server: PrefectServer, project: Path, uid: str) -> None:
    flow = f"watch-{uid}"
    name = f"{flow}/x"
    write_project(project, flow, f"- name: x\n  entrypoint: flows/hello.py:hello\n  flow_name: {flow}\n")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "flowdeck", "deploy", "--all", "--watch"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = _Output(proc)
        output.wait_for(f"{name}: created", timeout=120)
        output.wait_for("watching", timeout=60)
        first = _held(server, name)
        flow_file = project / "flows" / "hello.py"
        flow_file.write_text(flow_file.read_text().replace('name: str = "world"', 'name: str = "server"'))
        output.wait_for(f"{name}: updated", timeout=120)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    second = _held(server, name)
    assert second["id"] == first["id"] and second["version"] != first["version"]
    assert second["parameter_openapi_schema"]["properties"]["name"]["default"] == "server"
    from flowdeck.registry import current

    versions = current().list_versions(name)
    assert len(versions) == 2 and versions[-1].live
