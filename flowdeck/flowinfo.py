"""Reading a flow's name, docstring and parameters from its source, without importing it.

Prefect imports the flow file at deploy time, so CI needs every runtime dependency of every flow
(user ask P2). flowdeck parses the file with :mod:`ast` instead: the function, its ``@flow(name=...)``
(or the function name with ``_`` as ``-``, Prefect's default), its docstring and its parameters.
"""

from __future__ import annotations

import ast
import codecs
import hashlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowdeck.errors import DeployError, Location

__all__ = ["FlowInfo", "FlowParameter", "flow_file", "read_flow", "split_entrypoint", "suggest_entrypoint"]


@dataclass(frozen=True)
class FlowParameter:
    """One parameter of the flow function."""

    name: str
    required: bool
    default: Any = None
    annotation: str | None = None


@dataclass(frozen=True)
class FlowInfo:
    """What the entrypoint's source says about the flow."""

    entrypoint: str
    path: Path
    function: str
    flow_name: str
    description: str | None
    parameters: tuple[FlowParameter, ...] = field(default=())
    accepts_kwargs: bool = False
    is_async: bool = False
    source_hash: str = ""

    def parameter_names(self) -> list[str]:
        """Names of the parameters, in order."""
        return [p.name for p in self.parameters]

    def schema(self) -> dict[str, Any]:
        """A small JSON-schema-like description of the parameters (stored with each version)."""
        properties: dict[str, Any] = {}
        for p in self.parameters:
            entry: dict[str, Any] = {"title": p.name}
            if p.annotation:
                entry["annotation"] = p.annotation
            if not p.required:
                entry["default"] = p.default
            properties[p.name] = entry
        return {"type": "object", "properties": properties,
                "required": [p.name for p in self.parameters if p.required]}


def split_entrypoint(entrypoint: str) -> tuple[str, str]:
    """``path/file.py:func`` or ``pkg.mod:func`` or ``pkg.mod.func`` -> (module part, function)."""
    if ":" in entrypoint:
        module, _, func = entrypoint.rpartition(":")
    else:
        module, _, func = entrypoint.rpartition(".")
    return module, func


def flow_file(root: Path, entrypoint: str, *, search_path: bool = True) -> Path | None:
    """The source file an entrypoint points at, relative to ``root`` (None if it cannot be found).

    A module path (``pkg.mod:func``) is looked up under ``root``, then (``search_path``) on ``sys.path``.
    """
    module, _ = split_entrypoint(entrypoint)
    if module.endswith(".py") or "/" in module or "\\" in module:
        path = Path(module)
        return path if path.is_absolute() else root / path
    candidate = root.joinpath(*module.split("."))
    for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
        if path.is_file():
            return path
    if not search_path:
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


def _case_insensitive(root: Path, parts: list[str]) -> Path | None:
    """The existing path under ``root`` whose components equal ``parts`` but for letter case."""
    current = root
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            current = current.parent
            continue
        try:
            names = [e.name for e in current.iterdir()] if current.is_dir() else []
        except OSError:
            return None
        exact = [n for n in names if n == part]
        folded = exact or [n for n in names if n.lower() == part.lower()]
        if not folded:
            return None
        current = current / folded[0]
    return current


def suggest_entrypoint(root: Path, entrypoint: str) -> str | None:
    """A corrected entrypoint when the written one is not found but a file it plainly means exists: other
    letter case, ``\\`` for ``/``, a module path (``pkg.mod:fn``) or a path without ``.py``."""
    module, func = split_entrypoint(entrypoint)
    if not module:
        return None
    spellings: list[str] = []
    slashed = module.replace("\\", "/")
    spellings.append(slashed)
    if not slashed.endswith(".py"):
        spellings.append(slashed + ".py")
        if "/" not in slashed:
            spellings.append(slashed.replace(".", "/") + ".py")
            spellings.append(slashed.replace(".", "/") + "/__init__.py")
    for spelling in dict.fromkeys(spellings):
        found = _case_insensitive(root, spelling.split("/"))
        if found is not None and found.is_file():
            rel = found.relative_to(root).as_posix() if found.is_relative_to(root) else str(found)
            suggestion = f"{rel}:{func}"
            if suggestion != entrypoint:
                return suggestion
    return None


# Syntax added after Python 3.11 (flowdeck reads flows with the Python it runs on).
_NEWER_SYNTAX = (
    (re.compile(r"^\s*type\s+\w+(\[.*\])?\s*="), "3.12", "a `type` alias"),
    (re.compile(r"^\s*(async\s+)?(def|class)\s+\w+\["), "3.12", "type parameters (`def f[T]`)"),
    (re.compile(r"""f(['"]).*\{[^}]*\1"""), "3.12", "an f-string that reuses its quotes inside `{}`"),
)


def _syntax_message(source: bytes, exc: SyntaxError) -> tuple[str, str | None]:
    """What is wrong with a flow file that does not parse, and a hint (never a line 'None')."""
    if source.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
            len(source) >= 4 and ((source[1] == 0 and source[3] == 0) or (source[0] == 0 and source[2] == 0))):
        return ("the flow file is UTF-16 encoded; Python reads source files as UTF-8",
                "save it as UTF-8 (in most editors: 'Save with encoding' / 'Reopen with encoding')")
    where = f"line {exc.lineno}: " if exc.lineno else ""
    message = f"cannot parse the flow file: {where}{exc.msg}"
    text = exc.text or ""
    if not text and exc.lineno:
        lines = source.decode("utf-8", "replace").splitlines()
        text = lines[exc.lineno - 1] if 0 < exc.lineno <= len(lines) else ""
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    for pattern, version, what in _NEWER_SYNTAX:
        if pattern.search(text) and sys.version_info < tuple(int(v) for v in version.split(".")):
            return (f"{message}; it uses {what}, syntax of Python {version}, newer than the Python {running} "
                    "flowdeck runs on",
                    f"run flowdeck with Python {version} or later (the Python your flows run on)")
    return message, None


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return ast.unparse(node)


def _decorator_name(func: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The ``name=`` given to ``@flow(...)`` (``@prefect.flow``, ``@flow``), if any."""
    for dec in func.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        label = ast.unparse(target)
        if label.split(".")[-1] != "flow" or not isinstance(dec, ast.Call):
            continue
        for kw in dec.keywords:
            if kw.arg == "name" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                return kw.value.value
        if dec.args and isinstance(dec.args[0], ast.Constant) and isinstance(dec.args[0].value, str):
            return dec.args[0].value
    return None


def _parameters(args: ast.arguments) -> tuple[list[FlowParameter], bool]:
    params: list[FlowParameter] = []
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for arg, default in zip(positional, defaults, strict=True):
        params.append(FlowParameter(arg.arg, default is None, _literal(default),
                                    ast.unparse(arg.annotation) if arg.annotation else None))
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        params.append(FlowParameter(arg.arg, kw_default is None, _literal(kw_default),
                                    ast.unparse(arg.annotation) if arg.annotation else None))
    return params, args.kwarg is not None


def read_flow(root: Path, entrypoint: str, *, location: Location | None = None,
              key_path: str | None = None) -> FlowInfo:
    """Parse the entrypoint's file and describe its flow. Errors are located at ``location``."""
    module, func_name = split_entrypoint(entrypoint)
    if not module or not func_name:
        raise DeployError(f"entrypoint '{entrypoint}' does not name a function", location=location,
                          key_path=key_path, hint="write it as `path/to/file.py:function_name`")
    path = flow_file(root, entrypoint)
    if path is None or not path.is_file():
        shown = module if path is None else str(path.relative_to(root) if path.is_relative_to(root) else path)
        suggestion = suggest_entrypoint(root, entrypoint)
        raise DeployError(f"entrypoint file '{shown}' does not exist", location=location, key_path=key_path,
                          hint=f"did you mean '{suggestion}'?" if suggestion
                          else f"entrypoints are relative to the project root ({root})")
    source = path.read_bytes()
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        error = exc if isinstance(exc, SyntaxError) else SyntaxError(str(exc))
        message, hint = _syntax_message(source, error)
        raise DeployError(f"{path.name}: {message}", location=location, key_path=key_path, hint=hint) from None
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == func_name]
    if not found:
        names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        from flowdeck.suggest import did_you_mean

        hint = did_you_mean(func_name, names) or (f"functions in {path.name}: {', '.join(names)}" if names
                                                  else f"{path.name} defines no function")
        raise DeployError(f"function '{func_name}' is not defined at the top level of {path.name}",
                          location=location, key_path=key_path, hint=hint)
    func = found[-1]
    params, kwargs = _parameters(func.args)
    return FlowInfo(
        entrypoint=entrypoint,
        path=path,
        function=func_name,
        flow_name=_decorator_name(func) or func_name.replace("_", "-"),
        description=ast.get_docstring(func),
        parameters=tuple(params),
        accepts_kwargs=kwargs,
        is_async=isinstance(func, ast.AsyncFunctionDef),
        source_hash=hashlib.md5(source, usedforsecurity=False).hexdigest(),
    )
