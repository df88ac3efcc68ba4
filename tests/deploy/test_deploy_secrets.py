"""What deploy stores never holds a secret, whatever way it came in (README: "the store never holds a secret")."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from flowdeck.templating import apply_values
from tests.conftest import CliResult, run_cli

SENTINEL = "SeNtInEl-store-5b7e1d-value"


def _store_bytes() -> bytes:
    """Every byte flowdeck keeps under FLOWDECK_HOME (the database, its journal, anything else)."""
    home = Path(os.environ["FLOWDECK_HOME"])
    return b"".join(path.read_bytes() for path in home.rglob("*") if path.is_file())


def _set_yaml(project: Path, text: str) -> None:
    (project / "prefect.yaml").write_text(text)


def _deployment(extra: str = "", pull: str | None = None, build: str = "") -> str:
    pull = pull if pull is not None else "- prefect.deployments.steps.set_working_directory:\n    directory: /tmp\n"
    return (f"build:\n{build}" if build else "") + f"pull:\n{pull}" + (
        "deployments:\n- name: daily\n  entrypoint: flows/hello.py:hello\n  parameters: {name: flowdeck}\n"
        "  work_pool:\n    name: pool\n    job_variables:\n      env:\n" + extra)


def _record(project: Path) -> dict[str, object]:
    show = run_cli("deployment", "show", "daily", "--json", cwd=project)
    assert show.code == 0, show.output
    record: dict[str, object] = json.loads(show.stdout)["record"]
    return record


SECRET_NAMES = ["GITHUB_TOKEN", "DEPLOY_KEY", "SIGNING_KEY", "GH_PAT", "DB_PASS", "PASSWD", "CREDENTIALS",
                "PRIVATE", "AUTH", "TLS_CERT", "PEM", "API_KEY", "ACCESS_KEY", "SAS", "CONN_STR",
                "CONNECTION_STRING", "apiKey"]


def test_secret_named_variables_stay_placeholders_also_inside_expressions(flow_project: Path) -> None:
    lines = "".join(f"        V_{i}: '{{{{ ${name} }}}}'\n" for i, name in enumerate(SECRET_NAMES))
    lines += "        TRIMMED: '{{ $GITHUB_TOKEN | trim }}'\n        JOINED: \"{{ 'x-' ~ $GH_PAT }}\"\n"
    lines += "        REGION: '{{ $REGION | upper }}'\n        MONKEY: '{{ $MONKEY }}'\n"
    _set_yaml(flow_project, _deployment(lines))
    env = {name: f"{SENTINEL}-{i}" for i, name in enumerate(SECRET_NAMES)}
    result = run_cli("deploy", cwd=flow_project, env={**env, "REGION": "eu", "MONKEY": "banana"})
    assert result.code == 0, result.output
    stored = _record(flow_project)["work_pool"]["job_variables"]["env"]  # type: ignore[index]
    for i, name in enumerate(SECRET_NAMES):
        assert stored[f"V_{i}"] == f"{{{{ ${name} }}}}", name
    assert stored["TRIMMED"] == "{{ $GITHUB_TOKEN | trim }}"
    assert stored["JOINED"] == "{{ 'x-' ~ $GH_PAT }}"
    assert stored["REGION"] == "EU" and stored["MONKEY"] == "banana"
    assert SENTINEL.encode() not in _store_bytes()
    assert SENTINEL not in result.output


def test_apply_values_keeps_secret_env_expressions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASS", SENTINEL)
    template = {"a": "{{ $DB_PASS | trim }}", "b": "{{ $DB_PASS }}", "c": "x{{ $DB_PASS }}"}
    assert apply_values(template, {}, keep_secret_env=True) == template
    assert apply_values(template, {})["a"] == SENTINEL


def _assert_refused(result: CliResult, line: int) -> None:
    assert result.code == 1, result.output
    assert f"prefect.yaml:{line}:" in result.stderr, result.stderr
    assert "derived from a secret" in result.stderr and "prefect.blocks.secret" in result.stderr
    assert SENTINEL not in result.output
    assert SENTINEL.encode() not in _store_bytes()
    assert b"2lOdEluRWw" not in _store_bytes()  # nor its base64


@pytest.mark.parametrize("command", [
    "printf %s \"$K\"",  # the value itself
    "sh -c 'printf %s \"$K\" | base64'",  # derived: not the value, but computed from it
])
def test_a_secret_passed_through_a_build_output_into_pull_steps_is_refused(flow_project: Path, command: str) -> None:
    build = ("- prefect.deployments.steps.run_shell_script:\n    id: leak\n    shell: true\n"
             f"    script: {json.dumps(command)}\n    env:\n      K: '{{{{ prefect.blocks.secret.tok }}}}'\n")
    pull = ("- prefect.deployments.steps.run_shell_script:\n"
            "    script: echo '{{ leak.stdout }}'\n")
    _set_yaml(flow_project, _deployment("        X: y\n", pull=pull, build=build))
    env = {"FLOWDECK_BLOCK__SECRET__TOK": SENTINEL}
    _assert_refused(run_cli("deploy", cwd=flow_project, env=env), line=10)
    # In a deployment field too, through an expression.
    _set_yaml(flow_project, _deployment("        X: \"{{ leak.stdout | upper }}\"\n", build=build))
    _assert_refused(run_cli("deploy", cwd=flow_project, env=env), line=19)


def test_outputs_of_steps_without_secrets_are_still_templated(flow_project: Path) -> None:
    build = ("- prefect.deployments.steps.run_shell_script:\n    id: tag\n"
             "    script: echo v1.2\n")
    _set_yaml(flow_project, _deployment("        TAG: '{{ tag.stdout }}'\n", build=build))
    result = run_cli("deploy", cwd=flow_project)
    assert result.code == 0, result.output
    assert _record(flow_project)["work_pool"]["job_variables"]["env"]["TAG"] == "v1.2"  # type: ignore[index]


def test_a_token_in_a_repository_url_is_not_stored(flow_project: Path) -> None:
    token = "ghp_" + base64.b32encode(SENTINEL.encode()).decode()[:30]
    pull = ("- prefect.deployments.steps.git_clone:\n"
            f"    repository: https://x-access-token:{token}@github.com/acme/private.git\n"
            "- prefect.deployments.steps.git_clone:\n"
            f"    repository: https://{token}@github.com/acme/other.git\n"
            "- prefect.deployments.steps.git_clone:\n"
            "    repository: '{{ $REPO_URL }}'\n"
            "- prefect.deployments.steps.git_clone:\n"
            "    repository: ssh://git@github.com/acme/ssh.git\n")
    _set_yaml(flow_project, _deployment("        X: y\n", pull=pull))
    result = run_cli("deploy", cwd=flow_project, env={"REPO_URL": f"https://bot:{token}@gitlab.com/a/b.git"})
    assert result.code == 0, result.output
    assert token not in result.output
    assert "prefect.yaml:3:" in result.stderr and "credentials written in this URL are not stored" in result.stderr
    steps = _record(flow_project)["pull_steps"]
    assert [step["prefect.deployments.steps.git_clone"]["repository"] for step in steps] == [  # type: ignore[attr-defined]
        "https://github.com/acme/private.git", "https://github.com/acme/other.git",
        "https://gitlab.com/a/b.git", "ssh://git@github.com/acme/ssh.git"]
    assert token.encode() not in _store_bytes()
