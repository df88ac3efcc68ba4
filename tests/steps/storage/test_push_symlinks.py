"""File symlinks in a pushed tree that lead outside the project: uploaded with a located warning by default,
refused on request (``external_symlinks: refuse`` or ``FLOWDECK_EXTERNAL_SYMLINKS``), silent with ``follow``."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from flowdeck.errors import StorageError
from flowdeck.steps.storage.push import ExternalSymlinkWarning
from tests.conftest import write_tree
from tests.steps.storage.conftest import Store


@pytest.fixture
def linked_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    secret = tmp_path / "home" / ".ssh" / "id_rsa"
    write_tree(tmp_path / "home", {".ssh/id_rsa": "PRIVATE KEY\n"})
    src = write_tree(tmp_path / "src", {"flow.py": "ok\n", "shared/real.py": "inner\n"})
    (src / "key").symlink_to(secret)
    (src / "inner.py").symlink_to("shared/real.py")  # a link inside the project is fine
    monkeypatch.chdir(src)
    monkeypatch.delenv("FLOWDECK_EXTERNAL_SYMLINKS", raising=False)
    return src


def test_an_external_file_symlink_is_uploaded_with_a_located_warning(
    store: Store, linked_project: Path, tmp_path: Path
) -> None:
    with pytest.warns(ExternalSymlinkWarning) as caught:
        store.push()
    assert len(caught) == 1
    warning = caught[0].message
    assert isinstance(warning, ExternalSymlinkWarning)
    secret = tmp_path / "home" / ".ssh" / "id_rsa"
    assert str(warning) == (
        f"key:1:1: key is a symlink to {secret}, outside the project: its content is uploaded "
        "(hint: list it in .prefectignore if it should not be, or set external_symlinks: refuse)"
    )
    assert store.raw_get("flows/key") == b"PRIVATE KEY\n"


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_refuse_uploads_nothing(
    store: Store, linked_project: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    kwargs = {"external_symlinks": "refuse"} if how == "argument" else {}
    if how == "environment":
        monkeypatch.setenv("FLOWDECK_EXTERNAL_SYMLINKS", "refuse")
    with pytest.raises(StorageError) as info:
        store.push(**kwargs)
    assert info.value.message.startswith("key is a symlink to ")
    assert info.value.message.endswith(", outside the project: refusing to upload its content")
    assert info.value.location is not None and info.value.location.file == "key"
    assert store.keys() == []


def test_follow_uploads_silently_and_the_argument_wins_over_the_environment(
    store: Store, linked_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWDECK_EXTERNAL_SYMLINKS", "refuse")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExternalSymlinkWarning)
        store.push(external_symlinks="follow")
    assert store.raw_get("flows/key") == b"PRIVATE KEY\n"
    assert store.raw_get("flows/inner.py") == b"inner\n"


def test_an_unknown_policy_is_a_clear_error(store: Store, linked_project: Path) -> None:
    with pytest.raises(StorageError, match=r"external_symlinks must be one of warn, refuse, follow, got 'maybe'"):
        store.push(external_symlinks="maybe")
