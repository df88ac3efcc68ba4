"""Azure Blob Storage: ``push_to_azure_blob_storage`` and ``pull_from_azure_blob_storage``.

Credentials as Prefect's ``AzureBlobStorageCredentials`` block carries them: ``connection_string``, or
``account_url`` with a service principal (``tenant_id`` + ``client_id`` + ``client_secret``) or, without one,
``DefaultAzureCredential`` (managed identity, workload identity, environment, Azure CLI).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from flowdeck.errors import StepInputError, StorageError
from flowdeck.redact import redact, register_secret
from flowdeck.steps.storage.pull import pull_tree
from flowdeck.steps.storage.push import push_tree
from flowdeck.steps.storage.remote import Failure, RemoteObject, client_cache, missing_sdk

__all__ = ["AzureRemote", "pull_from_azure_blob_storage", "push_to_azure_blob_storage"]

_BLOCK = 4 * 1024 * 1024


def _make_container(container: str, creds: Mapping[str, Any]) -> Any:
    try:
        from azure.storage.blob import ContainerClient
    except ImportError:
        raise missing_sdk("the Azure Blob Storage steps", "azure-storage-blob", "azure") from None
    # Uploads above 8 MiB are sent as 4 MiB blocks and downloads read 4 MiB chunks: memory stays flat.
    # flowdeck retries transfers itself, so the SDK's own retry policy is off.
    settings: dict[str, Any] = {
        "max_single_put_size": 8 * 1024 * 1024,
        "max_block_size": _BLOCK,
        "max_single_get_size": 8 * 1024 * 1024,
        "max_chunk_get_size": _BLOCK,
        "retry_total": 0,
        "connection_timeout": 10,
        "read_timeout": 60,
    }
    if creds.get("connection_string"):
        return ContainerClient.from_connection_string(
            str(creds["connection_string"]), container_name=container, **settings
        )
    if creds.get("account_url"):
        if creds.get("client_id") and creds.get("client_secret") and creds.get("tenant_id"):
            try:
                from azure.identity import ClientSecretCredential
            except ImportError:
                raise missing_sdk("service principal credentials", "azure-identity", "azure") from None
            credential: Any = ClientSecretCredential(
                str(creds["tenant_id"]), str(creds["client_id"]), str(creds["client_secret"])
            )
        else:
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError:
                raise missing_sdk("the default Azure credential", "azure-identity", "azure") from None
            credential = DefaultAzureCredential()
        return ContainerClient(str(creds["account_url"]), container, credential=credential, **settings)
    raise StepInputError(
        "credentials must contain either connection_string or account_url",
        key_path="credentials",
        hint="use `{{ prefect.blocks.azure-blob-storage-credentials.<name> }}` or give `connection_string:`",
    )


class AzureRemote:
    """One container through one ContainerClient, shared by every thread."""

    def __init__(self, container: str, credentials: Mapping[str, Any] | None) -> None:
        creds = dict(credentials or {})
        for name in ("connection_string", "client_secret", "account_key", "sas_token"):
            register_secret(creds.get(name))
        self.container = container
        self.client = client_cache(
            "azure", {"c": container, "k": creds}, lambda: _make_container(container, creds)
        )

    def url(self, key: str = "") -> str:
        """``az://container/key``."""
        return f"az://{self.container}/{key}"

    def list(self, prefix: str) -> Iterator[RemoteObject]:
        """``list_blobs``, skipping ``/``-terminated names and ADLS Gen2 directories (``hdi_isfolder``)."""
        for blob in self.client.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
            if blob.name.endswith("/") or (blob.metadata or {}).get("hdi_isfolder") == "true":
                continue
            modified = getattr(blob, "last_modified", None)
            yield RemoteObject(blob.name, int(blob.size), modified.timestamp() if modified else None)

    def upload(self, local: Path, key: str, size: int) -> None:
        """``upload_blob`` streamed from the file (block upload above 8 MiB)."""
        with open(local, "rb") as fh:
            self.client.upload_blob(key, fh, length=size, overwrite=True, max_concurrency=2)

    def download(self, key: str, local: Path) -> None:
        """``download_blob().readinto`` the file, chunk by chunk."""
        with open(local, "wb") as fh:
            self.client.download_blob(key, max_concurrency=2).readinto(fh)

    def iter_range(self, key: str, start: int, length: int) -> Iterator[bytes]:
        """``download_blob(offset, length).chunks()`` (4 MiB at a time)."""
        yield from self.client.download_blob(key, offset=start, length=length).chunks()

    def download_range(self, key: str, local: Path, start: int, length: int) -> None:
        """``download_blob(offset, length).readinto`` the file."""
        with open(local, "wb") as fh:
            self.client.download_blob(key, offset=start, length=length, max_concurrency=2).readinto(fh)

    def delete(self, keys: Sequence[str]) -> None:
        """Delete blob by blob (missing ones are fine)."""
        from azure.core.exceptions import ResourceNotFoundError

        for key in keys:
            try:
                self.client.delete_blob(key)
            except ResourceNotFoundError:
                pass

    def read(self, key: str) -> bytes | None:
        """A small blob's bytes, None if missing (a missing container is still an error)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            data: bytes = self.client.download_blob(key).readall()
            return data
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise
            return None

    def write(self, key: str, data: bytes) -> None:
        """``upload_blob`` with overwrite."""
        self.client.upload_blob(key, data, overwrite=True)

    def classify(self, exc: BaseException, action: str, key: str) -> Failure:
        """Map azure-core errors; connection errors, 5xx and 429 are transient."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        where = f"{action} {self.url(key)}"
        text = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        code = getattr(exc, "error_code", None)
        status = getattr(exc, "status_code", None)
        if isinstance(exc, ClientAuthenticationError) or status == 403 or code == "AuthorizationFailure":
            return Failure(
                StorageError(
                    f"{where}: access denied by the server ({code or status}): {text}",
                    hint="check the account key or service principal in `credentials`",
                ),
                False,
            )
        if isinstance(exc, ResourceNotFoundError):
            if code == "ContainerNotFound":
                return Failure(
                    StorageError(
                        f"{where}: container {self.container!r} does not exist",
                        hint="create the container or fix `container:`",
                    ),
                    False,
                )
            return Failure(
                StorageError(f"{where}: the blob does not exist", hint="push the folder again"), False
            )
        if isinstance(exc, (ServiceRequestError, ServiceResponseError, ConnectionError, TimeoutError)):
            return Failure(
                StorageError(f"{where}: {text}", hint="check that the account URL is reachable"), True
            )
        if isinstance(exc, HttpResponseError):
            return Failure(StorageError(f"{where}: {text}"), status in {429, 500, 502, 503, 504})
        return Failure(StorageError(f"{where}: {text}"), False)


def push_to_azure_blob_storage(
    container: str,
    folder: str,
    credentials: dict[str, Any],
    ignore_file: str | None = ".prefectignore",
    prune: bool = False,
    max_workers: int | None = None,
    external_symlinks: str | None = None,
    plain_layout: bool = True,
) -> dict[str, Any]:
    """Upload the working directory to ``container/folder`` (Prefect's step, made incremental)."""
    remote = AzureRemote(container, credentials)
    result = push_tree(
        remote,
        folder,
        root=Path.cwd(),
        ignore_file=ignore_file,
        prune=prune,
        max_workers=max_workers,
        external_symlinks=external_symlinks,
        plain_layout=plain_layout,
    )
    return {"container": container, "folder": folder, "snapshot": result.snapshot}


def pull_from_azure_blob_storage(
    container: str,
    folder: str,
    credentials: dict[str, Any],
    max_workers: int | None = None,
    snapshots: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Download ``container/folder`` into the working directory; ``directory`` is a str (Prefect: a Path)."""
    remote = AzureRemote(container, credentials)
    target = Path.cwd()
    pull_tree(remote, folder, target=target, max_workers=max_workers, snapshots=snapshots)
    return {"container": container, "folder": folder, "directory": str(target)}
