"""Prefect's own step runner (``prefect.deployments.steps.core.run_steps``) runs flowdeck's steps.

Each test runs Prefect's runner in a worker-side Python (Prefect plus flowdeck), against a real Prefect
server holding the credentials as blocks, exactly as a Prefect worker's ``prefect flow-run execute`` does
before a flow run. Secrets travel in the environment, never in argv.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.servers.git import GitHttpServer, RepoBuilder
from tests.servers.prefect import PrefectServer
from tests.servers.prefect_worker import client_env, run_python
from tests.servers.s3 import S3Server
from tests.steps.gitutil import assert_not_in_tree, assert_nowhere, git_out
from tests.workers.prefect_scripts import RUN_STEPS, result

MakeRepo = Callable[..., RepoBuilder]


def _run(python: Path, server: PrefectServer, cwd: Path, steps: list[dict[str, Any]], **secrets: str) -> tuple[
        int, str, dict[str, Any] | None]:
    env = {**client_env(server, cwd / ".prefect"), "FD_STEPS": json.dumps(steps)}
    env.update({f"FD_{k.upper()}": v for k, v in secrets.items()})
    env["PATH"] = os.environ["PATH"]
    proc = run_python(python, RUN_STEPS, cwd=cwd, env=env)
    return proc.returncode, proc.stdout + proc.stderr, result(proc.stdout, "OUTPUT")


def test_prefect_runs_flowdeck_pull_steps_with_blocks(
    worker_python: Path,
    prefect_server: PrefectServer,
    git_http_server: GitHttpServer,
    make_repo: MakeRepo,
    worker_s3: S3Server,
    git_argv_log: Path,
    tmp_path: Path,
) -> None:
    token = git_http_server.token
    repo = make_repo({"flows/hello.py": "print('hello from git')\n", "README.md": "from git\n"})
    bucket = f"code-{os.getpid()}"
    worker_s3.client().create_bucket(Bucket=bucket)
    worker_s3.client().put_object(Bucket=bucket, Key="proj/data/input.csv", Body=b"a,b\n1,2\n")
    workdir = tmp_path / "run"
    workdir.mkdir()
    steps = [
        {"flowdeck.steps.git_clone": {
            "id": "clone", "repository": git_http_server.url(repo.name, "github.localhost"),
            "credentials": "{{ prefect.blocks.github-credentials.repo-token }}"}},
        {"flowdeck.steps.pull_from_s3": {
            "id": "data", "bucket": bucket, "folder": "proj",
            "credentials": "{{ prefect.blocks.aws-credentials.s3-code }}",
            "client_parameters": {"endpoint_url": worker_s3.endpoint}}},
        {"flowdeck.steps.set_working_directory": {"directory": "{{ clone.directory }}"}},
        {"flowdeck.steps.run_shell_script": {"id": "show", "script": "cat README.md\npython flows/hello.py"}},
    ]
    aws = {"aws_access_key_id": worker_s3.access_key, "aws_secret_access_key": worker_s3.secret_key,
           "region_name": "us-east-1"}
    code, text, outputs = _run(worker_python, prefect_server, workdir, steps, token=token,
                               aws=json.dumps(aws))
    assert code == 0, text
    assert outputs is not None
    assert outputs["clone"] == {"directory": f"{repo.name}"}
    assert outputs["data"]["bucket"] == bucket and outputs["data"]["folder"] == "proj"
    assert (workdir / "data" / "input.csv").read_bytes() == b"a,b\n1,2\n"
    assert outputs["show"]["stdout"].splitlines() == ["from git", "hello from git"]
    clone = workdir / repo.name
    assert git_out(clone, "config", "--get", "remote.origin.url") == git_http_server.url(repo.name,
                                                                                            "github.localhost")
    assert_nowhere(token, text, git_argv_log.read_text(), json.dumps(outputs))
    assert "clone" in git_argv_log.read_text()
    assert_not_in_tree(token, clone / ".git")
    assert_nowhere(worker_s3.secret_key, text)


def test_a_failing_flowdeck_step_fails_prefects_runner_without_the_token(
    worker_python: Path,
    prefect_server: PrefectServer,
    git_http_server: GitHttpServer,
    make_repo: MakeRepo,
    tmp_path: Path,
) -> None:
    token = git_http_server.token
    repo = make_repo({"a.txt": "a"})
    missing = git_http_server.url(repo.name + "-missing", "github.localhost")
    steps = [{"flowdeck.steps.git_clone": {
        "repository": missing, "credentials": "{{ prefect.blocks.github-credentials.repo-token }}"}}]
    code, text, outputs = _run(worker_python, prefect_server, tmp_path, steps, token=token)
    assert code != 0 and outputs is None
    assert "Encountered error while running flowdeck.steps.git_clone" in text
    assert "GitCommandError" in text and f"{repo.name}-missing.git' with exit code 128" in text, text
    assert_nowhere(token, text)


def test_prefect_runs_flowdeck_steps_with_a_dict_and_async_steps(
    worker_python: Path, prefect_server: PrefectServer, tmp_path: Path
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "requirements.txt").write_text("\n")
    steps = [
        {"flowdeck.steps.set_working_directory": {"directory": "pkg"}},
        {"flowdeck.steps.pip_install_requirements": {"id": "pip", "requirements_file": "requirements.txt",
                                                     "stream_output": False}},
        {"flowdeck.steps.run_shell_script": {"id": "env", "script": "echo $GREETING-{{ directory }}",
                                             "env": {"GREETING": "hi"}, "expand_env_vars": True}},
    ]
    code, text, outputs = _run(worker_python, prefect_server, tmp_path, steps)
    assert code == 0, text
    assert outputs is not None
    pkg = os.path.realpath(tmp_path / "pkg")
    assert outputs["directory"] == pkg  # absolute, as Prefect's own set_working_directory gives it
    assert outputs["env"]["stdout"].strip() == f"hi-{pkg}"


SIGNATURES = r'''
import inspect, json
import prefect.deployments.steps as steps
names = ["git_clone", "set_working_directory", "run_shell_script", "pip_install_requirements",
         "pull_from_remote_storage", "pull_with_block"]
out = {}
for name in names:
    fn = getattr(steps, name)
    out[name] = {"params": list(inspect.signature(fn).parameters), "async": inspect.iscoroutinefunction(fn)}
print("FD_SIGNATURES=" + json.dumps(out))
'''


def test_flowdecks_steps_take_every_argument_prefects_own_take(worker_python: Path, tmp_path: Path) -> None:
    import inspect

    from flowdeck.steps.registry import get_spec, load_callable

    proc = run_python(worker_python, SIGNATURES, cwd=tmp_path, env=dict(os.environ))
    prefect_steps = result(proc.stdout, "SIGNATURES")
    assert prefect_steps, proc.stderr
    for name, info in prefect_steps.items():
        spec = get_spec(f"flowdeck.steps.{name}")
        assert spec is not None, name
        func = load_callable(spec)
        ours = inspect.signature(func).parameters
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ours.values())
        missing = [p for p in info["params"] if p not in ours and p not in ("kwargs", "settings")]
        assert takes_kwargs or not missing, f"flowdeck.steps.{name} lacks {missing}"
        # Sync or async as Prefect's own, so Python code calling one directly gets the same kind of result.
        # Prefect's runner awaits either; the two storage-URL pulls stay sync in flowdeck (they are
        # thread-pool downloads, and flowdeck's users call them directly).
        if name not in ("pull_from_remote_storage", "pull_with_block"):
            assert inspect.iscoroutinefunction(func) == info["async"], name
