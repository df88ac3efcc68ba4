"""Naming the JSON type of a Python value, for messages and type checks."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["describe", "dumps_sorted", "json_type"]

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
