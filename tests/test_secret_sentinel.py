"""A sentinel secret goes into every kind of block; no command of the store ever prints it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from flowdeck.store import db_path
from tests.conftest import CliResult, run_cli

SENTINEL = "SeNtInEl-7f3a9c-do-not-print"


def _assert_clean(result: CliResult) -> None:
    assert SENTINEL not in result.output, result.output
    # Partial leaks too: the middle of the sentinel never shows.
    assert "7f3a9c" not in result.output, result.output


def test_the_sentinel_never_appears_in_any_output_of_the_store_commands() -> None:
    env = {"FLOWDECK_BLOCK__GITHUB_CREDENTIALS__CI": json.dumps({"token": SENTINEL})}
    runs: list[CliResult] = [
        run_cli("block", "create", "secret", "tok", "--value", "-", input=SENTINEL + "\n"),
        run_cli(
            "block",
            "create",
            "aws-credentials",
            "aws",
            "--field",
            "aws_access_key_id=AKIA",
            "--field",
            "aws_secret_access_key=-",
            input=SENTINEL,
        ),
        run_cli(
            "block",
            "create",
            "azure-blob-storage-credentials",
            "az",
            "--value",
            "-",
            input=json.dumps({"connection_string": f"AccountKey={SENTINEL};"}),
        ),
        run_cli(
            "block",
            "create",
            "gcp-credentials",
            "gcp",
            "--value",
            "-",
            input=json.dumps({"service_account_info": {"type": "service_account", "private_key": SENTINEL}}),
        ),
        run_cli(
            "block",
            "create",
            "docker-registry-credentials",
            "reg",
            "--field",
            "username=u",
            "--field",
            f"password={SENTINEL}",
            "--field",
            "registry_url=127.0.0.1:5000",
        ),
        run_cli(
            "block", "create", "bitbucket-credentials", "bb", "--value", json.dumps({"password": SENTINEL})
        ),
    ]
    for result in runs:
        assert result.code == 0, result.stderr
    runs += [
        # Error paths, each holding the sentinel somewhere in its input.
        run_cli("block", "create", "secret", "tok", "--value", "-", input=SENTINEL),  # already exists
        run_cli(
            "block", "create", "github-credentials", "x", "--value", '{"token": "' + SENTINEL
        ),  # bad JSON
        run_cli("block", "create", "github-credentials", "x", "--value", json.dumps({"token": [SENTINEL]})),
        run_cli("block", "create", "github-credentials", "x", "--value", json.dumps({"tokn": SENTINEL})),
        run_cli("block", "create", "github-credentials", "x", "--field", f"tokn={SENTINEL}"),
        run_cli("block", "create", "docker-registry-credentials", "x", "--field", f"password={SENTINEL}"),
        run_cli("block", "create", "secret", "Bad.Name", "--value", SENTINEL),
        run_cli("block", "create", "nosuch-type", "x", "--value", SENTINEL),
        run_cli(
            "block",
            "show",
            "github-credentials/nope",
            env={"FLOWDECK_BLOCK__GITHUB_CREDENTIALS__NOPE": '{"token": "' + SENTINEL},
        ),
        # Every reading command.
        run_cli("block", "ls", env=env),
        run_cli("block", "ls", "--json", env=env),
        run_cli("block", "types"),
        *(
            run_cli("block", "show", ref, env=env)
            for ref in (
                "secret/tok",
                "aws-credentials/aws",
                "azure-blob-storage-credentials/az",
                "gcp-credentials/gcp",
                "docker-registry-credentials/reg",
                "bitbucket-credentials/bb",
                "github-credentials/ci",
            )
        ),
        *(
            run_cli("block", "show", ref, "--json", env=env)
            for ref in ("secret/tok", "gcp-credentials/gcp", "github-credentials/ci")
        ),
        run_cli("variable", "set", "v", "x"),
        run_cli("variable", "ls"),
        run_cli("variable", "ls", "--json"),
        run_cli("-v", "block", "ls", env=env),
    ]
    for result in runs:
        _assert_clean(result)
    assert [r.code for r in runs[6:15]] == [1] * 9

    # --reveal is the one way to see it, on purpose.
    revealed = run_cli("block", "show", "secret/tok", "--reveal")
    assert f"value: {SENTINEL}" in revealed.stdout

    # The store is the secret store: it holds the values, readable by the owner only.
    raw = db_path().read_bytes()
    assert SENTINEL.encode() in raw
    assert stat.S_IMODE(db_path().stat().st_mode) == 0o600
    assert stat.S_IMODE(db_path().parent.stat().st_mode) == 0o700


# ---------------------------------------------------------------- multi-line secrets through every command

_FLOW = '''
import os

def show(name: str = "x"):
    """Prints the key the worker was given, line by line, and returns a piece of it."""
    key = os.environ.get("SENTINEL_KEY", "")
    for line in key.splitlines():
        print(line)
    return {"head": key[:200]}
'''

# Each script line runs on its own (run_shell_script); `shell: true` gives pipes.
_PRINTS = [
    'printf "%s\\n" "$K"',                                    # whole
    'printf "%s\\n" "$K" | while IFS= read -r l; do echo "$l"; done',  # line by line
    'printf "%s" "$K" | head -c 700; echo',                   # partial, ends mid-line
    'printf "%s\\n" "$K" | cut -c1-20',                       # the start of every line
    'printf "%s\\n" "$K" | cut -c8-40',                       # the middle of every line
    'printf "%s\\n" "$S"',                                    # the service-account JSON whole
    "{python} -c 'import json,os; print(json.loads(os.environ[\"S\"])[\"private_key\"])'",  # its decoded key
    "{python} -c 'import json,os; print(json.dumps(os.environ[\"K\"]))'",  # JSON-escaped
    "{python} -c 'import os; print(repr(os.environ[\"K\"]))'",             # repr
]


def _shell_step(step_id: str, lines: list[str]) -> str:
    import sys

    script = "\n".join("      " + line.format(python=sys.executable) for line in lines)
    return (f"- prefect.deployments.steps.run_shell_script:\n    id: {step_id}\n    shell: true\n"
            f"    script: |\n{script}\n"
            "    env:\n      K: '{{ prefect.blocks.secret.pem }}'\n      S: '{{ prefect.blocks.secret.sa }}'\n")


def _key_pieces(pem: str) -> list[str]:
    """Every 12-character piece of the key material (what must never show)."""
    return [line[i:i + 12] for line in pem.splitlines()[1:-1] for i in range(0, len(line) - 11, 6)]


def test_a_pem_key_and_a_service_account_json_never_show_in_any_command(tmp_path: Path) -> None:
    import os

    from tests.conftest import write_tree
    from tests.secret_fixtures import make_pem, service_account_json

    pem = make_pem()
    sa_pem = make_pem.__wrapped__()  # a second key, inside the service-account JSON
    info = service_account_json(sa_pem)
    project = tmp_path / "proj"
    write_tree(project, {
        "flows/show.py": _FLOW,
        "prefect.yaml": (
            "build:\n" + _shell_step("printed", _PRINTS)
            + "pull:\n- prefect.deployments.steps.set_working_directory:\n    directory: " + str(project) + "\n"
            + _shell_step("pulled", _PRINTS[:5])
            + "deployments:\n- name: d\n  entrypoint: flows/show.py:show\n  work_pool: {name: pool}\n"
        ),
    })
    env = {"FLOWDECK_BLOCK__SECRET__PEM": pem, "FLOWDECK_BLOCK__SECRET__SA": info}
    runs = {
        "steps run": run_cli("steps", "run", "build", cwd=project, env=env),
        "steps run --json": run_cli("steps", "run", "build", "--json", cwd=project, env=env),
        "steps run pull": run_cli("steps", "run", "pull", cwd=project, env=env),
        "deploy --dry-run": run_cli("deploy", "--dry-run", cwd=project, env=env),
        "deploy": run_cli("deploy", cwd=project, env=env),
        "-v deploy --force": run_cli("-v", "deploy", "--force", cwd=project, env=env),
        "pull": run_cli("pull", "d", "--dir", str(tmp_path / "pulled"), cwd=project, env=env),
        "run": run_cli("run", "d", cwd=project, env={**env, "SENTINEL_KEY": pem}),
        "run ls": run_cli("run", "ls", "--json", cwd=project, env=env),
        "deployment show": run_cli("deployment", "show", "d", "--json", cwd=project, env=env),
        "block show": run_cli("block", "show", "secret/pem", cwd=project, env=env),
        "block show sa": run_cli("block", "show", "secret/sa", "--json", cwd=project, env=env),
    }
    # Errors: a step that prints the key to stderr and fails.
    yaml_path = project / "prefect.yaml"
    yaml_path.write_text("push:\n" + _shell_step("failing", ['printf "%s\\n" "$K" >&2; exit 3'])
                         + yaml_path.read_text())
    runs["error"] = run_cli("steps", "run", "push", cwd=project, env=env)
    runs["error --json"] = run_cli("steps", "run", "push", "--json", cwd=project, env=env)
    runs["deploy error"] = run_cli("deploy", "--force", cwd=project, env=env)
    assert runs["steps run"].code == 0, runs["steps run"].output
    assert runs["error"].code == 1 and runs["deploy error"].code == 1, runs["error"].output
    assert runs["deploy"].code == 0, runs["deploy"].output[-3000:]
    assert runs["pull"].code == 0 and runs["run"].code == 0, runs["run"].output
    assert "********" in runs["steps run"].output and "********" in runs["pull"].output
    pieces = _key_pieces(pem) + _key_pieces(sa_pem)
    for name, result in runs.items():
        leaked = [piece for piece in pieces if piece in result.output]
        assert not leaked, f"{name} shows key material: {leaked[:3]}\n{result.output[:3000]}"
        assert "3f9a1c0d7e6b5a49" not in result.output, name  # the private_key_id
    # Nothing stored holds any of it (the blocks came from the environment, so the store holds no block).
    home = Path(os.environ["FLOWDECK_HOME"])
    raw = b"".join(path.read_bytes() for path in home.rglob("*") if path.is_file())
    for piece in pieces:
        assert piece.encode() not in raw, piece


_SHAPES = ['plain-SeNtInEl-1', 'quo"te-SeNtInEl-2', 'back\\slash-SeNtInEl-3', 'tab\tSeNtInEl-4',
           'new\nline-SeNtInEl-5', 'non-ascii-séñtïnél-6', "single'quote SeNtInEl-7"]


@pytest.mark.parametrize("value", _SHAPES)
def test_a_secret_of_any_shape_printed_by_a_step_never_shows(tmp_path: Path, value: str) -> None:
    import sys

    from tests.conftest import write_tree

    script = "\n".join("      " + line for line in [
        'printf "%s\\n" "$K"',
        f"{sys.executable} -c 'import os, json, shlex; k = os.environ[\"K\"]; "
        "print(json.dumps(k), repr(k), shlex.quote(k), json.dumps(k, ensure_ascii=False))'",
    ])
    write_tree(tmp_path, {"prefect.yaml": (
        "build:\n- prefect.deployments.steps.run_shell_script:\n    id: s\n    shell: true\n"
        f"    script: |\n{script}\n    env:\n      K: '{{{{ prefect.blocks.secret.tok }}}}'\n")})
    env = {"FLOWDECK_BLOCK__SECRET__TOK": value}
    for args in (("steps", "run", "build"), ("steps", "run", "build", "--json")):
        result = run_cli(*args, cwd=tmp_path, env=env)
        assert result.code == 0, result.output
        for word in ("SeNtInEl", "séñtïnél", "s\\u00e9\\u00f1t"):
            assert word not in result.output, (args, result.output)
