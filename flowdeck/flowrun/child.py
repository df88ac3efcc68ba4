"""The flow itself, in a child process: import the entrypoint, call it with the run's parameters.

Run as ``python -m flowdeck.cli.flowrun_child SPEC.json`` in the directory the pull steps left, in a process
group of its own so a cancellation stops the flow and everything it started. A Prefect ``@flow`` is called
through its plain function (the parent owns the run's states); a coroutine function is awaited. On failure
it writes the error and where it happened to ``SPEC.json``'s ``error_file`` and exits 1.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

__all__ = ["call_entrypoint", "load_entrypoint", "run_child"]


def _plain_function(obj: Any) -> Any:
    """A Prefect flow's underlying function (Prefect need not be installed to recognise one)."""
    fn = getattr(obj, "fn", None)
    if fn is not None and callable(fn) and type(obj).__module__.startswith("prefect"):
        return fn
    return obj


def load_entrypoint(directory: Path, entrypoint: str) -> Any:
    """Import ``path/file.py:func`` (relative to ``directory``) or ``module:func``; nothing of flowdeck's
    engine is imported, so the flow's first line comes as soon as Python and the flow's own imports allow."""
    import importlib
    import importlib.util

    target, _, attr = entrypoint.rpartition(":")
    if not target or not attr:
        raise ValueError(f"entrypoint '{entrypoint}' is not `path/to/file.py:function` or `module:function`")
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    if target.endswith(".py") or "/" in target:
        path = Path(target) if Path(target).is_absolute() else directory / target
        if not path.is_file():
            raise FileNotFoundError(f"the entrypoint's file {target} is not in {directory}")
        spec = importlib.util.spec_from_file_location("__flowdeck_flow__", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def call_entrypoint(directory: Path, entrypoint: str, parameters: dict[str, Any]) -> Any:
    """Import ``entrypoint`` (``path/file.py:func`` or ``module:func``) from ``directory`` and call it."""
    func = _plain_function(load_entrypoint(directory, entrypoint))
    result = func(**parameters)
    if inspect.isawaitable(result):
        import asyncio  # only for a coroutine flow: its import is a good part of the child's start-up

        async def wait() -> Any:
            return await result

        result = asyncio.run(wait())
    return result


def _where(exc: BaseException, directory: Path) -> str | None:
    """``file:line`` of the innermost frame in the project's own code."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.is_absolute() and path.is_relative_to(directory):
            found = f"{path.relative_to(directory)}:{frame.lineno}"
    return found


def run_child(spec_file: Path) -> int:
    """Run the flow described by ``spec_file``; 0 when it returned, 1 when it raised (details written to the
    spec's ``error_file``, the traceback to stderr, where the parent turns it into the run's logs)."""
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    directory = Path(spec["directory"])
    if sys.path and sys.path[0] == os.getcwd():
        # `python -m` put the directory it started in first; a child started before the pull ended
        # started elsewhere, and the flow must see what it would see started in `directory`.
        sys.path[0] = str(directory)
    os.chdir(directory)
    try:
        call_entrypoint(directory, spec["entrypoint"], spec.get("parameters") or {})
    except BaseException as exc:
        from flowdeck.errors import FlowdeckError
        from flowdeck.redact import redact

        traceback.print_exc()
        message = str(exc) if isinstance(exc, FlowdeckError) else (
            f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        Path(spec["error_file"]).write_text(json.dumps({
            "message": redact(message), "where": _where(exc, directory.resolve()),
            "setup": isinstance(exc, FlowdeckError)}), encoding="utf-8")
        return 1
    finally:
        sys.stdout.flush()
    return 0
