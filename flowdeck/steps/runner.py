"""Running a section's steps in order, as Prefect's ``run_steps`` does, with located errors.

Per step: template the inputs (step outputs, blocks, variables, environment: Prefect's order), find the
function, call it (sync or async), then record a dict result under the step's id and flat. A failing step
raises :class:`StepExecutionError` naming the section, index, step, id and location; later steps do not
run.
"""

from __future__ import annotations

import copy
import inspect
import logging
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowdeck.config import StepEntry
from flowdeck.errors import FlowdeckError, Location, StepExecutionError, StepInputError
from flowdeck.keys import KeyPath, format_key_path
from flowdeck.redact import redact
from flowdeck.steps.loader import load_step_function
from flowdeck.steps.shell import SHELL_STEP, render_script
from flowdeck.templating import render_step_inputs
from flowdeck.templating.references import ReferenceResolver

__all__ = ["RunOptions", "StepRecord", "call_step", "run_steps"]

logger = logging.getLogger("flowdeck.steps")


@dataclass
class RunOptions:
    """How steps run: where blocks come from, strictness, installs, and where the file is."""

    resolver: ReferenceResolver | None = None
    strict: bool = False
    install_requires: bool = False
    root: Path | None = None
    locate: Callable[[KeyPath], Location | None] | None = None


@dataclass
class StepRecord:
    """What one step did (for summaries and ``--json``)."""

    section: str
    index: int
    name: str
    step_id: str | None
    seconds: float
    output: dict[str, Any] | None = field(default=None)


def call_step(func: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Call a step function; await it when it is (or returns) a coroutine, even inside a running loop."""
    result = func(**kwargs)
    if not inspect.isawaitable(result):
        return result
    import asyncio  # only for async steps: most are not, and its import is a noticeable part of a pull

    async def wait() -> Any:
        return await result

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    # Called from async code: run the step's own loop in a fresh thread, as Prefect does.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(wait())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="flowdeck-step")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _check_rendered(step: StepEntry, kwargs: dict[str, Any]) -> None:
    spec = step.spec
    if spec is None:
        return
    for name in spec.required():
        if kwargs.get(name) is None:
            path = (*step.path, step.written, name)
            raise StepInputError(
                f"{spec.short_name} needs '{name}', but it is missing or resolved to nothing",
                location=step.location, key_path=format_key_path(path),
                hint="check the placeholder that should provide it")
    if not spec.accepts_extra:
        for name in kwargs:
            if spec.param(name) is None:
                raise StepInputError(f"{spec.short_name} has no argument '{name}'", location=step.location,
                                     key_path=format_key_path((*step.path, step.written, name)))


def _failure(step: StepEntry, exc: BaseException) -> StepExecutionError:
    if isinstance(exc, FlowdeckError):
        message = exc.message
        if exc.location is not None and exc.location != step.location:
            message = f"{exc.location}: {message}"
        hint = exc.hint
    else:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        hint = None
    return StepExecutionError(
        redact(message), section=step.section, index=step.index, step=step.written, step_id=step.step_id,
        location=step.location, hint=redact(hint) if hint else None)


def _render(step: StepEntry, outputs: Mapping[str, Any], options: RunOptions) -> dict[str, Any]:
    def render(inputs: dict[str, Any]) -> dict[str, Any]:
        rendered: dict[str, Any] = render_step_inputs(
            inputs, outputs, options.resolver, strict=options.strict, locate=options.locate,
            base_path=(*step.path, step.written))
        return rendered

    arguments = step.arguments()
    script = arguments.get("script")
    if step.canonical != SHELL_STEP or not isinstance(script, str) or arguments.get("shell") is True:
        return render(arguments)
    # Render each value of a shell script on its own, so that the step can keep it in one argument.
    templated = render_script(script, lambda piece: render({"script": piece}).get("script"))
    if templated is None:
        return render(arguments)
    kwargs = render({**arguments, "script": ""})
    kwargs["script"] = templated
    return kwargs


def _call_showing_warnings(func: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Call a step; its deprecation warnings (hidden by Python's default filters) are shown once each, as
    Prefect's ``run_steps`` prints them; every other warning goes on as it was raised."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("default")
            warnings.simplefilter("always", DeprecationWarning)
            try:
                return call_step(func, kwargs)
            finally:
                caught = list(recorded)
    finally:
        shown: set[str] = set()
        for item in caught:
            if issubclass(item.category, DeprecationWarning | PendingDeprecationWarning):
                text = f"{item.category.__name__}: {item.message}"
                if text not in shown:
                    shown.add(text)
                    logger.warning("%s", redact(text))
            else:
                warnings.warn_explicit(item.message, item.category, item.filename, item.lineno,
                                       source=item.source)


def run_steps(
    steps: Sequence[StepEntry],
    upstream_outputs: Mapping[str, Any] | None = None,
    options: RunOptions | None = None,
    records: list[StepRecord] | None = None,
) -> dict[str, Any]:
    """Run ``steps`` in order and return the accumulated outputs (upstream ones included)."""
    options = options or RunOptions()
    outputs: dict[str, Any] = copy.deepcopy(dict(upstream_outputs or {}))
    for step in steps:
        logger.info(" > Running %s step...", step.short_name)
        started = time.monotonic()
        try:
            kwargs = _render(step, outputs, options)
            _check_rendered(step, kwargs)
            func = load_step_function(step.written, step.requires, root=options.root,
                                      install=options.install_requires)
            result = _call_showing_warnings(func, kwargs)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            raise _failure(step, exc) from exc
        elapsed = time.monotonic() - started
        output = result if isinstance(result, dict) else None
        if output is not None:
            if step.step_id:
                outputs[step.step_id] = output
            outputs.update(output)
        if records is not None:
            records.append(StepRecord(step.section, step.index, step.canonical, step.step_id, elapsed, output))
        logger.debug("   %s finished in %.2fs", step.short_name, elapsed)
    return outputs
