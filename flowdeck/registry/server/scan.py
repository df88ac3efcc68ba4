"""Read every version record flowdeck keeps on a Prefect server, whatever the deployment, in a few requests.

``snapshot gc`` deletes what no version references, so this read must be complete: the artifacts are read
in pages of 200 (the server's largest page) between two counts, and a pass during which the number of
version records changed (a deploy, a ``deployment rm``: offset pages can then skip a record) is read again.
"""

from __future__ import annotations

from typing import Any

from flowdeck.errors import RegistryError
from flowdeck.registry.server.client import PAGE, PrefectClient

__all__ = ["PAGE", "VERSION_TYPE", "every_version_artifact"]

#: The artifact type of a version record (the live pointers have a type of their own).
VERSION_TYPE = "flowdeck-version"
_PASSES = 3


def every_version_artifact(client: PrefectClient) -> list[dict[str, Any]]:
    """Every version artifact on the server (any deployment, including ones removed outside flowdeck)."""
    filters = {"artifacts": {"type": {"any_": [VERSION_TYPE]}}}
    what = "flowdeck's version records"
    counts: list[int] = []
    for _ in range(_PASSES):
        before = int(client.post("artifacts/count", filters, what=what))
        # A total order (the id), so that pages of an unchanged set neither overlap nor leave gaps.
        records = client.post_all("artifacts/filter", {**filters, "sort": "ID_DESC"}, what=what)
        found = {str(a.get("id")): a for a in records if isinstance(a, dict)}
        after = int(client.post("artifacts/count", filters, what=what))
        if before == after == len(found):
            return list(found.values())
        counts.append(after)
    raise RegistryError(
        f"the version records on the Prefect server at {client.where} kept changing while they were read "
        f"({', '.join(map(str, counts))} records)",
        hint="run the command again once the deploys in progress have finished",
    )
