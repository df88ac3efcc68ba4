"""The worker side: run a deployment version's pull steps, then call its flow.

:func:`pull_deployment` is the Python API for workers that embed flowdeck: it runs the pull steps of
the live (or a given) version in a directory, resolving blocks, variables and environment variables
now, and returns the final working directory (the last ``directory`` output wins, Prefect's rule).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.config import parse_step
from flowdeck.errors import DeployError, FlowdeckError
from flowdeck.paths import home_dir
from flowdeck.redact import redact
from flowdeck.steps.runner import RunOptions, StepRecord, run_steps
from flowdeck.templating.references import ReferenceResolver

if TYPE_CHECKING:
    from flowdeck.history import RunRow, VersionRow

# What only pull_deployment and run_deployment need is imported there: `flowdeck flow-run execute` runs
# pull steps (run_pull_steps) in every flow run and must not wait for the store, run logs or asyncio.

__all__ = ["PullResult", "RunResult", "pull_deployment", "run_deployment", "run_pull_steps"]


@dataclass
class PullResult:
    """Where the code ended up, and what the pull steps produced."""

    deployment: str
    revision: int
    label: str
    directory: Path
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """A finished (or skipped, for a reused idempotency key) flow run."""

    run: RunRow
    executed: bool
    log_path: Path | None = None


@contextmanager
def _chdir(path: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def pull_deployment(
    name: str,
    version: str | None = None,
    directory: Path | str | None = None,
    *,
    resolver: ReferenceResolver | None = None,
    strict: bool = False,
    install_requires: bool = False,
) -> PullResult:
    """Run the pull steps of a deployment version in ``directory`` (a new temporary one by default).

    Blocks and variables come from ``resolver``; by default, flowdeck's store (``FLOWDECK_HOME``) and the
    ``FLOWDECK_BLOCK__*`` environment variables.
    """
    if resolver is None:
        from flowdeck.resolver import default_resolver

        resolver = default_resolver()
    from flowdeck.registry import current

    row = current().get_version(name, version)
    target = Path(directory) if directory is not None else Path(
        tempfile.mkdtemp(prefix=f"flowdeck-{row.record.get('name', 'run')}-"))
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    options = RunOptions(resolver=resolver, strict=strict, install_requires=install_requires, root=target)
    from flowdeck.snapshot.pin import pinned_snapshots

    # The version's snapshots pin its storage pulls to exactly the code it was deployed with.
    pin = pinned_snapshots(row.record.get("snapshots"), f"{row.deployment} version {row.label}")
    with _chdir(target), pin:
        final, outputs = run_pull_steps(row.record.get("pull_steps") or [], options)
    return PullResult(row.deployment, row.revision, row.label, final, outputs)


def run_pull_steps(raw_steps: list[Any], options: RunOptions) -> tuple[Path, dict[str, Any]]:
    """Run stored pull steps in the current directory; the directory they leave (the last ``directory``
    output wins, Prefect's rule) and their outputs."""
    steps = []
    for index, item in enumerate(raw_steps):
        entry = parse_step("pull", index, item, ("pull_steps", index), None)
        if entry is not None:
            steps.append(entry)
    final = Path.cwd()
    records: list[StepRecord] = []
    outputs: dict[str, Any] = {}
    for step in steps:
        cwd = Path.cwd()
        outputs = run_steps([step], outputs, options, records)
        produced = records[-1].output if records else None
        if produced and produced.get("directory"):
            final = (cwd / str(produced["directory"])).resolve()
    return final, outputs


def merged_parameters(row: VersionRow, param_file: Mapping[str, Any] | None,
                      overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The deployment's parameters, overridden by a parameter file, then by ``--param`` values."""
    parameters = dict(row.record.get("parameters") or {})
    parameters.update(param_file or {})
    parameters.update(overrides or {})
    return parameters


def _load_flow(directory: Path, entrypoint: str) -> Any:
    from flowdeck.flowinfo import split_entrypoint
    from flowdeck.steps.loader import import_object

    module, func = split_entrypoint(entrypoint)
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    spec = f"{module}:{func}"
    try:
        return import_object(spec, directory)
    except (ImportError, AttributeError) as exc:
        raise DeployError(f"cannot load the flow '{entrypoint}' from {directory}: {exc}",
                          hint="check that the pull steps put the code where the entrypoint expects it") from exc


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def run_deployment(
    name: str,
    *,
    version: str | None = None,
    directory: Path | str | None = None,
    parameters: Mapping[str, Any] | None = None,
    param_file: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    idempotency_key: str | None = None,
    resolver: ReferenceResolver | None = None,
    strict: bool = False,
) -> RunResult:
    """Pull, then import the entrypoint from the final directory and call it; the run is recorded."""
    import asyncio

    from flowdeck.registry import current
    from flowdeck.runlogs import RunLogCapture

    registry = current()
    row = registry.get_version(name, version)
    merged = merged_parameters(row, param_file, parameters)
    run, fresh = registry.start_run(row.deployment, row.revision, merged, run_name, idempotency_key)
    if not fresh:
        return RunResult(run, executed=False)
    # A run without --dir works in a directory of its own that is removed afterwards (user ask G5).
    scratch = None if directory is not None else tempfile.TemporaryDirectory(prefix="flowdeck-run-")
    try:
        workdir = Path(scratch.name) if scratch is not None else directory
        # What the pull steps and the flow print or log becomes the run's logs in the registry (Prefect's UI).
        with RunLogCapture(lambda batch: registry.send_run_logs(run.id, batch)):
            pulled = pull_deployment(row.deployment, str(row.revision), workdir, resolver=resolver, strict=strict)
            with _chdir(pulled.directory):
                func = _load_flow(pulled.directory, str(row.record["entrypoint"]))
                result = func(**merged)
                if inspect.isawaitable(result):
                    result = asyncio.run(_await(result))
    except KeyboardInterrupt:
        registry.finish_run(run.id, "cancelled")
        raise
    except BaseException as exc:
        log_path = home_dir() / "runs" / f"{run.id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(redact("".join(traceback.format_exception(exc))), encoding="utf-8")
        message = str(exc) if isinstance(exc, FlowdeckError) else f"{type(exc).__name__}: {exc}"
        finished = registry.finish_run(run.id, "failed", error=redact(message))
        return RunResult(finished, executed=True, log_path=log_path)
    finally:
        if scratch is not None:
            scratch.cleanup()
    finished = registry.finish_run(run.id, "completed", result=_jsonable(result),
                          directory=str(pulled.directory) if scratch is None else None)
    return RunResult(finished, executed=True)


async def _await(value: Any) -> Any:
    return await value
