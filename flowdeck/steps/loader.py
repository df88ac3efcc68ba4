"""Finding the function behind a step name: built-ins, aliases, and users' own importable steps."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flowdeck.errors import FlowdeckError, MissingDependencyError, UnknownStepError
from flowdeck.redact import redact
from flowdeck.steps.aliases import resolve_name
from flowdeck.steps.registry import load_callable

__all__ = ["import_object", "install_requirements", "load_step_function", "missing_requirements"]

_VERSION_CUT = re.compile(r"[\[<>=!~;@\s]")


def requirement_module(requirement: str) -> str:
    """The module a requirement most likely provides: ``prefect-aws[x]>=1`` -> ``prefect_aws``."""
    return _VERSION_CUT.split(requirement.strip(), 1)[0].strip().replace("-", "_").lower()


def missing_requirements(requires: Sequence[str]) -> list[str]:
    """The requirements whose module cannot be found."""
    missing = []
    for requirement in requires:
        module = requirement_module(requirement)
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            from importlib import metadata  # only here: a tenth of the steps' import time, rarely needed

            try:
                metadata.distribution(_VERSION_CUT.split(requirement.strip(), 1)[0])
                found = True
            except metadata.PackageNotFoundError:
                found = False
        if not found:
            missing.append(requirement)
    return missing


def _engine_constraints() -> str:
    """Pins for flowdeck's own dependencies, so a step's requirement can never change the engine."""
    from importlib import metadata

    lines = []
    for name in ("pyyaml", "jinja2", "jsonschema", "gitpython", "pathspec", "rich", "filelock"):
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(lines) + "\n"


def install_requirements(requires: Sequence[str]) -> None:
    """``pip install`` step requirements without touching the engine's own packages."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(_engine_constraints())
        constraints = fh.name
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--constraint", constraints, *requires],
            capture_output=True, text=True, check=False,
        )
    finally:
        Path(constraints).unlink(missing_ok=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise MissingDependencyError(
            f"installing {' '.join(requires)} failed: {redact(tail)}",
            hint="install the packages yourself, then run again",
        )
    importlib.invalidate_caches()


def import_object(name: str, root: Path | None = None) -> Any:
    """Import ``pkg.mod.attr``, ``pkg.mod:attr``, ``pkg.mod:obj.method`` or ``path/file.py:attr``."""
    if ":" in name:
        module_part, _, attr_path = name.partition(":")
    else:
        module_part, _, attr_path = name.rpartition(".")
    if not module_part or not attr_path:
        raise ImportError(f"'{name}' is not a dotted path to a function")
    if module_part.endswith(".py") or "/" in module_part:
        file_path = Path(module_part)
        if not file_path.is_absolute() and root is not None:
            file_path = root / file_path
        if not file_path.is_file():
            raise ImportError(f"no such file: {module_part}")
        spec = importlib.util.spec_from_file_location(f"flowdeck_user_step_{abs(hash(file_path))}", file_path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {module_part}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_part)
    obj: Any = module
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def load_step_function(
    name: str,
    requires: Sequence[str] = (),
    *,
    root: Path | None = None,
    install: bool = False,
) -> Callable[..., Any]:
    """The callable for a step name. Built-ins and aliases never need ``requires`` installed.

    A user step whose requirements are missing raises :class:`MissingDependencyError` with the exact
    ``pip install`` command, unless ``install`` is set.
    """
    resolution = resolve_name(name)
    if resolution.spec is not None:
        return load_callable(resolution.spec)
    missing = missing_requirements(requires)
    if missing and install:
        install_requirements(missing)
        missing = missing_requirements(requires)
    try:
        func = import_object(name, root)
    except (ImportError, AttributeError) as exc:
        if missing:
            packages = " ".join(f"'{m}'" if any(c in m for c in "<>=![") else m for m in missing)
            raise MissingDependencyError(
                f"step '{name}' needs {', '.join(missing)}, which is not installed",
                hint=f"run `pip install {packages}`, or pass --install-requires",
            ) from None
        raise UnknownStepError(
            f"cannot import step '{name}': {exc}",
            hint="check the module path, or run `flowdeck steps list` for the built-in steps",
        ) from None
    except FlowdeckError:
        raise
    except Exception as exc:
        raise UnknownStepError(f"importing step '{name}' failed: {type(exc).__name__}: {exc}") from exc
    if not callable(func):
        raise UnknownStepError(f"'{name}' is not a function")
    result: Callable[..., Any] = func
    return result
