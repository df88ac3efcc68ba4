"""Where deployments, versions, runs, blocks and variables live: flowdeck's store or a Prefect server.

Use :func:`current` to get the registry of this process; see :mod:`flowdeck.registry.choose` for how it is
picked and :class:`~flowdeck.registry.base.Registry` for what it offers.
"""

from __future__ import annotations

from flowdeck.registry.base import Registry
from flowdeck.registry.choose import current, use_api

__all__ = ["Registry", "current", "use_api"]
