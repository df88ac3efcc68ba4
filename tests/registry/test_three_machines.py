"""Three machines, one Prefect server on PostgreSQL: CI deploys, a worker runs, a third machine rolls back.

Each machine has its own FLOWDECK_HOME and cache; they share nothing but the server (and the git remote the
code is cloned from). The deployment is git-backed and pinned to the deployed commit, so after the
rollback the worker runs the older version's code.
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
