"""The CLI's contract: help, exit codes, one-line errors, JSON output."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from flowdeck import cli
from flowdeck.errors import UsageError
from tests.conftest import run_cli


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.code == 0
    for command in ("validate", "steps"):
        assert command in result.stdout


def test_help_does_not_import_cloud_sdks() -> None:
    code = (
        "import sys\nfrom flowdeck.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'azure', 'google', 'jsonschema')]\n"
        "print('IMPORTED:' + ','.join(bad))\n"
    )
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "IMPORTED:"


def test_validate_ok_and_invalid_exit_codes(project: Path) -> None:
    (project / "prefect.yaml").write_text("deployments:\n- name: d\n  entrypoint: f.py:f\n")
    ok = run_cli("validate", cwd=project)
    assert (ok.code, ok.stdout.strip()) == (0, "prefect.yaml is valid")
    (project / "prefect.yaml").write_text("deployments:\n- name: d\n  entrypoint: f.py:f\n  pool: x\n  version: 1.5\n")
    bad = run_cli("validate", cwd=project)
    assert bad.code == 1
    assert bad.stderr.splitlines() == [
        "prefect.yaml:4:3: warning: deployments[0].pool: unknown deployment key 'pool' is ignored "
        "(hint: did you mean 'work_pool'?)",
        "prefect.yaml:5:12: error: deployments[0].version: must be a string (or empty), not a number "
        "(hint: quote it: version: \"1.5\")",
        "prefect.yaml: 1 error, 1 warning",
    ]


def test_validate_json_is_machine_readable(project: Path) -> None:
    (project / "prefect.yaml").write_text("build:\n- prefect.deployments.steps.run_shell_script: {}\n"
                                          "deployments:\n- name: d\n  entrypoint: f.py:f\n")
    result = run_cli("validate", "--json", cwd=project)
    assert result.code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False
    (problem,) = data["problems"]
    assert problem == {
        "severity": "error", "code": "missing-argument",
        "message": "run_shell_script is missing its required argument 'script'", "file": "prefect.yaml",
        "line": 2, "column": 47, "key_path": "build[0].prefect.deployments.steps.run_shell_script",
        "hint": "add `script: ...` indented under `prefect.deployments.steps.run_shell_script:`",
    }


def test_a_syntax_error_shows_the_line_and_a_caret(project: Path) -> None:
    (project / "prefect.yaml").write_text("deployments:\n- name: a\n  description: a: b\n")
    result = run_cli("validate", cwd=project)
    assert result.code == 1
    assert result.stderr.splitlines()[:3] == [
        "prefect.yaml:3:17: error: YAML syntax error: mapping values are not allowed here "
        "(hint: quote a value that contains ': ', or check the indentation of this line)",
        "     3 |   description: a: b",
        "       |                 ^",
    ]


def test_missing_file_is_a_user_error(project: Path) -> None:
    result = run_cli("validate", cwd=project)
    assert result.code == 1
    assert "prefect.yaml not found" in result.stderr


def test_usage_errors_exit_2() -> None:
    assert run_cli("steps", "run").code == 2
    assert run_cli("steps", "run", "deploy").code == 2
    assert run_cli("nonsense").code == 2


def test_steps_list_shows_canonical_names_and_aliases() -> None:
    result = run_cli("steps", "list", "--json")
    assert result.code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    git = rows["flowdeck.steps.git_clone"]
    assert "prefect.deployments.steps.git_clone" in git["aliases"]
    assert "prefect.projects.steps.git_clone_project" in git["aliases"]
    assert "prefect_gcp.deployment.steps.push_to_gcs" in rows["flowdeck.steps.push_to_gcs"]["aliases"]
    assert {"name": "repository", "required": True, "types": ["string"]} in git["arguments"]


def test_an_unexpected_exception_exits_3_and_writes_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("boom")

    real = cli.build_parser

    def parser(command: str | None = None) -> argparse.ArgumentParser:
        p = real(command)
        p.set_defaults(func=explode)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)
    assert cli.main([]) == 3
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "internal error: ZeroDivisionError: boom"
    log = Path(err[1].rsplit(" ", 1)[-1])
    assert "ZeroDivisionError" in log.read_text()
    log.unlink()


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    real = cli.build_parser

    def parser(command: str | None = None) -> argparse.ArgumentParser:
        p = real(command)
        p.set_defaults(func=interrupt)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)
    assert cli.main([]) == 130


def test_flow_run_builds_only_its_own_commands() -> None:
    # What a Prefect worker launches before each flow run: no other command's parser is built.
    assert cli._command_of(["-q", "flow-run", "execute"]) == "flow-run"
    assert cli._command_of(["--version"]) is None
    assert cli._command_of(["-v", "deploy", "--all"]) == "deploy"
    parser = cli.build_parser("flow-run")
    args = parser.parse_args(["-q", "flow-run", "execute", "abc", "--grace", "3"])
    assert (args.flow_run_id, args.grace, args.quiet) == ("abc", 3.0, True)
    with pytest.raises(UsageError, match="choose from 'flow-run'"):
        parser.parse_args(["deploy"])
