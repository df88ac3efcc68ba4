"""The real :class:`~flowdeck.templating.references.ReferenceResolver`: blocks and variables from the store.

Blocks are looked up in the environment first (``FLOWDECK_BLOCK__<TYPE>__<NAME>``), then in the local
store; see :mod:`flowdeck.block_store`. Every secret value read is registered for redaction before it is
returned. Results are cached for the resolver's lifetime, like Prefect caches per resolution call, so a
file that references one block ten times reads it once.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["StoreResolver", "default_resolver"]


class StoreResolver:
    """Resolves ``prefect.blocks`` and ``prefect.variables`` placeholders against flowdeck's store."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._blocks: dict[tuple[str, str], Any] = {}
        self._variables: dict[str, Any] = {}
        self._missing_variables: set[str] = set()

    def get_block(self, type_slug: str, name: str) -> Any:
        """The block's data dict; :class:`KeyError` when neither the environment nor the store has it."""
        key = (type_slug, name)
        if key not in self._blocks:
            from flowdeck.registry import current

            registry = current()
            record = registry.find_block(type_slug, name, environ=self._environ)
            if record is None:
                from flowdeck.block_store import env_var_name  # with the store: not for steps without blocks

                env = env_var_name(type_slug, name)
                raise KeyError(f"block {type_slug}/{name} not found in {registry.description} or in ${env}")
            self._blocks[key] = record.data
        return copy.deepcopy(self._blocks[key])

    def get_variable(self, name: str) -> Any:
        """The variable's JSON value; :class:`KeyError` when it does not exist."""
        if name in self._missing_variables:
            raise KeyError(f"variable {name} not found")
        if name not in self._variables:
            from flowdeck.registry import current

            variable = current().get_variable(name)
            if variable is None:
                self._missing_variables.add(name)
                raise KeyError(f"variable {name} not found")
            self._variables[name] = variable.value
        return copy.deepcopy(self._variables[name])


def default_resolver() -> StoreResolver:
    """A resolver over the current process environment and the store under ``FLOWDECK_HOME``."""
    return StoreResolver(os.environ)
