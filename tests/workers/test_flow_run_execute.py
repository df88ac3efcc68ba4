"""``flowdeck flow-run execute`` runs whole Prefect flow runs, launched by a real Prefect process worker.

flowdeck's own virtualenv has no ``prefect`` package: the worker (from the Prefect virtualenv) launches
``flowdeck flow-run execute`` because ``flowdeck deploy --runner flowdeck`` set the pool's command, and the
run is read, pulled, called and reported by flowdeck alone.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flowdeck.registry.server.client import PrefectClient
from tests.conftest import REPO_ROOT, run_cli, write_tree
from tests.servers.prefect import PrefectServer
from tests.servers.prefect_worker import client_env

FLOWS = '''\
import subprocess
import time


def hello(name: str = "world"):
    print(f"hello {name}")
    return name


def broken():
    print("about to fail")
    raise ValueError("the flow failed on purpose")


def sleepy(pid_file: str):
    import os

    child = subprocess.Popen(["sleep", "300"])
    with open(pid_file + ".flow", "w") as fh:
        fh.write(str(os.getpid()))
    with open(pid_file, "w") as fh:
        fh.write(str(child.pid))
    print("started", flush=True)
    time.sleep(300)
'''


def _deploy(project: Path, uid: str, pid_file: Path) -> str:
    """Deploy hello, broken and sleepy to pool-<uid> with `--runner flowdeck`; return the pool name."""
    pool = f"pool-{uid}"
    deployments = "".join(
        f"- name: {name}-{uid}\n  entrypoint: flows/hello.py:{name}\n  work_pool: {{name: {pool}}}\n"
        for name in ("hello", "broken", "sleepy"))
    write_tree(project, {"flows/hello.py": FLOWS, "prefect.yaml": (
        "pull:\n- prefect.deployments.steps.set_working_directory:\n    directory: " + str(project) + "\n"
        "deployments:\n" + deployments.replace(
            f"name: hello-{uid}\n", f"name: hello-{uid}\n  parameters: {{name: flowdeck}}\n").replace(
            f"name: sleepy-{uid}\n", f"name: sleepy-{uid}\n  parameters: {{pid_file: '{pid_file}'}}\n"))})
    deployed = run_cli("deploy", "--all", "--runner", "flowdeck", "--create-pool", cwd=project)
    assert deployed.code == 0, deployed.output
    return pool


def _new_run(client: PrefectClient, flow: str, deployment: str) -> str:
    dep = client.get(f"deployments/name/{flow}/{deployment}")
    assert dep["job_variables"]["command"] == "flowdeck flow-run execute"
    run = client.post(f"deployments/{dep['id']}/create_flow_run", {})
    return str(run["id"])


def _run_state(client: PrefectClient, run_id: str) -> dict[str, Any]:
    state: dict[str, Any] = client.get(f"flow_runs/{run_id}")["state"]
    return state


def _logs(client: PrefectClient, run_id: str) -> list[str]:
    logs = client.post("logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"})
    return [str(entry["message"]) for entry in logs]


def test_flowdecks_environment_has_no_prefect() -> None:
    proc = subprocess.run([sys.executable, "-c", "import prefect"], capture_output=True, check=False)
    assert proc.returncode != 0


def test_a_prefect_process_worker_runs_flow_run_execute_completed_and_failed(
    server: PrefectServer, client: PrefectClient, worker_python: Path, project: Path, tmp_path: Path
) -> None:
    uid = secrets.token_hex(4)
    pool = _deploy(project, uid, tmp_path / "pid")
    ok = _new_run(client, "hello", f"hello-{uid}")
    failing = _new_run(client, "broken", f"broken-{uid}")
    env = client_env(server, tmp_path / "prefect-home")
    # The pool's command is `flowdeck flow-run execute`: the worker finds it on PATH, in flowdeck's own
    # virtualenv, which has no Prefect.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    worker = subprocess.run(
        [str(worker_python), "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
         "--run-once"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = worker.stdout + worker.stderr

    state = _run_state(client, ok)
    assert state["type"] == "COMPLETED", output
    assert "hello flowdeck" in _logs(client, ok)

    state = _run_state(client, failing)
    assert state["type"] == "FAILED", output
    assert state["message"] == ("Flow run failed: ValueError: the flow failed on purpose "
                                "(at flows/hello.py:12)")
    logs = _logs(client, failing)
    assert "about to fail" in logs
    assert any("ValueError: the flow failed on purpose" in line for line in logs)
    assert server.password not in output + json.dumps(logs)


def _start_execute(server: PrefectServer, run_id: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, **server.env(), "PREFECT__FLOW_RUN_ID": run_id,
           "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "flowdeck", "flow-run", "execute", "--poll-interval", "0.3",
                             "--grace", "2"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "State:\tZ" in status:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("how", ["server", "sigterm"])
def test_a_cancelled_run_stops_the_flow_and_its_children(
    server: PrefectServer, client: PrefectClient, project: Path, tmp_path: Path, how: str
) -> None:
    uid = secrets.token_hex(4)
    pid_file = tmp_path / "pid"
    _deploy(project, uid, pid_file)
    run_id = _new_run(client, "sleepy", f"sleepy-{uid}")
    proc = _start_execute(server, run_id, tmp_path)
    try:
        child = _wait_for(pid_file, proc)
        if how == "server":  # what the UI's Cancel button does
            client.post(f"flow_runs/{run_id}/set_state", {"state": {"type": "CANCELLING", "name": "Cancelling"},
                                                          "force": True})
        else:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    output = proc.stdout.read() if proc.stdout else ""
    assert code == (130 if how == "sigterm" else 0), output
    assert _run_state(client, run_id)["type"] == "CANCELLED", output
    assert _gone(child), "the flow's child process survived the cancellation"
    assert "started" in _logs(client, run_id)


def _worker_env(server: PrefectServer, home: Path) -> dict[str, str]:
    """A Prefect worker's environment whose PATH finds flowdeck in its own virtualenv (no Prefect there)."""
    env = client_env(server, home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def _wait_for_state(client: PrefectClient, run_id: str, want: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = _run_state(client, run_id)
        if state["type"] == want or time.monotonic() > deadline:
            return state
        time.sleep(0.3)


@contextmanager
def _process_worker(worker_python: Path, pool: str, server: PrefectServer,
                    tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A real ``prefect worker start --type process`` on ``pool``; its whole session is stopped on exit."""
    worker = subprocess.Popen(
        [str(worker_python), "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"],
        cwd=tmp_path, env=_worker_env(server, tmp_path / "prefect-home"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        yield worker
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)


def _cancel_from_the_ui(client: PrefectClient, run_id: str) -> dict[str, Any]:
    """What the UI's Cancel button does; the run's state once it is CANCELLED (or the wait ran out)."""
    client.post(f"flow_runs/{run_id}/set_state", {"state": {"type": "CANCELLING", "name": "Cancelling"},
                                                  "force": True})
    return _wait_for_state(client, run_id, "CANCELLED")


def test_cancelling_from_the_ui_a_run_a_prefect_worker_launched(
    server: PrefectServer, client: PrefectClient, worker_python: Path, project: Path, tmp_path: Path
) -> None:
    uid = secrets.token_hex(4)
    pid_file = tmp_path / "pid"
    pool = _deploy(project, uid, pid_file)
    run_id = _new_run(client, "sleepy", f"sleepy-{uid}")
    with _process_worker(worker_python, pool, server, tmp_path) as worker:
        child = _wait_for(pid_file, worker, timeout=180)
        flow = int((tmp_path / "pid.flow").read_text())
        infrastructure = str(client.get(f"flow_runs/{run_id}").get("infrastructure_pid") or "")
        state = _cancel_from_the_ui(client, run_id)
        gone = {name: _gone(pid, timeout=60) for name, pid in (("flow", flow), ("child", child))}
        execute_pid = int(infrastructure.rpartition(":")[2]) if infrastructure else None
        execute_gone = execute_pid is None or _gone(execute_pid, timeout=60)
        time.sleep(3)  # let the worker report what it saw of the process's exit
    output = worker.stdout.read() if worker.stdout else ""
    assert state["type"] == "CANCELLED", output
    assert gone == {"flow": True, "child": True}, output
    assert execute_pid is not None and execute_gone, output
    history = client.get("flow_run_states/", params={"flow_run_id": run_id})
    assert "CRASHED" not in [s["type"] for s in history], output
    assert _run_state(client, run_id)["type"] == "CANCELLED", output
    assert "crashed" not in output.lower() and "status code" not in output, output
    assert "started" in _logs(client, run_id)


def test_cancelling_from_the_ui_during_the_pull_steps_of_a_run_a_prefect_worker_launched(
    server: PrefectServer, client: PrefectClient, worker_python: Path, project: Path, tmp_path: Path
) -> None:
    uid = secrets.token_hex(4)
    pid_file = tmp_path / "pull.pid"
    ran = tmp_path / "flow-ran"
    pool = f"pool-{uid}"
    write_tree(project, {"flows/hello.py": FLOWS + f"\n\ndef mark():\n    open({str(ran)!r}, 'w').close()\n",
                         "prefect.yaml": f"""\
pull:
- prefect.deployments.steps.run_shell_script:
    script: sh -c 'echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file} && exec sleep 300'
deployments:
- name: slow-pull-{uid}
  entrypoint: flows/hello.py:mark
  work_pool: {{name: {pool}}}
"""})
    deployed = run_cli("deploy", "--runner", "flowdeck", "--create-pool", cwd=project)
    assert deployed.code == 0, deployed.output
    run_id = _new_run(client, "mark", f"slow-pull-{uid}")
    with _process_worker(worker_python, pool, server, tmp_path) as worker:
        pulling = _wait_for(pid_file, worker, timeout=180)  # the pull step's `sleep` is running
        state = _cancel_from_the_ui(client, run_id)
        pull_gone = _gone(pulling, timeout=60)
        time.sleep(3)  # let the worker report what it saw of the process's exit
    output = worker.stdout.read() if worker.stdout else ""
    assert state["type"] == "CANCELLED", output
    assert pull_gone, "the pull step's process survived the cancellation"
    assert not ran.exists(), "the flow ran after its run was cancelled"
    history = client.get("flow_run_states/", params={"flow_run_id": run_id})
    assert "CRASHED" not in [s["type"] for s in history], output
    assert "crashed" not in output.lower() and "status code" not in output, output


def test_flow_run_execute_clones_with_a_token_from_a_server_block(
    server: PrefectServer, client: PrefectClient, git_http_server: Any, make_repo: Any, git_argv_log: Path,
    project: Path, tmp_path: Path
) -> None:
    from tests.steps.gitutil import assert_not_in_tree, assert_nowhere

    uid = secrets.token_hex(4)
    token = git_http_server.token
    repo = make_repo({"flows/remote.py": "def remote():\n    print(open('data.txt').read().strip())\n",
                      "data.txt": "from the private repository\n"})
    url = git_http_server.url(repo.name, "github.localhost")
    saved = run_cli("block", "create", "github-credentials", f"repo-{uid}", "--field", "token=-", cwd=project,
                    input=token + "\n")
    assert saved.code == 0, saved.output
    write_tree(project, {"flows/remote.py": "def remote():\n    pass\n", "prefect.yaml": f"""\
pull:
- prefect.deployments.steps.git_clone:
    repository: {url}
    credentials: '{{{{ prefect.blocks.github-credentials.repo-{uid} }}}}'
deployments:
- name: remote-{uid}
  entrypoint: flows/remote.py:remote
  work_pool: {{name: pool-{uid}}}
"""})
    deployed = run_cli("deploy", "--pull-steps", "flowdeck", "--runner", "flowdeck", "--create-pool", cwd=project)
    assert deployed.code == 0, deployed.output
    run_id = _new_run(client, "remote", f"remote-{uid}")
    workdir = tmp_path / "job"
    env = {**os.environ, **server.env(), "PREFECT__FLOW_RUN_ID": run_id, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "flowdeck", "flow-run", "execute", "--dir", str(workdir)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert _run_state(client, run_id)["type"] == "COMPLETED", output
    logs = _logs(client, run_id)
    assert "from the private repository" in logs
    assert any("git_clone" in line for line in logs), logs
    assert_nowhere(token, output, json.dumps(logs), git_argv_log.read_text())
    assert_not_in_tree(token, workdir / repo.name / ".git")


def test_sigterm_during_the_pull_steps_cancels_the_run(
    server: PrefectServer, client: PrefectClient, project: Path, tmp_path: Path
) -> None:
    uid = secrets.token_hex(4)
    marker = tmp_path / "pulling"
    write_tree(project, {"flows/hello.py": FLOWS, "prefect.yaml": f"""\
pull:
- prefect.deployments.steps.run_shell_script:
    script: touch {marker} && sleep 60
    shell: true
deployments:
- name: slow-pull-{uid}
  entrypoint: flows/hello.py:hello
  work_pool: {{name: pool-{uid}}}
"""})
    deployed = run_cli("deploy", "--runner", "flowdeck", "--create-pool", cwd=project)
    assert deployed.code == 0, deployed.output
    run_id = _new_run(client, "hello", f"slow-pull-{uid}")
    proc = _start_execute(server, run_id, tmp_path)
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.1)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        assert time.monotonic() - started < 30  # did not wait for the pull step's sleep to end
    finally:
        try:  # the pull step's own `sleep` may outlive flowdeck: clear the whole session
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    output = proc.stdout.read() if proc.stdout else ""
    assert code == 130, output
    assert _run_state(client, run_id)["type"] == "CANCELLED", output


def test_the_flow_starts_early_only_after_steps_that_cannot_change_a_new_process() -> None:
    from flowdeck.flowrun.launch import starts_early

    clone = {"prefect.deployments.steps.git_clone": {"repository": "https://example.com/r.git"}}
    published = {"flowdeck.steps.pull_from_s3": {"bucket": "b", "folder": "f", "requires": "flowdeck[s3]"}}
    assert starts_early([clone, published])
    assert starts_early([{"prefect.deployments.steps.set_working_directory": {"directory": "/x"}}])
    # Steps that may install packages (a new .pth file is only read at start-up), and unknown ones.
    assert not starts_early([clone, {"prefect.deployments.steps.pip_install_requirements": {}}])
    assert not starts_early([{"prefect.deployments.steps.run_shell_script": {"script": "pip install x"}}])
    assert not starts_early([{"mycompany.steps.git_clone": {}}])
    assert not starts_early([])
