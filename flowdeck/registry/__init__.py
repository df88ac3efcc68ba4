"""Where deployments, versions, runs, blocks and variables live: flowdeck's store or a Prefect server.

Use :func:`current` to get the registry of this process; see :mod:`flowdeck.registry.choose` for how it is
picked and :class:`~flowdeck.registry.base.Registry` for what it offers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowdeck.registry.base import Registry
    from flowdeck.registry.choose import current, use_api

__all__ = ["Registry", "current", "use_api"]


def __getattr__(name: str) -> Any:
    # Lazy: `flowdeck flow-run execute` imports the server client (flowdeck.registry.server.client) and
    # must not pay for the embedded store's modules (sqlite3, the history, blocks) at every flow run.
    if name == "Registry":
        from flowdeck.registry.base import Registry

        return Registry
    if name in ("current", "use_api"):
        from flowdeck.registry import choose

        return getattr(choose, name)
    raise AttributeError(f"module 'flowdeck.registry' has no attribute {name!r}")
