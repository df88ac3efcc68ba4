"""After ``flowdeck deployment rollback``, a Prefect worker's flow run gets the rolled-back version's code.

A real Prefect server is the registry and a real S3 server holds the code: deploy v1, change the code,
deploy v2, roll back to v1. ``flowdeck flow-run execute`` (level 2) pins the snapshots named by the
deployment's ``flowdeck_snapshots`` job variable, and Prefect's own step runner calling a published
``flowdeck.steps.pull_from_s3`` (level 1) pins the snapshots the step carries.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flowdeck.registry.server.client import PrefectClient
from flowdeck.snapshot.pin import JOB_VARIABLE
from tests.conftest import REPO_ROOT, run_cli, write_tree
from tests.servers.prefect import PrefectServer, prefect_venv
from tests.servers.prefect_worker import client_env, run_python
from tests.servers.s3 import S3Server
from tests.workers.prefect_scripts import RUN_STEPS, result


def _aws_env(s3: S3Server) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1"}


def _write(project: Path, uid: str, s3: S3Server, bucket: str, text: str, step_names: str) -> None:
    prefix = "flowdeck.steps" if step_names == "flowdeck" else "prefect_aws.deployments.steps"
    where = f"    bucket: {bucket}\n    folder: code\n    client_parameters: {{endpoint_url: '{s3.endpoint}'}}\n"
    write_tree(project, {
        "flows/hello.py": f"def hello():\n    print({text!r})\n",
        "prefect.yaml": (f"push:\n- {prefix}.push_to_s3:\n{where}pull:\n- {prefix}.pull_from_s3:\n{where}"
                         f"deployments:\n- name: pinned-{uid}\n  entrypoint: flows/hello.py:hello\n"
                         f"  work_pool: {{name: pool-{uid}}}\n"),
    })


def _new_bucket(s3: S3Server) -> tuple[str, str]:
    """A test's unique id and a new bucket named after it."""
    uid = secrets.token_hex(4)
    s3.client().create_bucket(Bucket=f"pin-{uid}")
    return uid, f"pin-{uid}"


def _deploy(project: Path, s3: S3Server, *extra: str, create_pool: bool = True) -> None:
    pool = ("--create-pool",) if create_pool else ()
    deployed = run_cli("deploy", "--all", "--runner", "flowdeck", *pool, *extra, cwd=project, env=_aws_env(s3))
    assert deployed.code == 0, deployed.output


def _execute(server: PrefectServer, client: PrefectClient, s3: S3Server, deployment_id: str,
             workdir: Path) -> list[str]:
    """Create a flow run of the deployment, run it with `flowdeck flow-run execute`; its log lines."""
    run_id = str(client.post(f"deployments/{deployment_id}/create_flow_run", {})["id"])
    env = {**os.environ, **server.env(), **_aws_env(s3), "PREFECT__FLOW_RUN_ID": run_id,
           "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "flowdeck", "flow-run", "execute", "--dir", str(workdir)],
                          cwd=workdir.parent, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert client.get(f"flow_runs/{run_id}")["state"]["type"] == "COMPLETED", proc.stdout + proc.stderr
    logs = client.post("logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"})
    return [str(entry["message"]) for entry in logs]


@pytest.mark.parametrize("step_names", ["prefect", "flowdeck"])
def test_flow_run_execute_after_a_rollback_runs_the_rolled_back_code(
    server: PrefectServer, client: PrefectClient, worker_s3: S3Server, project: Path, tmp_path: Path,
    step_names: str
) -> None:
    uid, bucket = _new_bucket(worker_s3)
    extra = ("--pull-steps", "flowdeck") if step_names == "flowdeck" else ()
    _write(project, uid, worker_s3, bucket, "code of version one", step_names)
    _deploy(project, worker_s3, *extra)
    _write(project, uid, worker_s3, bucket, "code of version two", step_names)
    _deploy(project, worker_s3, *extra)
    dep = client.get(f"deployments/name/hello/pinned-{uid}")
    assert dep["job_variables"][JOB_VARIABLE]["version"] == dep["version"]

    logs = _execute(server, client, worker_s3, str(dep["id"]), tmp_path / "run-v2")
    assert "code of version two" in logs

    rolled = run_cli("deployment", "rollback", f"hello/pinned-{uid}", cwd=project)
    assert rolled.code == 0, rolled.output
    dep = client.get(f"deployments/name/hello/pinned-{uid}")
    # The folder's latest code is still version two: only the pin says which code the live version has.
    logs = _execute(server, client, worker_s3, str(dep["id"]), tmp_path / "run-rolled-back")
    assert "code of version one" in logs and "code of version two" not in logs, logs
    assert any(f"Pulling the code of version {dep['version']}" in line for line in logs), logs

    if step_names == "prefect":
        # Something else rewrote the deployment (another version label, as `prefect deploy` sets): the pin
        # no longer matches what the server serves, and the run pulls the folder's latest code.
        client.patch(f"deployments/{dep['id']}", {"version": "set-by-someone-else"})
        logs = _execute(server, client, worker_s3, str(dep["id"]), tmp_path / "run-rewritten")
        assert "code of version two" in logs, logs


def test_prefects_runner_pulls_the_rolled_back_code_with_flowdecks_step(
    server: PrefectServer, client: PrefectClient, worker_s3: S3Server, worker_python: Path, project: Path,
    tmp_path: Path
) -> None:
    uid, bucket = _new_bucket(worker_s3)
    for text in ("code of version one", "code of version two"):
        _write(project, uid, worker_s3, bucket, text, "prefect")
        _deploy(project, worker_s3, "--pull-steps", "flowdeck")
    rolled = run_cli("deployment", "rollback", f"hello/pinned-{uid}", cwd=project)
    assert rolled.code == 0, rolled.output
    steps: list[dict[str, Any]] = client.get(f"deployments/name/hello/pinned-{uid}")["pull_steps"]
    assert [next(iter(s)) for s in steps] == ["flowdeck.steps.pull_from_s3"]
    assert next(iter(steps[0].values()))["snapshots"], steps

    workdir = tmp_path / "level-1"
    workdir.mkdir()
    env = {**client_env(server, tmp_path / "prefect-home"), **_aws_env(worker_s3), "FD_STEPS": json.dumps(steps)}
    ran = run_python(worker_python, RUN_STEPS, cwd=workdir, env=env)
    assert ran.returncode == 0 and result(ran.stdout, "OUTPUT") is not None, ran.stdout + ran.stderr
    assert "code of version one" in (workdir / "flows/hello.py").read_text()


def _default_template(pool_type: str) -> dict[str, Any]:
    """The base job template Prefect gives a new pool of this type (from the metadata its server bundles;
    read from disk: the server's own endpoint for it may ask GitHub first)."""
    found = sorted(prefect_venv().glob(
        "lib/python*/site-packages/prefect/server/api/collections_data/views/aggregate-worker-metadata.json"))
    assert found, "Prefect's bundled worker metadata is missing"
    collections = json.loads(found[0].read_text(encoding="utf-8"))
    for workers in collections.values():
        for worker in workers.values():
            if worker.get("type") == pool_type:
                return dict(worker["default_base_job_configuration"])
    raise AssertionError(f"no {pool_type} worker in Prefect's metadata")


@pytest.mark.parametrize("pool_type", ["docker", "kubernetes"])
def test_docker_and_kubernetes_pools_take_the_pin(
    server: PrefectServer, client: PrefectClient, worker_s3: S3Server, project: Path, tmp_path: Path,
    pool_type: str
) -> None:
    # The pin is a job variable those pools' templates do not name: the server must keep it on the
    # deployment and accept flow runs of it, and the command a container runs must find it there.
    uid, bucket = _new_bucket(worker_s3)
    client.post("work_pools/", {"name": f"pool-{uid}", "type": pool_type,
                                "base_job_template": _default_template(pool_type)})
    for text in ("code of version one", "code of version two"):
        _write(project, uid, worker_s3, bucket, text, "prefect")
        _deploy(project, worker_s3, create_pool=False)  # the pool above, with its template
    rolled = run_cli("deployment", "rollback", f"hello/pinned-{uid}", cwd=project)
    assert rolled.code == 0, rolled.output
    dep = client.get(f"deployments/name/hello/pinned-{uid}")
    assert client.get(f"work_pools/pool-{uid}")["type"] == pool_type
    assert dep["job_variables"]["command"] == "flowdeck flow-run execute"
    assert dep["job_variables"][JOB_VARIABLE]["version"] == dep["version"]
    logs = _execute(server, client, worker_s3, str(dep["id"]), tmp_path / "container")
    assert "code of version one" in logs and "code of version two" not in logs, logs
