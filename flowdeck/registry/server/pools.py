"""What a deployment needs on a Prefect server before it can be written: its work pool and its flow."""

from __future__ import annotations

from flowdeck.errors import RegistryError
from flowdeck.registry.server.client import PrefectClient

__all__ = ["WorkPools", "upsert_flow"]


def upsert_flow(client: PrefectClient, name: str) -> str:
    """The id of the flow called ``name``, created if the server has none (``POST /flows/`` is an upsert)."""
    return str(client.post("flows/", {"name": name}, what=f"flow '{name}'")["id"])


class WorkPools:
    """Checks that work pools exist (creating them on request), each once per registry."""

    def __init__(self, client: PrefectClient, description: str) -> None:
        self.client = client
        self.description = description
        # A pool seen once stays: a deploy of many deployments on one pool costs one read.
        self._checked: set[str] = set()

    def check(self, pool: str, create: bool) -> None:
        """RegistryError (with the command that creates it) if ``pool`` does not exist, unless ``create``."""
        if pool in self._checked:
            return
        if self.client.get_or_none(f"work_pools/{pool}") is None:
            if not create:
                raise RegistryError(
                    f"work pool '{pool}' does not exist on {self.description}",
                    hint=f"create it with `prefect work-pool create {pool} --type process`, or deploy with "
                         "`--create-pool`")
            self.client.post("work_pools/", {"name": pool, "type": "process"}, what=f"work pool '{pool}'")
        self._checked.add(pool)
