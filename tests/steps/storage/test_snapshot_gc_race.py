"""`snapshot gc` racing a push of the very tree it is about to delete: the rewritten manifest is kept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.snapshot.admin import Location, collect_garbage, list_snapshots, open_location
from flowdeck.steps.storage.remote import RemoteObject
from tests.conftest import write_tree
from tests.steps.storage.conftest import Store


class _PushDuringSecondListing:
    """The location's real remote, except that just before gc's second listing of the snapshots a push runs
    (another deploy, on another machine, pushing the tree of the snapshot gc has chosen to delete)."""

    def __init__(self, remote: Any, push: Any) -> None:
        self._remote = remote
        self._push = push
        self.listings = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._remote, name)

    def list(self, prefix: str) -> Iterator[RemoteObject]:
        if prefix.endswith("/snapshots/"):
            self.listings += 1
            if self.listings == 2:
                self._push()
        return iter(list(self._remote.list(prefix)))


@pytest.mark.parametrize("store", ["moto"], indirect=True)
def test_gc_keeps_a_doomed_snapshot_that_a_running_push_writes_again(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    write_tree(root, {"flows/hello.py": "def hello():\n    return 'old'\n"})
    monkeypatch.chdir(root)
    old = store.push(plain_layout=False)["snapshot"]
    # Listings give whole seconds: the rewrite must land in a later second to be seen as one.
    time.sleep(1.1)
    (root / "flows/hello.py").write_text("def hello():\n    return 'new'\n")
    store.push(plain_layout=False)  # HEAD moves on: `old` is unreferenced, and older than a zero grace period

    def push_old_again() -> None:
        (root / "flows/hello.py").write_text("def hello():\n    return 'old'\n")
        assert store.push(plain_layout=False)["snapshot"] == old

    creds = store.step_args["credentials"]
    plain = open_location(f"s3://{store.name}/flows", creds, store.step_args["client_parameters"]["endpoint_url"])
    racing = _PushDuringSecondListing(plain.remote, push_old_again)
    result = collect_garbage(Location(racing, plain.prefix), grace=0, registries=[])
    assert racing.listings == 2
    assert result.snapshots == [] and result.packs == []
    assert {i.id for i in list_snapshots(plain, registries=[])} >= {old}
    # The push succeeded (its packs were all there), so a deploy may now record it: it still pulls (from the
    # snapshot, the only layout these pushes wrote).
    monkeypatch.setenv("FLOWDECK_NO_CACHE", "1")
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    monkeypatch.chdir(pulled)
    store.pull()
    assert "'old'" in (pulled / "flows/hello.py").read_text()
