"""Google Cloud Storage: ``push_to_gcs`` and ``pull_from_gcs``.

Credentials as Prefect's ``GcpCredentials`` block carries them: ``service_account_info`` (a dict or its JSON
text), ``service_account_file``, else Application Default Credentials. ``project`` comes from the
credentials, else the step's ``project`` argument (Prefect ignores the argument). ``STORAGE_EMULATOR_HOST``
is honoured, with anonymous credentials when none are given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from flowdeck.errors import StorageError
from flowdeck.redact import redact, register_secret
from flowdeck.steps.storage.pull import pull_tree
from flowdeck.steps.storage.push import push_tree
from flowdeck.steps.storage.remote import Failure, RemoteObject, client_cache, missing_sdk
from flowdeck.steps.storage.transfer import DEFAULT_WORKERS

__all__ = ["GcsRemote", "pull_from_gcs", "push_to_gcs"]

_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
_RANGE = 4 * 1024 * 1024
_CHUNK = 8 * 1024 * 1024  # resumable uploads in 8 MiB chunks above this size (a multiple of 256 KiB)


def _make_client(creds: Mapping[str, Any], project: str | None, workers: int) -> Any:
    try:
        from google.cloud import storage
    except ImportError:
        raise missing_sdk("the GCS steps", "google-cloud-storage", "gcs") from None
    credentials: Any = None
    info = creds.get("service_account_info")
    if isinstance(info, str):
        info = json.loads(info)
    if info:
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            dict(info), scopes=_SCOPES
        )
    elif creds.get("service_account_file"):
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            os.path.expanduser(str(creds["service_account_file"])), scopes=_SCOPES
        )
    elif os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        project = project or "flowdeck-emulator"
    else:
        import google.auth

        credentials, default_project = google.auth.default(scopes=_SCOPES)
        project = project or default_project
    client = storage.Client(project=project, credentials=credentials)
    # One pooled connection per worker thread (the default pool of 10 would churn connections).
    import requests.adapters

    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=max(workers, DEFAULT_WORKERS) + 4
    )
    client._http.mount("https://", adapter)
    client._http.mount("http://", adapter)
    return client


class GcsRemote:
    """One bucket through one storage.Client shared by every thread."""

    def __init__(
        self,
        bucket: str,
        credentials: Mapping[str, Any] | None,
        project: str | None,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        creds = dict(credentials or {})
        info = creds.get("service_account_info")
        register_secret(info if isinstance(info, str) else None)
        if isinstance(info, Mapping):
            register_secret(info.get("private_key"))
            register_secret(info.get("private_key_id"))
        project = creds.get("project") or project
        self.bucket_name = bucket
        self.client = client_cache(
            "gcs",
            {"k": creds, "p": project, "e": os.environ.get("STORAGE_EMULATOR_HOST")},
            lambda: _make_client(creds, project, workers),
        )
        self.bucket = self.client.bucket(bucket)

    def url(self, key: str = "") -> str:
        """``gs://bucket/key``."""
        return f"gs://{self.bucket_name}/{key}"

    def list(self, prefix: str) -> Iterator[RemoteObject]:
        """``list_blobs(prefix=...)``, skipping ``/``-terminated folder placeholders."""
        for blob in self.client.list_blobs(self.bucket_name, prefix=prefix or None, retry=None):
            if not blob.name.endswith("/"):
                modified = blob.updated or blob.time_created
                yield RemoteObject(blob.name, int(blob.size or 0), modified.timestamp() if modified else None)

    def upload(self, local: Path, key: str, size: int) -> None:
        """``upload_from_filename``; resumable in 8 MiB chunks for large files."""
        blob = self.bucket.blob(key, chunk_size=_CHUNK if size > _CHUNK else None)
        blob.upload_from_filename(str(local), retry=None)

    def download(self, key: str, local: Path) -> None:
        """``download_to_filename`` (streamed)."""
        self.bucket.blob(key).download_to_filename(str(local), retry=None)

    def iter_range(self, key: str, start: int, length: int) -> Iterator[bytes]:
        """Ranged ``download_as_bytes`` calls of 4 MiB each (the client has no streaming read with a range)."""
        blob = self.bucket.blob(key)
        end = start + length
        while start < end:
            stop = min(end, start + _RANGE)
            piece: bytes = blob.download_as_bytes(start=start, end=stop - 1, retry=None, checksum=None)
            if not piece:
                return
            yield piece
            start += len(piece)

    def download_range(self, key: str, local: Path, start: int, length: int) -> None:
        """``download_to_filename`` of the byte range (``end`` is inclusive)."""
        self.bucket.blob(key).download_to_filename(str(local), start=start, end=start + length - 1, retry=None)

    def delete(self, keys: Sequence[str]) -> None:
        """Delete blob by blob (missing ones are fine)."""
        from google.api_core.exceptions import NotFound

        for key in keys:
            try:
                self.bucket.blob(key).delete(retry=None)
            except NotFound:
                pass

    def read(self, key: str) -> bytes | None:
        """A small blob's bytes, None if missing."""
        from google.api_core.exceptions import NotFound

        try:
            data: bytes = self.bucket.blob(key).download_as_bytes(retry=None)
            return data
        except NotFound as exc:
            if "bucket" in str(exc).lower() and "object" not in str(exc).lower():
                raise
            return None

    def write(self, key: str, data: bytes) -> None:
        """``upload_from_string``."""
        self.bucket.blob(key).upload_from_string(data, content_type="application/json", retry=None)

    def classify(self, exc: BaseException, action: str, key: str) -> Failure:
        """Map google-api-core errors; connection errors, 5xx and 429 are transient."""
        from google.api_core import exceptions as gexc

        where = f"{action} {self.url(key)}"
        text = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        if isinstance(exc, (gexc.Forbidden, gexc.Unauthorized)):
            return Failure(
                StorageError(
                    f"{where}: access denied by the server: {text}",
                    hint="check the service account in `credentials`",
                ),
                False,
            )
        if isinstance(exc, gexc.NotFound):
            return Failure(
                StorageError(
                    f"{where}: not found: {text}", hint=f"check that bucket {self.bucket_name!r} exists"
                ),
                False,
            )
        if isinstance(exc, (gexc.TooManyRequests, gexc.ServerError)):
            return Failure(StorageError(f"{where}: {text}"), True)
        try:
            import requests
            from google.auth.exceptions import TransportError

            network: tuple[type[BaseException], ...] = (
                requests.ConnectionError,
                requests.Timeout,
                TransportError,
                ConnectionError,
                TimeoutError,
            )
        except ImportError:
            network = (ConnectionError, TimeoutError)
        if isinstance(exc, network):
            return Failure(
                StorageError(f"{where}: {text}", hint="check that the endpoint is reachable"), True
            )
        return Failure(StorageError(f"{where}: {text}"), False)


def push_to_gcs(
    bucket: str,
    folder: str,
    project: str | None = None,
    credentials: dict[str, Any] | None = None,
    ignore_file: str | None = ".prefectignore",
    prune: bool = False,
    max_workers: int | None = None,
    external_symlinks: str | None = None,
    plain_layout: bool = True,
) -> dict[str, Any]:
    """Upload the working directory to ``gs://bucket/folder`` (Prefect's step, made incremental)."""
    remote = GcsRemote(bucket, credentials, project, max_workers or DEFAULT_WORKERS)
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
    return {"bucket": bucket, "folder": folder, "snapshot": result.snapshot}


def pull_from_gcs(
    bucket: str,
    folder: str,
    project: str | None = None,
    credentials: dict[str, Any] | None = None,
    max_workers: int | None = None,
    snapshots: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Download ``gs://bucket/folder`` into the working directory (Prefect's ``pull_from_gcs``)."""
    remote = GcsRemote(bucket, credentials, project, max_workers or DEFAULT_WORKERS)
    target = Path.cwd()
    pull_tree(remote, folder, target=target, max_workers=max_workers, snapshots=snapshots)
    return {"bucket": bucket, "folder": folder, "directory": str(target)}
