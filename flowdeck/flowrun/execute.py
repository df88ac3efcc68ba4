"""Run one Prefect flow run from start to end state, as ``prefect flow-run execute`` does, without Prefect.

1. read the flow run and its deployment from the server; a run already final or being cancelled is not
   started;
2. propose RUNNING, on a thread of its own while step 3 runs (the server may refuse: another process has
   it; then the flow is not called, the run's state is left alone and the pull's log lines are dropped);
3. run the deployment's pull steps with flowdeck's engine in the working directory (blocks and variables
   from the same server); with no pull steps, change into the deployment's ``path`` as Prefect does;
4. once RUNNING is accepted, call the entrypoint in a child process of its own process group; its output
   becomes the run's logs;
5. end COMPLETED, FAILED (the flow raised, or a pull step failed: the message says which step and, for the
   flow, the ``file:line``), or CRASHED (the flow's process died, or flowdeck could not run it).

SIGTERM and SIGINT, and a cancellation from the UI (the run's state is polled), stop the pull steps or the
flow's whole process group and end the run CANCELLED.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from flowdeck.background import Background
from flowdeck.errors import FlowdeckError, FlowRunError
from flowdeck.flowrun.launch import FlowProcess, starts_early
from flowdeck.flowrun.logs import LogShipper
from flowdeck.flowrun.server import FINAL_STATES, FlowRunApi, StateResult
from flowdeck.redact import redact
from flowdeck.registry.server.client import ServerConfig

__all__ = ["ExecuteOptions", "Outcome", "execute_flow_run"]

log = logging.getLogger("flowdeck.flow_run")


@dataclass
class ExecuteOptions:
    """Which run, on which server, and how."""

    flow_run_id: str
    config: ServerConfig
    #: Where the pull steps run (default: the current directory, which the worker chose).
    directory: Path | None = None
    #: Seconds between two looks at the run's state, for a cancellation from the UI.
    poll_interval: float = 2.0
    #: Seconds the flow's processes get between SIGTERM and SIGKILL.
    grace: float = 10.0
    #: Echoes each line of the flow's output locally (``line, is_stderr``), for the worker's own log.
    echo: Callable[[str, bool], None] | None = None


@dataclass(frozen=True)
class Outcome:
    """How the run ended: ``COMPLETED``, ``FAILED``, ``CRASHED``, ``CANCELLED``, or ``NOT_STARTED``."""

    state: str
    message: str
    #: For CANCELLED: ``signal`` (SIGTERM/SIGINT here) or ``server`` (cancelled from the UI or API).
    cancelled_by: str | None = None


class _Cancelled(KeyboardInterrupt):
    """Raised in the main thread to stop the pull steps. A KeyboardInterrupt, so that no step swallows it and
    asyncio re-raises it when it interrupts a callback of a shell step's event loop (it drops any other)."""


@dataclass
class _Control:
    phase: str = "start"
    cancel: str | None = None
    #: Our SIGTERM handler is installed (only then may the watcher signal the main thread).
    handling_signals: bool = False


@contextmanager
def _signals(control: _Control) -> Iterator[None]:
    """SIGTERM/SIGINT cancel the run instead of killing flowdeck half-way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        control.cancel = control.cancel or "signal"
        if control.phase == "pull":
            raise _Cancelled()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    control.handling_signals = True
    try:
        yield
    finally:
        control.handling_signals = False
        for sig, old in previous.items():
            signal.signal(sig, old)


def _watch_cancellation(options: ExecuteOptions, control: _Control, stop: threading.Event) -> threading.Thread:
    """Poll the run's state; CANCELLING (or CANCELLED) from the server cancels the run here."""
    main_ident = threading.main_thread().ident

    def loop() -> None:
        api = FlowRunApi(options.config, options.flow_run_id, version_checked=True)
        try:
            while not stop.wait(options.poll_interval):
                try:
                    state = api.state_type()
                except FlowdeckError:
                    continue  # a blip of the server must not cancel a healthy run
                if state in ("CANCELLING", "CANCELLED") and control.cancel is None:
                    control.cancel = "server"
                    if control.phase == "pull" and control.handling_signals and main_ident is not None:
                        signal.pthread_kill(main_ident, signal.SIGTERM)  # interrupts the pull steps
                    return
        finally:
            api.close()

    thread = threading.Thread(target=loop, name="flowdeck-cancel-watch", daemon=True)
    thread.start()
    return thread


def _pull(deployment: dict[str, Any], shipper: LogShipper) -> Path:
    from flowdeck.resolver import default_resolver
    from flowdeck.steps.runner import RunOptions
    from flowdeck.worker import run_pull_steps

    steps = deployment.get("pull_steps") or []
    if not steps:
        path = deployment.get("path")
        if path:
            os.chdir(path)
        return Path.cwd()
    shipper.log("flowdeck.flow_run", logging.INFO, f"Running {len(steps)} pull step(s) with flowdeck")
    # Like Prefect's runner, a custom step whose import fails gets its `requires:` installed (built-ins never).
    options = RunOptions(resolver=default_resolver(), root=Path.cwd(), install_requires=True)
    with _version_pin(deployment, shipper):
        final, _ = run_pull_steps(list(steps), options)
    return final


def _version_pin(deployment: dict[str, Any], shipper: LogShipper) -> AbstractContextManager[Any]:
    """Pin the snapshots of the version the server serves (after a rollback, that older version's code)."""
    from flowdeck.snapshot.pin import pin_of_deployment, pinned_snapshots

    pin = pin_of_deployment(deployment)
    if pin is None:  # not deployed by flowdeck with snapshots (or rewritten since): the folder's latest code
        return nullcontext()
    snapshots, label = pin
    shipper.log("flowdeck.flow_run", logging.INFO, f"Pulling the code of version {label} (its snapshots)")
    return pinned_snapshots(snapshots, f"version {label}")


def _stream(pipe: IO[str], is_err: bool, shipper: LogShipper, echo: Callable[[str, bool], None] | None) -> None:
    for raw in pipe:
        line = raw.rstrip("\n")
        if echo is not None:
            echo(redact(line), is_err)
        shipper.log("flowdeck.flow_run", logging.WARNING if is_err else logging.INFO, line)
    pipe.close()


def _stop_group(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM the flow's process group, SIGKILL whatever is left after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            # The leader is gone; its children may not be: one more SIGKILL to the group.
            os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def _start_early(deployment: dict[str, Any]) -> FlowProcess | None:
    """The flow's process, started now when the pull steps cannot change what it would see at start-up."""
    return FlowProcess(Path.cwd()) if starts_early(deployment.get("pull_steps") or []) else None


def _run_flow(directory: Path, deployment: dict[str, Any], run: dict[str, Any], options: ExecuteOptions,
              control: _Control, shipper: LogShipper, early: FlowProcess | None = None) -> Outcome:
    entrypoint = deployment.get("entrypoint")
    if not entrypoint:
        raise FlowRunError("the deployment has no entrypoint", hint="deploy it again with an entrypoint")
    with tempfile.TemporaryDirectory(prefix="flowdeck-flow-run-") as scratch:
        spec_path = Path(scratch) / "spec.json"
        error_file = Path(scratch) / "error.json"
        spec = {"directory": str(directory), "entrypoint": entrypoint, "parameters": run.get("parameters") or {},
                "error_file": str(error_file)}
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        spec_path.chmod(0o600)
        proc = (early or FlowProcess(directory)).go(spec_path)
        echo = options.echo
        assert proc.stdout is not None and proc.stderr is not None
        readers = [threading.Thread(target=_stream, args=(pipe, is_err, shipper, echo), daemon=True)
                   for pipe, is_err in ((proc.stdout, False), (proc.stderr, True))]
        for reader in readers:
            reader.start()
        while proc.poll() is None and control.cancel is None:
            time.sleep(0.05)
        if control.cancel is not None:
            _stop_group(proc, options.grace)
        code = proc.wait()
        for reader in readers:
            reader.join(5)
        if control.cancel is not None:
            raise _Cancelled()
        if code == 0:
            return Outcome("COMPLETED", "Flow run completed")
        if code == 1 and error_file.exists():
            error = json.loads(error_file.read_text(encoding="utf-8"))
            where = f" (at {error['where']})" if error.get("where") else ""
            return Outcome("FAILED", f"Flow run failed: {error['message']}{where}")
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return Outcome("CRASHED", f"The flow's process {how}")


def _cancelled_by(api: FlowRunApi, control: _Control) -> str:
    """``server`` or ``signal``. A Prefect worker carries out a cancellation from the UI by sending its job
    SIGTERM, often before the state poll sees it: that is the server's cancellation, which ends with exit
    code 0 (a worker takes any other code for a crash of its job and logs an error)."""
    if control.cancel == "server":
        return "server"
    try:
        if api.state_type() in ("CANCELLING", "CANCELLED"):
            return "server"
    except FlowdeckError:
        pass  # the server cannot say: the signal is all we know
    return "signal"


def _accepted(proposal: Background[StateResult], shipper: LogShipper) -> None:
    """Raise :class:`_NotStarted` (dropping the held logs) unless the server accepted RUNNING."""
    answer = proposal.result()
    if answer.status != "ACCEPT":
        shipper.discard()
        raise _NotStarted(f"the server did not let the run start: {answer.reason or answer.status}")
    shipper.release()


def _finish(api: FlowRunApi, outcome: Outcome, shipper: LogShipper) -> Outcome:
    level = logging.INFO if outcome.state == "COMPLETED" else logging.ERROR
    shipper.log("flowdeck.flow_run", level, outcome.message)
    answer = api.set_state(outcome.state, redact(outcome.message))
    if answer.status != "ACCEPT":
        log.warning("the server did not accept the %s state (%s)", outcome.state, answer.reason or answer.status)
    return outcome


def _warm_up() -> Background[None]:
    """Import the pull steps' engine on a thread of its own while the server answers the first requests:
    the imports need the CPU, the requests only wait. Join it before importing any of it on the main
    thread (two threads importing one cycle of modules can deadlock). ``_pull`` imports them again (a
    no-op by then, or the same error raised where it is reported)."""

    def load() -> None:
        try:
            import flowdeck.resolver
            import flowdeck.steps.runner
            import flowdeck.worker  # noqa: F401
        except BaseException:  # the pull's own import reports it
            pass

    return Background(load, "flowdeck-warm-up")


def _propose_running(api: FlowRunApi) -> Background[StateResult]:
    """RUNNING proposed on a thread of its own while the pull steps run (Prefect's own engine also pulls
    before it proposes RUNNING); the flow starts only once the server accepted it. The main thread does
    not use ``api`` until the answer is in."""
    return Background(lambda: api.set_state("RUNNING"), "flowdeck-running")


class _NotStarted(Exception):
    """The server did not accept RUNNING: the run belongs to someone else, or to no one."""


def execute_flow_run(options: ExecuteOptions) -> Outcome:
    """Run the flow run ``options.flow_run_id`` to an end state; see the module's description."""
    api = FlowRunApi(options.config, options.flow_run_id)
    warming = _warm_up()  # after the client's own imports, which the first request needs (one GIL)
    try:
        run = api.read_flow_run_checked()
        state = (run.get("state") or {}).get("type")
        if state == "CANCELLING":
            api.set_state("CANCELLED", "Cancelled before it started")
            return Outcome("CANCELLED", "Cancelled before it started", "server")
        if state in FINAL_STATES:
            return Outcome("NOT_STARTED", f"the flow run is already {state}")
        if not run.get("deployment_id"):
            raise FlowRunError(f"flow run {options.flow_run_id} has no deployment",
                               hint="only runs of deployments can be executed")
        deployment = api.read_deployment(str(run["deployment_id"]))
        warming.result()
        return _execute(api, run, deployment, options)
    finally:
        api.close()


def _execute(api: FlowRunApi, run: dict[str, Any], deployment: dict[str, Any],
             options: ExecuteOptions) -> Outcome:
    # Held until the server accepts RUNNING: lines of a run that is not ours never reach it.
    shipper = LogShipper(options.config, options.flow_run_id, hold=True, version_checked=True)
    handler = shipper.handler()
    flowdeck_logger = logging.getLogger("flowdeck")
    flowdeck_logger.addHandler(handler)
    control = _Control()
    stop = threading.Event()
    before = os.getcwd()
    proposal = _propose_running(api)
    early: FlowProcess | None = None
    try:
        with _signals(control):
            _watch_cancellation(options, control, stop)
            try:
                if options.directory is not None:
                    options.directory.mkdir(parents=True, exist_ok=True)
                    os.chdir(options.directory)
                early = _start_early(deployment)
                control.phase = "pull"
                directory = _pull(deployment, shipper)
                control.phase = "flow"
                if control.cancel is not None:
                    raise _Cancelled()
                _accepted(proposal, shipper)
                outcome = _run_flow(directory, deployment, run, options, control, shipper, early)
            except _NotStarted as exc:
                return Outcome("NOT_STARTED", str(exc))
            except _Cancelled:
                by = _cancelled_by(api, control)
                why = "a signal (SIGTERM/SIGINT)" if by == "signal" else "a cancellation from the server"
                outcome = Outcome("CANCELLED", f"Flow run cancelled by {why}", by)
            except FlowdeckError as exc:
                outcome = Outcome("FAILED", f"Flow run failed: {redact(str(exc))}")
            except Exception as exc:
                outcome = Outcome("CRASHED", f"flowdeck could not run the flow: {type(exc).__name__}: "
                                             f"{redact(str(exc))}")
            control.phase = "end"
            try:
                _accepted(proposal, shipper)  # the pull failed or was cancelled: end the run only if ours
            except _NotStarted as exc:
                return Outcome("NOT_STARTED", str(exc))
            return _finish(api, outcome, shipper)
    finally:
        if early is not None:
            early.abandon()  # not used (the pull failed, or the run is not ours): a no-op once it ran
        stop.set()
        flowdeck_logger.removeHandler(handler)
        shipper.close()
        os.chdir(before)
