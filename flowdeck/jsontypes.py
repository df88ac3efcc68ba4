"""Naming the JSON type of a Python value, for messages and type checks."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "describe", "dumps_sorted", "json_type", "loads_bounded"]

#: The deepest nesting accepted in JSON that users give flowdeck (as for prefect.yaml: see yaml_loader).
MAX_JSON_DEPTH = 100

_ARTICLE = {"null": "null", "boolean": "a boolean", "integer": "an integer", "number": "a number",
            "string": "a string", "array": "a list", "object": "a mapping"}


def json_type(value: Any, *, integers: bool = True) -> str:
    """``null``, ``boolean``, ``integer``, ``number``, ``string``, ``array`` or ``object`` (else the class name).

    With ``integers=False`` an int is a ``number``, as JSON Schema's ``number`` type accepts it.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if integers else "number"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def describe(value: Any) -> str:
    """The type in words: ``a string``, ``a list``, ``a mapping``, ..."""
    kind = json_type(value)
    return _ARTICLE.get(kind, kind)


def dumps_sorted(value: Any, **options: Any) -> str:
    """``json.dumps(value, sort_keys=True, default=str, **options)`` that never fails on mixed key types.

    YAML mapping keys may be strings, numbers, booleans and null in one mapping (``{1: a, null: b}``),
    which ``sort_keys`` cannot order. Such a value is dumped with its keys as JSON writes them (strings),
    the form it is stored in anyway; every other value gives exactly what ``json.dumps`` gives.
    """
    try:
        return json.dumps(value, sort_keys=True, default=str, **options)
    except TypeError:
        normalised = json.loads(json.dumps(value, default=str))
        return json.dumps(normalised, sort_keys=True, default=str, **options)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``limit`` levels (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads_bounded(text: str | bytes) -> Any:
    """``json.loads`` that refuses nesting deeper than :data:`MAX_JSON_DEPTH` with a ``JSONDecodeError``.

    Deeper data would make every later walk of it (templating, hashing, output) raise RecursionError.
    """
    source = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    try:
        value = json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError(f"nested more than {MAX_JSON_DEPTH} levels deep", source, 0) from None
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise json.JSONDecodeError(f"nested more than {MAX_JSON_DEPTH} levels deep", source, 0)
    return value
