"""Three machines, one Prefect server on PostgreSQL: CI deploys, a worker runs, a third machine rolls back.

Each machine has its own FLOWDECK_HOME and cache; they share nothing but the server (and the git remote or
the S3 bucket the code comes from). The git-backed deployment is pinned to the deployed commit, so after
the rollback the worker runs the older version's code. The S3-backed one (push_to_s3/pull_from_s3 on
SeaweedFS, which checks every signature, so the worker really resolves the credentials block from the
server) shows what rolling back restores today: the version's record, not its code (see the test).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_tree
from tests.servers.postgres import Postgres, postgres  # noqa: F401
from tests.servers.prefect import PrefectServer, start_prefect_server
from tests.servers.s3 import S3Server
from tests.steps.storage.conftest import seaweedfs_server  # noqa: F401


@pytest.fixture(scope="module")
def pg_prefect(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres) -> Iterator[PrefectServer]:  # noqa: F811
    """A Prefect server on PostgreSQL."""
    postgres.createdb("prefect")
    server = start_prefect_server(tmp_path_factory.mktemp("prefect-pg"), database_url=postgres.url("prefect"))
    yield server
    server.process.stop()


def test_ci_deploys_a_worker_runs_a_third_machine_rolls_back(
        pg_prefect: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def machine(name: str) -> dict[str, str]:
        home = tmp_path / name
        return {**pg_prefect.env(), "FLOWDECK_HOME": str(home / ".flowdeck"),
                "FLOWDECK_CACHE_DIR": str(home / ".cache")}

    ci, worker, ops = machine("ci"), machine("worker"), machine("ops")
    repo, remote = tmp_path / "ci" / "repo", tmp_path / "remote.git"

    def git(*args: str, cwd: Path = repo) -> str:
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()

    repo.mkdir(parents=True)
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    write_tree(repo, {"flows/etl.py": "def etl(n: int = 1):\n    return ['v1', n]\n", "prefect.yaml": (
        "build:\n- prefect.deployments.steps.run_shell_script:\n    id: commit\n    script: git rev-parse HEAD\n"
        "    stream_output: false\n"
        "pull:\n- prefect.deployments.steps.git_clone:\n    repository: " + str(remote) + "\n"
        "    commit_sha: '{{ commit.stdout }}'\n"
        "deployments:\n- name: nightly\n  entrypoint: flows/etl.py:etl\n  parameters: {n: 2}\n"
        "  work_pool: {name: etl-pool}\n")})
    git("init", "-q", "-b", "main")
    git("remote", "add", "origin", str(remote))
    git("add", "-A")
    git("commit", "-qm", "v1")
    git("push", "-q", "origin", "main")
    first = run_cli("deploy", "--all", "--create-pool", cwd=repo, env=ci)
    assert first.code == 0, first.output
    (repo / "flows" / "etl.py").write_text("def etl(n: int = 1):\n    return ['v2', n]\n")
    git("commit", "-qam", "v2")
    git("push", "-q", "origin", "main")
    second = run_cli("deploy", "--all", cwd=repo, env=ci)
    assert second.code == 0 and "revision 2" in second.stdout, second.output

    work = tmp_path / "worker" / "runs"
    work.mkdir(parents=True)
    assert json.loads(run_cli("run", "etl/nightly", cwd=work, env=worker).stdout) == ["v2", 2]
    history = json.loads(run_cli("deployment", "history", "etl/nightly", "--json", cwd=work, env=ops).stdout)
    assert [v["revision"] for v in history] == [1, 2] and history[1]["live"]
    assert history[1]["message"] == "v2" and history[0]["commit"]
    rolled = run_cli("deployment", "rollback", "etl/nightly", cwd=work, env=ops)
    assert rolled.code == 0, rolled.output
    assert json.loads(run_cli("run", "etl/nightly", cwd=work, env=worker).stdout) == ["v1", 2]
    runs = json.loads(run_cli("run", "ls", "etl/nightly", "--json", cwd=work, env=ops).stdout)
    assert sorted(r["revision"] for r in runs) == [1, 2]
    assert all(r["status"] == "completed" for r in runs)


S3_PROJECT = """\
push:
- prefect_aws.deployments.steps.push_to_s3:
    id: push_code
    requires: prefect-aws>=0.3.4
    bucket: {bucket}
    folder: etl
    credentials: '{{{{ prefect.blocks.aws-credentials.s3store }}}}'
pull:
- prefect_aws.deployments.steps.pull_from_s3:
    id: pull_code
    requires: prefect-aws>=0.3.4
    bucket: '{{{{ push_code.bucket }}}}'
    folder: '{{{{ push_code.folder }}}}'
    credentials: '{{{{ prefect.blocks.aws-credentials.s3store }}}}'
deployments:
- name: hourly
  entrypoint: flows/etl.py:etl
  parameters: {{n: {n}}}
  work_pool: {{name: s3-pool}}
"""


def test_an_s3_backed_deployment_across_three_machines(
        pg_prefect: PrefectServer, seaweedfs_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    def machine(name: str) -> dict[str, str]:
        home = tmp_path / name
        return {**pg_prefect.env(), "FLOWDECK_HOME": str(home / ".flowdeck"),
                "FLOWDECK_CACHE_DIR": str(home / ".cache")}

    ci, worker, ops = machine("ci"), machine("worker"), machine("ops")
    bucket = f"fd-three-{tmp_path.name[-20:].lower().replace('_', '-')}"
    s3 = seaweedfs_server.client()
    s3.create_bucket(Bucket=bucket)
    project = tmp_path / "ci" / "s3proj"
    project.mkdir(parents=True)
    # The credentials block lives on the server: the worker has nothing but the server's URL.
    created = run_cli("block", "create", "aws-credentials", "s3store",
                      "--field", f"aws_access_key_id={seaweedfs_server.access_key}",
                      "--field", "aws_secret_access_key=-", "--field", "region_name=us-east-1",
                      "--field", f"aws_client_parameters.endpoint_url={seaweedfs_server.endpoint}",
                      cwd=project, env=ci, input=seaweedfs_server.secret_key)
    assert created.code == 0, created.output
    outputs = [created]

    def deploy(version: str, n: int) -> None:
        write_tree(project, {"flows/etl.py": f"def etl(n: int = 0):\n    return ['{version}', n]\n",
                             "prefect.yaml": S3_PROJECT.format(bucket=bucket, n=n)})
        result = run_cli("deploy", "--all", "--create-pool", cwd=project, env=ci)
        assert result.code == 0, result.output
        outputs.append(result)

    deploy("v1", 1)
    deploy("v2", 2)
    assert s3.get_object(Bucket=bucket, Key="etl/flows/etl.py")["Body"].read().decode().count("v2") == 1

    work = tmp_path / "worker" / "runs"
    work.mkdir(parents=True)

    def run() -> object:
        result = run_cli("run", "etl/hourly", cwd=work, env=worker)
        assert result.code == 0, result.output
        outputs.append(result)
        return json.loads(result.stdout)

    assert run() == ["v2", 2]
    history = json.loads(run_cli("deployment", "history", "etl/hourly", "--json", cwd=work, env=ops).stdout)
    assert [(v["revision"], v["live"]) for v in history] == [(1, False), (2, True)]
    rolled = run_cli("deployment", "rollback", "etl/hourly", cwd=work, env=ops)
    assert rolled.code == 0, rolled.output
    outputs.append(rolled)
    shown = json.loads(run_cli("deployment", "show", "etl/hourly", "--json", cwd=work, env=ops).stdout)
    assert shown["revision"] == 1 and shown["live"] is True
    # The rollback brings revision 1's code back too: its version names the snapshot push_to_s3 wrote, and
    # the worker pulls exactly that snapshot although the bucket's folder now holds v2.
    assert run() == ["v1", 1]
    runs = json.loads(run_cli("run", "ls", "etl/hourly", "--json", cwd=work, env=ops).stdout)
    assert sorted((r["revision"], r["status"]) for r in runs) == [(1, "completed"), (2, "completed")]
    # The S3 secret never shows, on any machine.
    assert not [r.output for r in outputs if seaweedfs_server.secret_key in r.output]
