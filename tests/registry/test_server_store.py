"""Blocks, variables, credentials and concurrency against a real Prefect server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, CliRunner
from tests.registry.conftest import write_project
from tests.servers.prefect import PrefectServer


def test_blocks_on_the_server_keep_secrets_out_of_output(
        server: PrefectServer, cli: type[CliRunner], uid: str) -> None:
    sentinel = f"sentinel-{uid}-token"
    name = f"gh-{uid}"
    made = cli.run("block", "create", "github-credentials", name, "--field", "token=-", input=sentinel)
    assert made.code == 0, made.output
    listed = cli.run("block", "ls", "--json")
    assert listed.code == 0, listed.output
    assert any(b["name"] == name and b["source"] == "server" for b in json.loads(listed.stdout))
    shown = cli.run("block", "show", f"github-credentials/{name}")
    assert shown.code == 0, shown.output
    assert sentinel not in shown.output and "token" in shown.stdout
    again = cli.run("block", "create", "github-credentials", name, "--field", "token=-", input="x")
    assert again.code == 1 and "already exists" in again.stderr
    removed = cli.run("block", "rm", f"github-credentials/{name}")
    assert removed.code == 0, removed.output
    gone = cli.run("block", "show", f"github-credentials/{name}")
    assert gone.code == 1 and "not found" in gone.stderr


def test_environment_block_wins_over_the_server(
        server: PrefectServer, project: Path, cli: type[CliRunner], uid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowdeck.registry import current

    assert cli.run("block", "create", "secret", f"s-{uid}", "--value", "-", input="from-server").code == 0
    assert current().find_block("secret", f"s-{uid}").data == {"value": "from-server"}  # type: ignore[union-attr]
    monkeypatch.setenv(f"FLOWDECK_BLOCK__SECRET__S_{uid.upper()}", "from-env")
    assert current().find_block("secret", f"s-{uid}").data == {"value": "from-env"}  # type: ignore[union-attr]


def test_variables_on_the_server(server: PrefectServer, cli: type[CliRunner], uid: str) -> None:
    name = f"window_{uid}"
    assert cli.run("variable", "set", name, '{"days": 3}', "--json").code == 0
    got = cli.run("variable", "get", name, "--json")
    assert got.code == 0 and json.loads(got.stdout) in ({"days": 3}, {"name": name, "value": {"days": 3}}), got.output
    assert cli.run("variable", "set", name, "plain").code == 0
    listed = cli.run("variable", "ls", "--json")
    assert name in listed.stdout
    assert cli.run("variable", "rm", name).code == 0
    missing = cli.run("variable", "rm", name)
    assert missing.code == 1 and "no variable" in missing.stderr


@pytest.mark.parametrize("credential", [None, "flowdeck:wrong-sentinel-password"])
def test_a_wrong_or_missing_credential_fails_cleanly(
        server: PrefectServer, project: Path, cli: type[CliRunner], uid: str,
        monkeypatch: pytest.MonkeyPatch, credential: str | None) -> None:
    if credential is None:
        monkeypatch.delenv("PREFECT_API_AUTH_STRING")
    else:
        monkeypatch.setenv("PREFECT_API_AUTH_STRING", credential)
    write_project(project, f"auth-{uid}", f"- name: x\n  entrypoint: flows/hello.py:hello\n  flow_name: auth-{uid}\n")
    for args in (("deploy", "--all"), ("variable", "ls"), ("deployment", "ls")):
        result = cli.run(*args)
        assert result.code == 1, result.output
        assert "refused the credentials (HTTP 401)" in result.stderr
        assert "PREFECT_API_AUTH_STRING" in result.stderr
        assert "Traceback" not in result.output and "wrong-sentinel-password" not in result.output
        assert server.password not in result.output


def test_api_flag_and_flowdeck_variables_override_prefect_api_url(
        server: PrefectServer, cli: type[CliRunner], uid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.delenv("PREFECT_API_AUTH_STRING")
    monkeypatch.setenv("FLOWDECK_API_AUTH_STRING", server.auth_string)
    unreachable = cli.run("variable", "ls")
    assert unreachable.code == 1 and "cannot reach the Prefect server at http://127.0.0.1:9/api" in unreachable.stderr
    via_flag = cli.run("variable", "set", f"v_{uid}", "x", "--api", server.url)
    assert via_flag.code == 0, via_flag.output
    monkeypatch.setenv("FLOWDECK_API_URL", server.url)
    assert f"v_{uid}" in cli.run("variable", "ls").stdout


def test_without_a_server_the_embedded_store_is_used(cli: type[CliRunner], uid: str) -> None:
    from flowdeck.registry import choose, current
    from flowdeck.registry.embedded import EmbeddedRegistry

    choose.reset()
    assert isinstance(current(), EmbeddedRegistry)
    assert cli.run("variable", "set", f"local_{uid}", "x").code == 0
    assert f"local_{uid}" in cli.run("variable", "ls").stdout


def test_eight_concurrent_deploys_lose_no_version(
        server: PrefectServer, project: Path, uid: str) -> None:
    flow = f"conc-{uid}"
    write_project(project, flow, f"- name: x\n  entrypoint: flows/hello.py:hello\n  flow_name: {flow}\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "flowdeck", "deploy", "--all", "--param", f"times={i}"],
                              cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    from flowdeck.registry import current

    versions = current().list_versions(f"{flow}/x")
    assert len(versions) == 8
    assert sorted(v.record["parameters"]["times"] for v in versions) == list(range(8))
    assert sum(v.live for v in versions) == 1


def test_a_block_type_only_the_server_knows_is_created_resolved_and_masked(
        server: PrefectServer, project: Path, cli: type[CliRunner], uid: str) -> None:
    sentinel = f"https://hooks.example.invalid/sentinel-{uid}"
    made = cli.run("block", "create", "slack-webhook", f"hook-{uid}", "--field", "url=-", input=sentinel)
    assert made.code == 0, made.output
    assert "slack-webhook" in cli.run("block", "ls", "--type", "slack-webhook").stdout
    shown = cli.run("block", "show", f"slack-webhook/hook-{uid}")
    assert shown.code == 0 and sentinel not in shown.output, shown.output
    # A build step that prints the resolved secret: the server's value is masked in the output.
    (project / "flows").mkdir()
    (project / "flows" / "hello.py").write_text("def hello():\n    return 1\n")
    (project / "prefect.yaml").write_text(
        "build:\n- prefect.deployments.steps.run_shell_script:\n"
        f"    script: echo {{{{ prefect.blocks.slack-webhook.hook-{uid}.url }}}}\n    stream_output: true\n"
        f"deployments:\n- name: x\n  entrypoint: flows/hello.py:hello\n  flow_name: masked-{uid}\n")
    deployed = cli.run("deploy", "--all")
    assert deployed.code == 0, deployed.output
    assert sentinel not in deployed.output and "********" in deployed.output
