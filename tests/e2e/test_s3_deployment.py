"""An S3-backed deployment, end to end through the CLI, on SeaweedFS (which checks every signature).

``flowdeck init --recipe s3`` with a credentials block, ``flowdeck deploy``, then ``flowdeck run`` from an
unrelated directory: the worker resolves the block, downloads the code from S3 into the run's directory
and imports the flow from there. An edit and a second deploy record a new version whose run returns the
new value. The stored version keeps the block reference, never the secret key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.e2e.helpers import Backend, cli_ok, init_recipe, name_deployment, storage_backend, tree, write_project

PULL_STEP = "prefect_aws.deployments.steps.pull_from_s3"


@pytest.fixture
def seaweedfs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """A fresh bucket on SeaweedFS, whose credentials are enforced: a run only works with the block."""
    return storage_backend(request, "seaweedfs", monkeypatch)


def test_an_s3_deployment_runs_its_code_from_the_bucket_and_redeploys(
    seaweedfs: Backend, project: Path, tmp_path: Path
) -> None:
    backend = seaweedfs
    assert backend.secret is not None
    backend.create_block(project)
    write_project(project)
    init_recipe(project, "s3", *backend.init_fields())
    name_deployment(project)
    outputs: list[CliResult] = []

    def cli(*args: str, cwd: Path) -> CliResult:
        result = cli_ok(*args, cwd=cwd)
        outputs.append(result)
        return result

    first = json.loads(cli("deploy", "--json", cwd=project).stdout)
    assert [(r["name"], r["status"], r["revision"], r["live"]) for r in first] == [
        ("hello/e2e", "created", 1, True)]
    assert "project/flows/hello.py" in backend.list_keys()

    # The stored version: the pull step with push_code's outputs filled in and the block still a reference.
    show = json.loads(cli("deployment", "show", "e2e", "--json", cwd=tmp_path).stdout)
    assert show["revision"] == 1 and show["live"] is True
    assert show["record"]["entrypoint"] == "flows/hello.py:hello"
    assert show["record"]["pull_steps"] == [{PULL_STEP: {
        "id": "pull_code", "requires": "prefect-aws>=0.3.4", "bucket": backend.name, "folder": "project",
        "credentials": "{{ prefect.blocks.aws-credentials.store }}"}}]

    # A run from a directory that has nothing to do with the project: the code comes from the bucket.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = cli("run", "e2e", "--param", "name=s3", cwd=elsewhere)
    assert json.loads(run.stdout) == "hello s3 v1"
    assert "completed" in run.stderr
    assert list(elsewhere.iterdir()) == []  # a run without --dir works in a scratch directory of its own

    # Edit the flow and deploy again: a new version, and the next run gets the new code from S3.
    flow = project / "flows" / "hello.py"
    flow.write_text(flow.read_text(encoding="utf-8").replace(" v1", " v2"), encoding="utf-8")
    second = json.loads(cli("deploy", "--json", cwd=project).stdout)
    assert [(r["status"], r["revision"], r["live"]) for r in second] == [("updated", 2, True)]
    rerun = cli("run", "e2e", "--param", "name=s3", cwd=elsewhere)
    assert json.loads(rerun.stdout) == "hello s3 v2"
    history = json.loads(cli("deployment", "history", "e2e", "--json", cwd=elsewhere).stdout)
    assert [(v["revision"], v["live"]) for v in history] == [(1, False), (2, True)]
    runs = json.loads(cli("run", "ls", "--json", cwd=elsewhere).stdout)
    assert [(r["revision"], r["status"], r["result"]) for r in sorted(runs, key=lambda r: r["id"])] == [
        (1, "completed", "hello s3 v1"), (2, "completed", "hello s3 v2")]

    # `flowdeck pull` prints the final directory, which holds the current code.
    target = tmp_path / "worker"
    pulled = cli("pull", "e2e", "--dir", str(target), cwd=elsewhere)
    assert pulled.stdout.strip() == str(target)
    files = tree(target)
    assert files["flows/hello.py"] == flow.read_bytes()
    assert ".env" not in files and "debug.log" not in files

    # Rollback restores the exact code of version 1 (its snapshot), though the folder now holds version 2.
    cli("deployment", "rollback", "e2e", cwd=elsewhere)
    rolled = cli("run", "e2e", "--param", "name=s3", cwd=elsewhere)
    assert json.loads(rolled.stdout) == "hello s3 v1"
    assert "hello s3 v2" not in rolled.output

    # The secret key went in on stdin: no output and no stored version holds it.
    for revision in ("1", "2"):
        cli("deployment", "show", "e2e", "--version", revision, "--json", cwd=elsewhere)
    leaks = [" ".join(r.output.split()[:3]) for r in outputs if backend.secret in r.output]
    assert leaks == []
