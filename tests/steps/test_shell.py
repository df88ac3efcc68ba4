"""run_shell_script against real processes: the spirit of Prefect's TestRunShellScript and
TestRunShellScriptShellMode, plus flowdeck's explained errors, redaction and cancellation."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flowdeck.config import load_project
from flowdeck.errors import CommandError, StepExecutionError, WorkingDirectoryError
from flowdeck.pipeline import run_sections
from flowdeck.redact import register_secret
from flowdeck.steps.shell import run_shell_script
from tests.conftest import REPO_ROOT, write_tree

SENTINEL = "sentinel-Secret-9f2c"


def run(script: str, **kwargs: Any) -> dict[str, str]:
    return asyncio.run(run_shell_script(script, **kwargs))


def fail(script: str, **kwargs: Any) -> CommandError:
    with pytest.raises(CommandError) as info:
        run(script, **kwargs)
    return info.value


# --- Prefect's TestRunShellScript -------------------------------------------------------------------


def test_single_command() -> None:
    assert run("echo Hello World", stream_output=False) == {"stdout": "Hello World", "stderr": ""}


def test_multiple_lines_accumulate_output() -> None:
    result = run("echo first\necho second", stream_output=False)
    assert result == {"stdout": "first\nsecond", "stderr": ""}


def test_stderr_is_captured_and_accumulated_across_lines() -> None:
    script = "sh -c 'echo one >&2'\necho out\nsh -c 'echo two >&2'"
    assert run(script, stream_output=False) == {"stdout": "out", "stderr": "one\ntwo"}


def test_stream_output_echoes_to_console(capsys: pytest.CaptureFixture[str]) -> None:
    result = run("echo to-out\nsh -c 'echo to-err >&2'")
    assert result == {"stdout": "to-out", "stderr": "to-err"}
    captured = capsys.readouterr()
    assert captured.out == "to-out\n"
    assert captured.err == "to-err\n"


def test_stream_output_false_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    result = run("echo quiet\nsh -c 'echo quiet-err >&2'", stream_output=False)
    assert result == {"stdout": "quiet", "stderr": "quiet-err"}
    assert capsys.readouterr() == ("", "")


def test_env_is_added_to_the_environment_and_values_become_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_PARENT", "parent-value")
    script = "printenv FROM_PARENT\nprintenv FROM_STEP\nprintenv NUMBER"
    result = run(script, env={"FROM_STEP": "step-value", "NUMBER": 5}, stream_output=False)
    assert result["stdout"] == "parent-value\nstep-value\n5"
    assert "FROM_STEP" not in os.environ


def test_env_vars_are_not_expanded_by_default() -> None:
    assert run("echo $HOME ${HOME}", stream_output=False)["stdout"] == "$HOME ${HOME}"


def test_expand_env_vars_uses_environment_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTER", "outer")
    result = run(
        "echo $OUTER ${INNER} $UNKNOWN_VAR_XYZ",
        env={"INNER": "inner"},
        expand_env_vars=True,
        stream_output=False,
    )
    # string.Template.safe_substitute: unknown names stay as written.
    assert result["stdout"] == "outer inner $UNKNOWN_VAR_XYZ"


def test_directory_is_the_working_directory_of_every_line(tmp_path: Path) -> None:
    result = run("pwd\nsh -c 'cd /'\npwd", directory=str(tmp_path), stream_output=False)
    # Each line is a process of its own: a `cd` changes nothing for later lines.
    assert result["stdout"].splitlines() == [str(tmp_path), str(tmp_path)]


def test_quoting_is_honoured_without_a_shell() -> None:
    result = run("printf '%s|' 'a b' \"c  d\" e\\ f", stream_output=False)
    assert result["stdout"] == "a b|c  d|e f|"


def test_pipes_are_plain_arguments_without_a_shell() -> None:
    assert run("echo a | tr a b", stream_output=False)["stdout"] == "a | tr a b"


def test_failure_raises_prefects_message_and_stops_later_lines(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    script = f"echo before\nsh -c 'echo warn >&2'\nsh -c 'echo boom >&2; exit 3'\ntouch {marker}"
    error = fail(script, stream_output=False)
    assert error.message == "`run_shell_script` failed with error code 3: warn\nboom"
    assert str(error) == (
        "`run_shell_script` failed with error code 3: warn\nboom (hint: line 3 "
        "`sh -c 'echo boom >&2; exit 3'` exited with 3; later lines did not run)"
    )
    assert (error.returncode, error.stdout, error.stderr) == (3, "before", "warn\nboom")
    assert not marker.exists()


def test_failure_without_stderr() -> None:
    error = fail("false\n\n  \n", stream_output=False)
    assert str(error) == (
        "`run_shell_script` failed with error code 1:  (hint: line 1 `false` exited with 1)"
    )


def test_failing_line_with_shell_syntax_suggests_shell_mode() -> None:
    error = fail("cat < /nonexistent-input", stream_output=False)
    assert error.hint is not None
    assert error.hint.endswith(
        "the line contains shell syntax (pipes, redirects, $VAR, globs) but runs without a shell: "
        "set `shell: true` (or `expand_env_vars: true` for $VAR only)"
    )


# --- flowdeck's explained errors ---------------------------------------------------------------------


def test_missing_command_is_explained() -> None:
    error = fail("echo ok\nno-such-program-xyz --flag", stream_output=False)
    assert str(error) == (
        "`run_shell_script` cannot run line 2: command 'no-such-program-xyz' not found "
        "(hint: is it installed and on PATH?)"
    )
    assert error.returncode is None
    assert error.stdout == "ok"


def test_shell_syntax_without_shell_is_explained() -> None:
    error = fail("FOO=bar printenv FOO", stream_output=False)
    assert str(error) == (
        "`run_shell_script` cannot run line 1: command 'FOO=bar' not found (hint: 'FOO=bar' is shell "
        "syntax, but the line runs without a shell: set `shell: true` (each line is still its own "
        "process, so use `directory:` and `env:` for state))"
    )


def test_non_executable_file_is_explained(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    error = fail("./script.sh", directory=str(tmp_path), stream_output=False)
    assert str(error) == (
        "`run_shell_script` cannot run line 1: './script.sh' is not executable "
        "(hint: make it executable (chmod +x ./script.sh) or run it through its interpreter)"
    )


def test_unbalanced_quote_is_explained() -> None:
    error = fail("echo 'unterminated", stream_output=False)
    assert str(error) == (
        "`run_shell_script` cannot parse line 1: No closing quotation in \"echo 'unterminated\" "
        "(hint: close the quote, or escape it with a backslash)"
    )


def test_missing_directory_is_explained(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(WorkingDirectoryError) as info:
        run("echo hi", directory=str(missing))
    assert info.value.message == f"directory {str(missing)!r} does not exist"


def test_directory_expands_home(isolated_env: Path) -> None:
    (isolated_env / "work").mkdir()
    assert run("pwd", directory="~/work", stream_output=False)["stdout"] == str(isolated_env / "work")


def test_comment_lines_and_blank_lines_are_skipped() -> None:
    result = run("# set things up\n\n   \necho done  # trailing words are arguments", stream_output=False)
    assert result["stdout"] == "done # trailing words are arguments"


# --- secrets, streaming and cancellation -------------------------------------------------------------


def test_registered_secret_is_masked_in_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    register_secret(SENTINEL)
    error = fail(f"sh -c 'echo token={SENTINEL} rejected >&2; exit 1'", stream_output=False)
    assert error.message == "`run_shell_script` failed with error code 1: token=******** rejected"
    assert SENTINEL not in str(error)
    assert SENTINEL not in error.stderr


def test_secret_from_expanded_env_is_masked_in_the_hint() -> None:
    register_secret(SENTINEL)
    error = fail(
        "sh -c 'echo $0 >&2; exit 4' $TOKEN",
        env={"TOKEN": SENTINEL},
        expand_env_vars=True,
        stream_output=False,
    )
    assert str(error) == (
        "`run_shell_script` failed with error code 4: ******** (hint: line 1 "
        "`sh -c 'echo $0 >&2; exit 4' ********` exited with 4)"
    )


def test_multibyte_characters_split_across_chunks_survive() -> None:
    text = "é" * 5000  # 10000 bytes: chunk borders fall inside characters
    command = f"{sys.executable} -c \"print('{text}')\""
    assert run(command, stream_output=False)["stdout"] == text


def test_invalid_utf8_is_replaced() -> None:
    command = f"{sys.executable} -c \"import sys; sys.stdout.buffer.write(b'ok\\xff')\""
    assert run(command, stream_output=False)["stdout"] == "ok\ufffd"


class _Recorder:
    """A console stand-in that remembers each write, to check what a redacting stream would see."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_streamed_output_is_written_in_whole_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(sys, "stdout", recorder)
    # The child writes one line in two halves with a pause: the console must get it in one piece.
    code = "import sys, time; sys.stdout.write('half-'); sys.stdout.flush(); time.sleep(0.2); print('line')"
    run(f"{sys.executable} -c \"{code}\"\necho -n tail")
    assert recorder.writes == ["half-line\n", "tail"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cancelling_the_step_kills_the_process_and_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    async def scenario() -> None:
        task = asyncio.create_task(
            run_shell_script(f"sleep 60 & echo $$ $! > {pids}; wait", shell=True, stream_output=False)
        )
        for _ in range(200):
            if pids.exists() and pids.read_text().strip():
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 30
    shell_pid, sleep_pid = (int(p) for p in pids.read_text().split())
    deadline = time.monotonic() + 10
    while (_alive(shell_pid) or _alive(sleep_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(shell_pid)
    assert not _alive(sleep_pid)


def test_runs_in_a_worker_thread_with_its_own_event_loop() -> None:
    # Prefect runs every step in a fresh thread with its own loop; subprocesses must work there too.
    results: list[dict[str, str]] = []
    worker = threading.Thread(target=lambda: results.append(run("echo from-thread", stream_output=False)))
    worker.start()
    worker.join(timeout=60)
    assert results == [{"stdout": "from-thread", "stderr": ""}]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_kills_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    driver = (
        "import asyncio\n"
        "from flowdeck.steps.shell import run_shell_script\n"
        f"asyncio.run(run_shell_script(\"sh -c 'echo $$ > {pid_file}; exec sleep 60'\"))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", driver], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert _alive(child)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert "KeyboardInterrupt" in stderr
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


# --- Prefect's TestRunShellScriptShellMode -----------------------------------------------------------


def test_shell_mode_pipes() -> None:
    assert run("echo hello | tr a-z A-Z", shell=True, stream_output=False)["stdout"] == "HELLO"


def test_shell_mode_redirects(tmp_path: Path) -> None:
    script = "echo content > out.txt\ncat out.txt"
    result = run(script, shell=True, directory=str(tmp_path), stream_output=False)
    assert result["stdout"] == "content"
    assert (tmp_path / "out.txt").read_text() == "content\n"


def test_shell_mode_chaining_and_stderr_redirect() -> None:
    result = run("echo one && echo two\necho err 1>&2", shell=True, stream_output=False)
    assert result == {"stdout": "one\ntwo", "stderr": "err"}


def test_shell_mode_expands_variables_itself() -> None:
    env = {"GREETING": "hi", "NAME": "you"}
    result = run("echo $GREETING, ${NAME}", shell=True, env=env, stream_output=False)
    assert result["stdout"] == "hi, you"


def test_shell_mode_globs(tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt", "c.md"):
        (tmp_path / name).write_text("")
    result = run("ls *.txt", shell=True, directory=str(tmp_path), stream_output=False)
    assert result["stdout"].split() == ["a.txt", "b.txt"]


def test_shell_mode_each_line_is_its_own_process(tmp_path: Path) -> None:
    result = run("cd /\nexport X=1\npwd\necho x=$X", shell=True, directory=str(tmp_path), stream_output=False)
    assert result["stdout"] == f"{tmp_path}\nx="


def test_shell_mode_skips_blank_lines_and_strips_whitespace() -> None:
    result = run("\n   \n   echo padded   \n\n", shell=True, stream_output=False)
    assert result == {"stdout": "padded", "stderr": ""}


def test_shell_mode_failure_stops_later_lines(tmp_path: Path) -> None:
    script = "echo start\necho bad >&2 && exit 2\ntouch marker"
    error = fail(script, shell=True, directory=str(tmp_path), stream_output=False)
    assert str(error) == (
        "`run_shell_script` failed with error code 2: bad (hint: line 2 `echo bad >&2 && exit 2` "
        "exited with 2; later lines did not run)"
    )
    assert error.stdout == "start"
    assert not (tmp_path / "marker").exists()


def test_shell_mode_missing_command_explains_127() -> None:
    error = fail("no-such-program-xyz", shell=True, stream_output=False)
    assert error.returncode == 127
    assert error.message.startswith("`run_shell_script` failed with error code 127: ")
    assert "no-such-program-xyz" in error.message
    assert error.hint == (
        "line 1 `no-such-program-xyz` exited with 127; exit code 127 means the "
        "shell did not find the command: is it installed and on PATH?"
    )


def test_shell_mode_with_expand_env_vars_substitutes_before_the_shell() -> None:
    result = run(
        "echo '$WORD' \"$WORD\"", shell=True, expand_env_vars=True, env={"WORD": "x"}, stream_output=False
    )
    # flowdeck (like Prefect) substitutes first, so even the single-quoted name is replaced.
    assert result["stdout"] == "x x"


# --- signals that end flowdeck (how CI cancels a job) -------------------------------------------------


def _descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {p for p in found if _alive(p)}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
@pytest.mark.parametrize("shell", [False, True])
def test_a_terminating_signal_stops_the_steps_whole_process_group(
    project: Path, sig: signal.Signals, code: int, shell: bool
) -> None:
    pids = project / "pids"
    # A grandchild too: a shell script that starts a background sleep and waits for it.
    script = f"sh -c 'sleep 300 & echo $$ $! > {pids}; wait'"
    (project / "prefect.yaml").write_text(
        "build:\n- prefect.deployments.steps.run_shell_script:\n"
        f"    script: \"{script}\"\n    shell: {str(shell).lower()}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "flowdeck", "steps", "run", "build"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        started = _descendants(proc.pid)
        assert {int(p) for p in pids.read_text().split()} <= started
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in started if _alive(p)]
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr


# --- templated values stay one argument (no newline injection) ---------------------------------------

EMIT_PY = "def emit(**kwargs):\n    return dict(kwargs)\n"


def _steps(project: Path, script: str, value: str, **shell_args: Any) -> dict[str, Any]:
    extra = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in shell_args.items())
    write_tree(project, {
        "mysteps.py": EMIT_PY,
        "prefect.yaml": (
            f"build:\n- mysteps.py:emit:\n    id: src\n    value: {json.dumps(value)}\n"
            f"- prefect.deployments.steps.run_shell_script:\n    id: sh\n    script: {json.dumps(script)}\n"
            f"    stream_output: false\n{extra}"
        ),
    })
    return run_sections(load_project(project / "prefect.yaml"), ["build"])


INJECTION = "x\ntouch injected"


@pytest.mark.parametrize(
    "script",
    [
        "echo {{ src.value }}",
        "echo '{{ src.value }}'",
        'echo "v={{ src.value }}"',
        "echo << src.value >>",
        "echo {{ src.value | trim }}",
        "{{ src.value }}",
    ],
)
def test_a_newline_in_a_templated_value_never_starts_a_command(project: Path, script: str) -> None:
    try:
        _steps(project, script, INJECTION)
    except StepExecutionError as exc:
        # The whole value as a program name: not found, and the hint says why.
        assert script == "{{ src.value }}"
        assert "a templated value stays one argument" in str(exc)
    assert not (project / "injected").exists()


def test_a_templated_value_is_one_argument_whatever_it_holds(project: Path) -> None:
    value = "a b\n'c\"\tdone"
    outputs = _steps(project, "printf '[%s]' {{ src.value }} --opt={{ src.value }}", value)
    assert outputs["sh"]["stdout"] == f"[{value}][--opt={value}]"


def test_literal_lines_of_a_templated_script_are_still_separate_commands(project: Path) -> None:
    outputs = _steps(project, "echo one {{ src.value }}\n# comment {{ src.value }}\necho two", "v")
    assert outputs["sh"]["stdout"] == "one v\ntwo"


def test_expand_env_vars_applies_to_the_script_text_not_to_values(project: Path) -> None:
    outputs = _steps(project, "echo $GREETING {{ src.value }}", "$GREETING",
                     expand_env_vars=True, env={"GREETING": "hi"})
    assert outputs["sh"]["stdout"] == "hi $GREETING"


def test_shell_mode_runs_the_rendered_text_as_before(project: Path) -> None:
    # With a shell a script is shell code and so are the values put into it (as in Prefect).
    outputs = _steps(project, "echo {{ src.value }} | tr a-z A-Z", "ab\necho cd", shell=True)
    assert outputs["sh"]["stdout"] == "ab\nCD"


def test_a_failing_templated_line_shows_the_rendered_line(project: Path) -> None:
    with pytest.raises(StepExecutionError) as info:
        _steps(project, "sh -c 'exit 5' {{ src.value }}", "val")
    assert "line 1 `sh -c 'exit 5' val` exited with 5" in str(info.value)


def test_a_signal_during_a_childs_start_is_held_until_its_group_is_listed() -> None:
    """Between the fork and the registration of its group a child is in no list: a terminating signal
    arriving then is held, and raised again (so forwarded to that child too) once the child is listed."""
    from flowdeck.steps import process

    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    try:
        with process._starting_child():
            assert process.defer_while_starting(signal.SIGUSR1)
            assert received == []
        assert received == [signal.SIGUSR1]  # raised again on leaving the start
        assert not process.defer_while_starting(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
