"""Dotted key paths: Prefect's ``get_from_dict`` lookup and the ``pull[0].git_clone.branch`` rendering.

Two different paths live here. A *lookup path* is the dotted name inside a placeholder
(``{{ step.list[0].x }}``), resolved against step outputs or block data. A *key path* is where a value
sits inside the YAML document (``("pull", 0, "git_clone", "branch")``), used to point errors and
warnings at the right place.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from flowdeck.errors import Location
from flowdeck.keys import KeyPath, format_key_path

__all__ = ["NOTSET", "KeyPath", "Locator", "NotSetType", "format_key_path", "get_from_dict"]


class NotSetType(enum.Enum):
    """The type of :data:`NOTSET`, Prefect's ``NotSet``: "no value", which is different from ``None``."""

    NOTSET = "NOTSET"

    def __repr__(self) -> str:
        return "NOTSET"


#: A placeholder found no value. ``apply_values`` drops dict keys and list items that come back as this.
NOTSET: Final = NotSetType.NOTSET

#: Maps a key path to its position in the source file, when known.
Locator: TypeAlias = Callable[[KeyPath], Location | None]

_INDEX = re.compile(r"\[(\d+)\]")


def get_from_dict(data: Any, keypath: str, default: Any = None) -> Any:
    """Look up a dotted ``keypath`` such as ``a.b[0].c`` (or ``a.b.0.c``) in nested dicts and lists.

    Like Prefect, each segment is tried first as an integer index, then as a key, and any
    ``KeyError``, ``IndexError`` or ``TypeError`` on the way gives ``default``.
    """
    segments = _INDEX.sub(r".\1", keypath).split(".")
    current = data
    try:
        for segment in segments:
            try:
                current = current[int(segment)]
            except (ValueError, KeyError, IndexError, TypeError):
                current = current[segment]
    except (KeyError, IndexError, TypeError):
        return default
    return current
