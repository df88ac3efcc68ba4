"""Variables as the variables of a Prefect server."""

from __future__ import annotations

import copy
from typing import Any

from flowdeck.errors import RegistryNotFound, StoreError
from flowdeck.registry.server.client import PrefectClient
from flowdeck.variables import Variable, _check_name

__all__ = ["delete_variable", "get_variable", "list_variables", "set_variable"]

# The server checks the value; this says what it wants when it refuses one.
_VALUE_HINT = "a variable's value must be JSON under 5,000 characters"


def set_variable(client: PrefectClient, name: str, value: Any) -> Variable:
    """Create or replace a variable on the server."""
    _check_name(name)
    what = f"variable '{name}'"
    if client.get_or_none(f"variables/name/{name}") is None:
        client.post("variables/", {"name": name, "value": copy.deepcopy(value)}, what=what, hint=_VALUE_HINT)
    else:
        client.patch(f"variables/name/{name}", {"value": copy.deepcopy(value)}, what=what, hint=_VALUE_HINT)
    return Variable(name, value)


def get_variable(client: PrefectClient, name: str) -> Variable | None:
    """A variable from the server, or None."""
    var = client.get_or_none(f"variables/name/{name}")
    return Variable(name, var.get("value"), var.get("updated")) if isinstance(var, dict) else None


def list_variables(client: PrefectClient) -> list[Variable]:
    """Every variable on the server."""
    found = client.post("variables/filter", {"limit": 200, "sort": "NAME_ASC"}, what="variables")
    return [Variable(v["name"], v.get("value"), v.get("updated")) for v in found]


def delete_variable(client: PrefectClient, description: str, name: str) -> None:
    """Remove a variable from the server; StoreError if there is none."""
    try:
        client.delete(f"variables/name/{name}", what=f"variable '{name}'")
    except RegistryNotFound:
        raise StoreError(f"no variable {name!r} on {description}",
                         hint="`flowdeck variable ls` lists the variables") from None
