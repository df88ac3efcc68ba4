"""Credentials: wrong keys fail with a clear, redacted error; a missing SDK names the extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowdeck.errors import StorageError
from flowdeck.steps.storage import azure, s3
from tests.conftest import REPO_ROOT, write_tree
from tests.servers.azure import AzuriteServer
from tests.servers.s3 import S3Server

SENTINEL = "sentinel-SECRET-9f8e7d6c5b4a"


def test_wrong_secret_on_seaweedfs_is_a_clear_error_without_the_secret(
    seaweedfs_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seaweedfs_server.client().create_bucket(Bucket="fd-wrong-key")
    write_tree(tmp_path, {"a.py": "a"})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError) as info:
        s3.push_to_s3(
            "fd-wrong-key",
            "f",
            credentials={"aws_access_key_id": seaweedfs_server.access_key, "aws_secret_access_key": SENTINEL},
            client_parameters={"endpoint_url": seaweedfs_server.endpoint},
        )
    text = str(info.value)
    assert text.startswith(
        "read s3://fd-wrong-key/f/.flowdeck-manifest.json: access denied by the server "
        "(SignatureDoesNotMatch): "
    )
    assert text.endswith(
        "(hint: check the access key and secret key in `credentials` "
        "(aws_access_key_id / aws_secret_access_key))"
    )
    assert SENTINEL not in text


def test_unknown_key_and_minio_style_credentials(
    seaweedfs_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seaweedfs_server.client().create_bucket(Bucket="fd-minio")
    write_tree(tmp_path, {"a.py": "a"})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match=r"\(InvalidAccessKeyId\)"):
        s3.push_to_s3(
            "fd-minio",
            "f",
            credentials={"aws_access_key_id": "NOPE", "aws_secret_access_key": "x" * 20},
            client_parameters={"endpoint_url": seaweedfs_server.endpoint},
        )
    # MinIOCredentials blocks carry minio_root_user / minio_root_password and the endpoint in the block.
    creds = {
        "minio_root_user": seaweedfs_server.access_key,
        "minio_root_password": seaweedfs_server.secret_key,
        "aws_client_parameters": {"endpoint_url": seaweedfs_server.endpoint},
    }
    out = s3.push_to_s3("fd-minio", "f", credentials=creds)
    assert out == {"bucket": "fd-minio", "folder": "f", "snapshot": out["snapshot"]}


def test_wrong_account_key_on_azurite(
    azurite_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    azurite_server.service().create_container("fd-wrong-key")
    write_tree(tmp_path, {"a.py": "a"})
    monkeypatch.chdir(tmp_path)
    bad = azurite_server.connection_string(key="c2VudGluZWwtU0VDUkVULTlmOGU3ZDZjNWI0YQ==")
    with pytest.raises(StorageError) as info:
        azure.push_to_azure_blob_storage("fd-wrong-key", "f", {"connection_string": bad})
    assert "access denied by the server" in str(info.value)
    assert "c2VudGluZWwtU0VDUkVULTlmOGU3ZDZjNWI0YQ" not in str(info.value)
    assert str(info.value).endswith("(hint: check the account key or service principal in `credentials`)")


def test_azure_needs_a_connection_string_or_account_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception) as info:
        azure.pull_from_azure_blob_storage("c", "f", {})
    assert str(info.value) == (
        "credentials: credentials must contain either connection_string or account_url "
        "(hint: use `{{ prefect.blocks.azure-blob-storage-credentials.<name> }}` or give "
        "`connection_string:`)"
    )


@pytest.mark.parametrize(
    ("module", "step", "blocked", "extra"),
    [
        ("s3", "push_to_s3('b', 'f')", "boto3", "s3"),
        ("azure", "push_to_azure_blob_storage('c', 'f', {'connection_string': 'x'})", "azure", "azure"),
        ("gcs", "pull_from_gcs('b', 'f')", "google", "gcs"),
    ],
)
def test_missing_sdk_names_the_extra(
    tmp_path: Path, module: str, step: str, blocked: str, extra: str
) -> None:
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        f"from flowdeck.steps.storage.{module} import *\n"
        f"try:\n    {step}\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.stdout.startswith("MissingDependencyError "), proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith(f"(hint: pip install 'flowdeck[{extra}]')")
