"""A real push never uploads less than Prefect would, and a bad ignore line is a warning (issues #12, #13)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from flowdeck.errors import FlowdeckWarning
from flowdeck.steps.storage.manifest import MANIFEST_NAME
from tests.conftest import write_tree
from tests.steps.storage.conftest import Store


def test_push_uploads_what_prefect_reincludes_and_skips_bad_lines(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_tree(tmp_path / "src", {
        ".prefectignore": "build/\n!build/keep.txt\n!\n[z-a]*\n",
        "flow.py": "x\n", "build/keep.txt": "needed by the flow\n", "build/drop.txt": "x\n",
    })
    monkeypatch.chdir(src)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.push()
    assert store.keys("flows/") == sorted(f"flows/{p}" for p in
                                    (".prefectignore", "build/keep.txt", "flow.py", MANIFEST_NAME))
    messages = {str(w.message) for w in caught if issubclass(w.category, FlowdeckWarning)}
    assert any(m.startswith(".prefectignore:2:1: build/keep.txt is uploaded: Prefect re-includes it") for m in messages)
    assert any(m.startswith(".prefectignore:3:1: ignore pattern '!' is not valid") for m in messages)
    assert any(m.startswith(".prefectignore:4:1: ignore pattern '[z-a]*' is not valid") for m in messages)
