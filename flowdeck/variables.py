"""Variables: named JSON values that ``{{ prefect.variables.<name> }}`` placeholders read.

Like Prefect's, variables are not secret (use a ``secret`` block for that). Values keep their JSON type:
``flowdeck variable set n 3 --json`` stores the number 3, without ``--json`` the text ``"3"``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from flowdeck.errors import StoreError
from flowdeck.store import decode_json, open_store, transaction

__all__ = ["Variable", "delete_variable", "get_variable", "list_variables", "set_variable"]

# Prefect's variable names: lowercase letters, digits, dashes and underscores. No dots: a placeholder
# `prefect.variables.<name>.<path>` splits on them.
_NAME = re.compile(r"^[a-z0-9_-]+$")
_MAX_NAME = 255


@dataclass(frozen=True)
class Variable:
    """A stored variable."""

    name: str
    value: Any
    updated_at: str | None = None

    @property
    def reference(self) -> str:
        """The placeholder that reads this variable."""
        return f"{{{{ prefect.variables.{self.name} }}}}"


def _check_name(name: str) -> None:
    if not _NAME.match(name) or len(name) > _MAX_NAME:
        raise StoreError(
            f"invalid variable name {name!r}: use lowercase letters, digits, `_` and `-`",
            hint="e.g. `etl_window`; dots cannot appear in a `prefect.variables` placeholder name",
        )


def set_variable(name: str, value: Any) -> Variable:
    """Create or replace a variable (``value`` must be JSON-serialisable)."""
    _check_name(name)
    try:
        text = json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"variable {name!r}: value is not JSON: {exc}") from exc
    with open_store() as conn:
        assert conn is not None
        with transaction(conn):
            conn.execute(
                "INSERT INTO variables (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
                "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                (name, text),
            )
    return Variable(name, value)


def get_variable(name: str) -> Variable | None:
    """The variable ``name``, or ``None``."""
    with open_store(create=False) as conn:
        if conn is None:
            return None
        row = conn.execute("SELECT value, updated_at FROM variables WHERE name = ?", (name,)).fetchone()
    return None if row is None else Variable(name, _stored_value(name, row[0]), row[1])


def list_variables() -> list[Variable]:
    """Every variable, sorted by name."""
    with open_store(create=False) as conn:
        if conn is None:
            return []
        rows = conn.execute("SELECT name, value, updated_at FROM variables ORDER BY name").fetchall()
    return [Variable(name, _stored_value(name, value), updated) for name, value, updated in rows]


def _stored_value(name: str, raw: object) -> Any:
    return decode_json(raw, entry=f"variable {name}",
                       remedy=f"set it again with `flowdeck variable set {name} VALUE` (or remove it with "
                       f"`flowdeck variable rm {name}`)")


def delete_variable(name: str) -> None:
    """Remove a variable; a missing one is a :class:`StoreError`."""
    with open_store(create=False) as conn:
        deleted = 0
        if conn is not None:
            with transaction(conn):
                deleted = conn.execute("DELETE FROM variables WHERE name = ?", (name,)).rowcount
    if not deleted:
        raise StoreError(f"no variable {name!r}", hint="`flowdeck variable ls` lists the variables")
