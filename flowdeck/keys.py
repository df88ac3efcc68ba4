"""Key paths into a loaded file (``deployments[0].pull[1]``), and where each value of the file was written.

Apart from :mod:`flowdeck.source`, which parses YAML, so that code that only names or locates values (the step
runner on a worker, error messages) does not import the YAML parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowdeck.errors import Location, Problem

__all__ = ["KeyPath", "LoadedFile", "SourceMap", "format_key_path", "iter_paths"]

KeyPath = tuple[str | int, ...]


def format_key_path(path: KeyPath) -> str:
    """Render ``("deployments", 0, "pull", 1)`` as ``deployments[0].pull[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a loaded file was written."""

    file: str
    values: dict[KeyPath, Location] = field(default_factory=dict)
    keys: dict[KeyPath, Location] = field(default_factory=dict)

    def locate(self, path: KeyPath) -> Location | None:
        """The location of the value at ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            loc = self.values.get(path[:end])
            if loc is not None:
                return loc
        return None

    def locate_key(self, path: KeyPath) -> Location | None:
        """The location of the mapping key that ends ``path`` (falls back to :meth:`locate`)."""
        return self.keys.get(path) or self.locate(path)


@dataclass
class LoadedFile:
    """A parsed file: its data, where everything came from, and problems found while reading it."""

    path: Path
    data: Any
    source: SourceMap
    problems: list[Problem] = field(default_factory=list)
    text: str = ""


def iter_paths(data: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """Every (path, value) pair of a nested structure, parents first."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from iter_paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from iter_paths(value, (*path, index))
