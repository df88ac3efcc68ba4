"""A real ``prefect worker start --pool P`` (process type) runs flowdeck's pull steps before a flow run.

The pull steps are what ``flowdeck deploy --pull-steps flowdeck`` publishes for a ``prefect.yaml`` written
with Prefect's step names; the deployment is created on a real Prefect server holding the credentials as
blocks (a ``github-credentials`` token and ``aws-credentials`` for the S3 server).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import run_cli, write_tree
from tests.servers.git import GitHttpServer, RepoBuilder
from tests.servers.prefect import PrefectServer
from tests.servers.prefect_worker import client_env, run_python
from tests.servers.s3 import S3Server
from tests.steps.gitutil import assert_not_in_tree, assert_nowhere, git_out
from tests.workers.prefect_scripts import CREATE_RUN, READ_RUN, result

MakeRepo = Callable[..., RepoBuilder]

FLOW = '''\
from prefect import flow

@flow(log_prints=True)
def hello():
    with open("../data/input.csv") as fh:
        print("first line: " + fh.read().splitlines()[0])
'''


def _published_pull_steps(project: Path, repo_url: str, bucket: str, endpoint: str) -> list[dict[str, Any]]:
    """What `flowdeck deploy --pull-steps flowdeck` records for pull steps written with Prefect's names."""
    write_tree(project, {"flows/hello.py": FLOW, "prefect.yaml": f"""\
pull:
- prefect.deployments.steps.git_clone:
    id: clone
    repository: {repo_url}
    credentials: '{{{{ prefect.blocks.github-credentials.repo-token }}}}'
- prefect_aws.deployments.steps.pull_from_s3:
    requires: prefect-aws>=0.5
    bucket: {bucket}
    folder: proj
    credentials: '{{{{ prefect.blocks.aws-credentials.s3-code }}}}'
    client_parameters:
      endpoint_url: {endpoint}
- prefect.deployments.steps.set_working_directory:
    directory: '<< clone.directory >>'
deployments:
- name: git-and-s3
  entrypoint: flows/hello.py:hello
  work_pool: {{name: fd-process}}
"""})
    deployed = run_cli("deploy", "--pull-steps", "flowdeck", cwd=project)
    assert deployed.code == 0, deployed.output
    shown = run_cli("deployment", "show", "git-and-s3", "--json", cwd=project)
    steps: list[dict[str, Any]] = json.loads(shown.stdout)["record"]["pull_steps"]
    return steps


def test_a_prefect_process_worker_runs_flowdecks_pull_steps(
    worker_python: Path,
    prefect_server: PrefectServer,
    git_http_server: GitHttpServer,
    make_repo: MakeRepo,
    worker_s3: S3Server,
    git_argv_log: Path,
    project: Path,
    tmp_path: Path,
) -> None:
    token = git_http_server.token
    repo = make_repo({"flows/hello.py": FLOW})
    repo_url = git_http_server.url(repo.name, "github.localhost")
    bucket = f"worker-{uuid.uuid4().hex[:8]}"
    worker_s3.client().create_bucket(Bucket=bucket)
    worker_s3.client().put_object(Bucket=bucket, Key="proj/data/input.csv", Body=b"a,b\n1,2\n")
    pull_steps = _published_pull_steps(project, repo_url, bucket, worker_s3.endpoint)
    assert [next(iter(s)) for s in pull_steps] == [
        "flowdeck.steps.git_clone", "flowdeck.steps.pull_from_s3", "flowdeck.steps.set_working_directory"]

    workdir = tmp_path / "worker"
    workdir.mkdir()
    pool = f"fd-process-{uuid.uuid4().hex[:6]}"
    env = client_env(prefect_server, tmp_path / "prefect-home")
    spec = {"pool": pool, "flow_name": "hello", "name": "git-and-s3", "entrypoint": "flows/hello.py:hello",
            "pull_steps": pull_steps, "job_variables": {"working_dir": str(workdir)}}
    aws = {"aws_access_key_id": worker_s3.access_key, "aws_secret_access_key": worker_s3.secret_key,
           "region_name": "us-east-1"}
    created = run_python(worker_python, CREATE_RUN, cwd=tmp_path,
                         env={**env, "FD_DEPLOYMENT": json.dumps(spec), "FD_TOKEN": token, "FD_AWS": json.dumps(aws)})
    run_id = result(created.stdout, "RUN")
    assert created.returncode == 0 and run_id, created.stdout + created.stderr

    worker = subprocess.run(
        [str(worker_python), "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process", "--run-once"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    worker_output = worker.stdout + worker.stderr
    read = run_python(worker_python, READ_RUN, cwd=tmp_path, env={**env, "FD_RUN_ID": run_id})
    run = result(read.stdout, "RUN")
    assert run is not None, read.stderr
    assert run["state"] == "COMPLETED", worker_output + "\n".join(run["logs"])
    assert "first line: a,b" in run["logs"]
    # Every published `requires:` imports on this worker, so Prefect's runner ran no pip before a step.
    assert "Attempting install" not in worker_output + "\n".join(run["logs"])
    assert any("git_clone" in line for line in run["logs"]) or "git_clone" in worker_output

    clone = workdir / repo.name
    assert git_out(clone, "config", "--get", "remote.origin.url") == repo_url
    assert_not_in_tree(token, clone / ".git")
    assert "clone" in git_argv_log.read_text()
    assert_nowhere(token, git_argv_log.read_text(), worker_output, "\n".join(run["logs"]))
    assert_nowhere(worker_s3.secret_key, worker_output, "\n".join(run["logs"]))
