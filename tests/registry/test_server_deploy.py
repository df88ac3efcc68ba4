"""flowdeck deploy, history, rollback, pull and run against a real Prefect server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CliRunner
from tests.registry.conftest import write_project
from tests.servers.prefect import PrefectServer


def api(server: PrefectServer, method: str, path: str, body: Any = None) -> Any:
    """Read the server directly (plain httpx, with the CSRF token the shared server requires)."""
    user, password = server.auth_string.split(":", 1)
    with httpx.Client(base_url=server.url + "/", auth=(user, password), trust_env=False) as client:
        token = client.get("csrf-token", params={"client": "tests"}).json()["token"]
        response = client.request(method, path, json=body,
                                  headers={"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": "tests"})
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json() if response.content else None


def deployments_yaml(flow: str, pool: str, name: str = "daily", extra: str = "") -> str:
    return (f"- name: {name}\n  flow_name: {flow}\n  entrypoint: flows/hello.py:hello\n"
            f"  parameters: {{name: flowdeck}}\n  work_pool:\n    name: {pool}\n    work_queue_name: q1\n"
            "    job_variables: {env: {TOKEN: '{{ prefect.blocks.secret.SECRETNAME }}'}}\n"
            "  tags: [team-a]\n  description: nightly load\n  concurrency_limit: 2\n"
            "  schedules:\n  - cron: '0 3 * * *'\n    timezone: UTC\n" + extra)


@pytest.fixture
def deployed(server: PrefectServer, project: Path, cli: type[CliRunner], uid: str) -> dict[str, Any]:
    """A project deployed once to the server, with a secret block and a pool created by --create-pool."""
    flow, pool, secret_name = f"hello-{uid}", f"pool-{uid}", f"tok-{uid}"
    sentinel = f"sentinel-{uid}-value"
    created = cli.run("block", "create", "secret", secret_name, "--value", "-", input=sentinel + "\n")
    assert created.code == 0, created.output
    write_project(project, flow, deployments_yaml(flow, pool).replace("SECRETNAME", secret_name))
    result = cli.run("deploy", "--all", "--create-pool")
    assert result.code == 0, result.output
    assert f"{flow}/daily: created" in result.stdout
    return {"flow": flow, "pool": pool, "name": f"{flow}/daily", "sentinel": sentinel, "secret": secret_name}


def test_deploy_writes_the_deployment_as_prefect_deploy_does(server: PrefectServer, deployed: dict[str, Any]) -> None:
    dep = api(server, "GET", f"deployments/name/{deployed['name']}")
    assert dep is not None
    assert dep["entrypoint"] == "flows/hello.py:hello"
    assert dep["parameters"] == {"name": "flowdeck"}
    props = dep["parameter_openapi_schema"]["properties"]
    assert props["name"]["type"] == "string" and props["times"]["default"] == 1
    assert dep["work_pool_name"] == deployed["pool"] and dep["work_queue_name"] == "q1"
    assert dep["tags"] == ["team-a"] and dep["description"] == "nightly load"
    # Prefect keeps a deployment's concurrency limit as a global limit of its own.
    assert dep["global_concurrency_limit"]["limit"] == 2
    assert [s["schedule"]["cron"] for s in dep["schedules"]] == ["0 3 * * *"]
    assert dep["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
    # The block stays a placeholder: the server never holds the resolved secret.
    assert dep["job_variables"]["env"]["TOKEN"] == "{{ prefect.blocks.secret." + deployed["secret"] + " }}"
    assert deployed["sentinel"] not in json.dumps(dep)
    history = api(server, "POST", "artifacts/filter", {})
    assert deployed["sentinel"] not in json.dumps(history)


def test_redeploy_unchanged_writes_nothing_and_a_change_keeps_schedule_ids(
        server: PrefectServer, deployed: dict[str, Any], project: Path, cli: type[CliRunner]) -> None:
    before = api(server, "GET", f"deployments/name/{deployed['name']}")
    again = cli.run("deploy", "--all")
    assert again.code == 0, again.output
    assert "unchanged" in again.stdout
    assert api(server, "GET", f"deployments/name/{deployed['name']}")["updated"] == before["updated"]
    dry = cli.run("deploy", "--all", "--dry-run", "--param", "name=changed")
    assert dry.code == 0 and "would update" in dry.stdout, dry.output
    changed = cli.run("deploy", "--all", "--param", "name=changed")
    assert changed.code == 0 and "updated" in changed.stdout, changed.output
    after = api(server, "GET", f"deployments/name/{deployed['name']}")
    assert after["parameters"] == {"name": "changed"}
    assert [s["id"] for s in after["schedules"]] == [s["id"] for s in before["schedules"]]
    forced = cli.run("deploy", "--all", "--param", "name=changed", "--force")
    assert forced.code == 0 and "updated" in forced.stdout, forced.output


def test_history_rollback_and_run_a_version_from_another_machine(
        server: PrefectServer, deployed: dict[str, Any], project: Path, cli: type[CliRunner],
        tmp_path: Path) -> None:
    assert cli.run("deploy", "--all", "--param", "name=second").code == 0
    other = {"FLOWDECK_HOME": str(tmp_path / "other-machine")}
    history = cli.run("deployment", "history", deployed["name"], "--json", env=other)
    assert history.code == 0, history.output
    versions = json.loads(history.stdout)
    assert [v["revision"] for v in versions] == [1, 2] and versions[1]["live"]
    rolled = cli.run("deployment", "rollback", deployed["name"], env=other)
    assert rolled.code == 0 and "revision 1" in rolled.stdout, rolled.output
    assert api(server, "GET", f"deployments/name/{deployed['name']}")["parameters"] == {"name": "flowdeck"}
    shown = cli.run("deployment", "show", deployed["name"], "--json", env=other)
    assert json.loads(shown.stdout)["revision"] == 1
    run = cli.run("run", deployed["name"], "--version", "2", "--idempotency-key", "k-" + deployed["flow"],
                  env=other)
    assert run.code == 0, run.output
    assert json.loads(run.stdout) == {"greeting": "hello second"}
    runs = api(server, "POST", "flow_runs/filter", {"flow_runs": {"idempotency_key": {"any_": [
        "k-" + deployed["flow"]]}}})
    assert len(runs) == 1 and runs[0]["state_type"] == "COMPLETED"
    assert runs[0]["labels"]["flowdeck.revision"] == "2"
    logs = api(server, "POST", "logs/filter", {"logs": {"flow_run_id": {"any_": [runs[0]["id"]]}}})
    messages = [entry["message"] for entry in logs]
    assert any("running revision 2" in m for m in messages) and "flowdeck: run completed" in messages
    again = cli.run("run", deployed["name"], "--idempotency-key", "k-" + deployed["flow"], env=other)
    assert again.code == 0 and "not run again" in again.stderr, again.output
    promoted = cli.run("deployment", "promote", deployed["name"], "--to", "2", env=other)
    assert promoted.code == 0, promoted.output
    assert api(server, "GET", f"deployments/name/{deployed['name']}")["parameters"] == {"name": "second"}
    removed = cli.run("deployment", "rm", deployed["name"], env=other)
    assert removed.code == 0, removed.output
    assert api(server, "GET", f"deployments/name/{deployed['name']}") is None


def test_pull_and_run_resolve_blocks_from_the_server(
        server: PrefectServer, project: Path, cli: type[CliRunner], uid: str, tmp_path: Path) -> None:
    flow = f"blocks-{uid}"
    assert cli.run("variable", "set", f"greet_{uid}", "from-server").code == 0
    write_project(project, flow, f"- name: v\n  entrypoint: flows/hello.py:hello\n  flow_name: {flow}\n"
                                 f"  parameters: {{name: '{{{{ prefect.variables.greet_{uid} }}}}'}}\n")
    assert cli.run("deploy", "--all").code == 0
    other = {"FLOWDECK_HOME": str(tmp_path / "worker")}
    pulled = cli.run("pull", f"{flow}/v", "--json", env=other)
    assert pulled.code == 0, pulled.output
    assert json.loads(pulled.stdout)["directory"] == str(project)
    ran = cli.run("run", f"{flow}/v", env=other)
    assert ran.code == 0, ran.output
    assert json.loads(ran.stdout) == {"greeting": "hello from-server"}


def test_missing_work_pool_names_it_and_the_command_that_creates_it(
        server: PrefectServer, project: Path, cli: type[CliRunner], uid: str) -> None:
    write_project(project, f"nopool-{uid}", f"- name: x\n  entrypoint: flows/hello.py:hello\n"
                                            f"  flow_name: nopool-{uid}\n  work_pool: {{name: missing-{uid}}}\n")
    result = cli.run("deploy", "--all")
    assert result.code == 1
    assert f"work pool 'missing-{uid}' does not exist" in result.stderr
    assert f"prefect work-pool create missing-{uid}" in result.stderr and "Traceback" not in result.output
    assert api(server, "GET", f"deployments/name/nopool-{uid}/x") is None


def test_prefect_deploy_flags_as_ci_scripts_write_them(
        server: PrefectServer, project: Path, cli: type[CliRunner], uid: str) -> None:
    flow = f"flags-{uid}"
    write_project(project, flow, f"- name: x\n  entrypoint: flows/hello.py:hello\n  flow_name: {flow}\n")
    result = cli.run("--no-prompt", "deploy", "--name", "x", "-p", f"pool-{uid}", "-q", "fast", "--create-pool",
                     "--cron", "0 5 * * *", "--timezone", "Europe/Paris", "--params", '{"times": 2}',
                     "-jv", "image=python:3.12", "--description", "from CI", "--version", "1.2.3",
                     "-t", "ci", "--concurrency-limit", "3", "--enforce-parameter-schema")
    assert result.code == 0, result.output
    dep = api(server, "GET", f"deployments/name/{flow}/x")
    assert dep["work_pool_name"] == f"pool-{uid}" and dep["work_queue_name"] == "fast"
    assert dep["schedules"][0]["schedule"]["cron"] == "0 5 * * *"
    assert dep["schedules"][0]["schedule"]["timezone"] == "Europe/Paris"
    assert dep["parameters"] == {"times": 2} and dep["job_variables"] == {"image": "python:3.12"}
    assert dep["description"] == "from CI" and dep["version"] == "1.2.3" and dep["tags"] == ["ci"]
    assert dep["global_concurrency_limit"]["limit"] == 3 and dep["enforce_parameter_schema"] is True


def test_deploy_all_is_atomic_when_the_server_rejects_one(
        server: PrefectServer, project: Path, cli: type[CliRunner], uid: str) -> None:
    flow = f"atomic-{uid}"
    good = f"- name: good\n  entrypoint: flows/hello.py:hello\n  flow_name: {flow}\n"
    write_project(project, flow, good)
    assert cli.run("deploy", "--all").code == 0
    write_project(project, flow, good.replace("\n  flow_name", "\n  parameters: {times: 5}\n  flow_name")
                  + f"- name: new\n  entrypoint: flows/hello.py:hello\n  flow_name: {flow}\n"
                  + f"- name: bad\n  entrypoint: flows/hello.py:hello\n  flow_name: {flow}\n  concurrency_limit: 0\n")
    result = cli.run("deploy", "--all")
    assert result.code == 1
    assert f"deployment '{flow}/bad'" in result.stderr and "concurrency_limit: Input should be greater than 0" \
        in result.stderr, result.output
    # What was live before is live again; what did not exist does not.
    assert api(server, "GET", f"deployments/name/{flow}/good")["parameters"] == {}
    assert api(server, "GET", f"deployments/name/{flow}/new") is None
    history = json.loads(cli.run("deployment", "history", f"{flow}/good", "--json").stdout)
    assert [(v["revision"], v["live"]) for v in history] == [(1, True)]


def test_a_deployment_made_by_prefect_runs_with_flowdeck(
        server: PrefectServer, project: Path, cli: type[CliRunner], uid: str) -> None:
    """No flowdeck record: the deployment the server holds is what pull and run use (revision 0)."""
    (project / "flows").mkdir()
    (project / "flows" / "hello.py").write_text("def hello(name='x'):\n    return 'made by prefect ' + name\n")
    flow = api(server, "POST", "flows/", {"name": f"native-{uid}"})
    api(server, "POST", "deployments/", {
        "name": "d", "flow_id": flow["id"], "entrypoint": "flows/hello.py:hello", "parameters": {"name": "p"},
        "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}]})
    ran = cli.run("run", f"native-{uid}/d")
    assert ran.code == 0, ran.output
    assert json.loads(ran.stdout) == "made by prefect p"


def test_names_with_spaces_and_accents_round_trip(
        server: PrefectServer, project: Path, cli: type[CliRunner], uid: str) -> None:
    # Prefect allows spaces and any letters in flow and deployment names; they travel in URL paths.
    flow, name = f"hello {uid}", "nächtlich run"
    write_project(project, flow, f"- name: {name}\n  flow_name: {flow}\n  entrypoint: flows/hello.py:hello\n"
                                 f"  work_pool: {{name: pool-{uid}}}\n")
    assert cli.run("deploy", "--all", "--create-pool").code == 0
    shown = cli.run("deployment", "show", f"{flow}/{name}", "--json")
    assert shown.code == 0 and json.loads(shown.stdout)["revision"] == 1, shown.output
    history = cli.run("deployment", "history", f"{flow}/{name}", "--json")
    assert history.code == 0 and len(json.loads(history.stdout)) == 1, history.output
    removed = cli.run("deployment", "rm", f"{flow}/{name}")
    assert removed.code == 0, removed.output
