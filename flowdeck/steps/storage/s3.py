"""Amazon S3 (and S3-compatible stores: MinIO, SeaweedFS, Ceph): ``push_to_s3`` and ``pull_from_s3``.

Credentials are read the way Prefect's ``AwsCredentials`` / ``MinIOCredentials`` blocks carry them:
``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token`` / ``profile_name`` /
``region_name``,
MinIO's ``minio_root_user`` / ``minio_root_password``, ``assume_role_arn`` (+ ``assume_role_kwargs``), and
client settings (``endpoint_url``, ``verify``, ``use_ssl``, ``config``) from ``client_parameters`` or the
block's ``aws_client_parameters``. With no credentials, boto3's default chain applies.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from flowdeck.errors import StorageError
from flowdeck.redact import redact, register_secret
from flowdeck.steps.storage.pull import pull_tree
from flowdeck.steps.storage.push import push_tree
from flowdeck.steps.storage.remote import Failure, RemoteObject, client_in_background, missing_sdk
from flowdeck.steps.storage.s3client import make_client
from flowdeck.steps.storage.transfer import DEFAULT_WORKERS

__all__ = ["S3Remote", "pull_from_s3", "push_to_s3"]

_SECRET_FIELDS = ("aws_secret_access_key", "aws_session_token", "minio_root_password")
_AUTH_CODES = {
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "403",
}
_TRANSIENT_CODES = {
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
    "502",
    "504",
}
_MULTIPART = 16 * 1024 * 1024
_STREAM = 256 * 1024  # download reads: larger ones stay in each thread's malloc arena after use (see _SmallReads)
_READ = 128 * 1024  # the most an upload's body hands out per read; see _SmallReads
_PIECE = 256 * 1024  # iter_range's pieces: a snapshot pull streams many ranges at once, each holds one


def _session_and_params(
    credentials: Mapping[str, Any] | None, client_parameters: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    creds = dict(credentials or {})
    for name in _SECRET_FIELDS:
        register_secret(creds.get(name))
    if "minio_root_user" in creds:
        creds.setdefault("aws_access_key_id", creds.pop("minio_root_user"))
    if "minio_root_password" in creds:
        creds.setdefault("aws_secret_access_key", creds.pop("minio_root_password"))
    params = dict(creds.pop("aws_client_parameters", None) or {})
    params.update(client_parameters or {})
    session = {
        k: creds[k]
        for k in (
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
            "profile_name",
            "region_name",
        )
        if creds.get(k)
    }
    if creds.get("assume_role_arn"):
        session["assume_role_arn"] = creds["assume_role_arn"]
        session["assume_role_kwargs"] = dict(creds.get("assume_role_kwargs") or {})
    return session, params


class S3Remote:
    """One bucket through one boto3 client (shared by every thread; boto3 clients are thread-safe)."""

    range_piece = _PIECE  # the size of iter_range's pieces (a snapshot pull sizes its streams by it)
    stream_limit = _MULTIPART  # upload_body takes bodies below this size (one put_object)

    def __init__(
        self,
        bucket: str,
        credentials: Mapping[str, Any] | None = None,
        client_parameters: Mapping[str, Any] | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.bucket = bucket
        session_args, params = _session_and_params(credentials, client_parameters)
        try:
            from boto3.s3.transfer import TransferConfig
        except ImportError:
            raise missing_sdk("the S3 steps", "boto3", "s3") from None
        # Made on a background thread: a push hashes its files meanwhile. Its errors are raised where the
        # client is first used (inside a transfer, so they become StorageErrors like any other).
        self._client = client_in_background(
            "s3",
            {"s": session_args, "p": params, "w": workers},
            lambda: make_client(dict(session_args), dict(params), workers),
        )

        # Large files go multipart, streamed from disk: memory stays flat whatever the file size.
        self.transfer = TransferConfig(
            multipart_threshold=_MULTIPART,
            multipart_chunksize=8 * 1024 * 1024,
            max_concurrency=4,
            use_threads=True,
        )

    @property
    def client(self) -> Any:
        """The boto3 client (shared by every thread; waits for it to be made)."""
        return self._client().signed

    def url(self, key: str = "") -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{key}"

    def list(self, prefix: str) -> Iterator[RemoteObject]:
        """Page through ``list_objects_v2``; keys ending in ``/`` are folder markers and are skipped."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    modified = obj.get("LastModified")
                    yield RemoteObject(obj["Key"], int(obj["Size"]), modified.timestamp() if modified else None)

    def upload(self, local: Path, key: str, size: int) -> None:
        """One streamed ``put_object`` below 16 MiB; ``upload_file`` (multipart) above.

        ``upload_file`` builds a transfer manager and its threads per call: for small files that cost more
        than the request itself.
        """
        if size >= _MULTIPART:
            self.client.upload_file(str(local), self.bucket, key, Config=self.transfer)
            return
        with open(local, "rb") as fh:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=_SmallReads(fh), ContentLength=size)

    def upload_body(self, body: BinaryIO, key: str, size: int) -> None:
        """One ``put_object`` of a seekable body of ``size`` bytes (below ``stream_limit``), from its start:
        a snapshot pack read from the files it packs (flowdeck/snapshot/packbody.py).

        The body is not signed (``UNSIGNED-PAYLOAD``; the request itself is): signing it means a sha256 of
        every byte on the client, another on the server, and one more read of the files. A pack needs none of
        that to stay exact: every content in it is checked against its sha256 (from the manifest, which is
        named by its own hash and uploaded signed) when it is pulled, and over https the connection protects
        it in transit, as the AWS SDKs' own defaults now do."""
        body.seek(0)
        self._client().unsigned.put_object(Bucket=self.bucket, Key=key, Body=body, ContentLength=size)

    def download(self, key: str, local: Path) -> None:
        """One streamed ``get_object`` (no HEAD first); ``download_file`` (parallel ranged parts) when the
        object turns out to be 16 MiB or more."""
        answer = self.client.get_object(Bucket=self.bucket, Key=key)
        body = answer["Body"]
        if int(answer.get("ContentLength") or 0) >= _MULTIPART:
            body.close()
            self.client.download_file(self.bucket, key, str(local), Config=self.transfer)
            return
        _stream_to(body, local)

    def iter_range(self, key: str, start: int, length: int) -> Iterator[bytes]:
        """A ranged ``get_object``, read 256 KiB at a time."""
        answer = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}")
        body = answer["Body"]
        try:
            yield from body.iter_chunks(_PIECE)
        finally:
            body.close()

    def download_range(self, key: str, local: Path, start: int, length: int) -> None:
        """A ranged ``get_object`` streamed into the file."""
        answer = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}")
        _stream_to(answer["Body"], local)

    def delete(self, keys: Sequence[str]) -> None:
        """``delete_objects`` in batches of 1000 (the API's limit)."""
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(
                    f"cannot delete {self.url(first.get('Key', ''))}: "
                    f"{redact(str(first.get('Message') or first.get('Code')))}"
                )

    def read(self, key: str) -> bytes | None:
        """``get_object``, or None on NoSuchKey."""
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return body
        except Exception as exc:
            if _code(exc) in {"NoSuchKey", "404"}:
                return None
            raise

    def write(self, key: str, data: bytes) -> None:
        """``put_object``."""
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/json")

    def classify(self, exc: BaseException, action: str, key: str) -> Failure:
        """Map botocore errors to StorageError; connection problems, 5xx and throttling are transient."""
        code = _code(exc)
        text = redact(str(exc))
        where = f"{action} {self.url(key)}"
        if code in _AUTH_CODES:
            return Failure(
                StorageError(
                    f"{where}: access denied by the server ({code}): {text}",
                    hint="check the access key and secret key in `credentials` "
                    "(aws_access_key_id / aws_secret_access_key)",
                ),
                False,
            )
        if code == "NoSuchBucket":
            return Failure(
                StorageError(
                    f"{where}: bucket {self.bucket!r} does not exist",
                    hint="create the bucket or fix `bucket:`",
                ),
                False,
            )
        if code in {"NoSuchKey", "404"}:
            return Failure(
                StorageError(f"{where}: the object does not exist", hint="push the folder again"), False
            )
        transient = code in _TRANSIENT_CODES or _is_connection_error(exc)
        hint = "check that the endpoint is reachable" if _is_connection_error(exc) else None
        return Failure(StorageError(f"{where}: {text}", hint=hint), transient)


def _stream_to(body: Any, local: Path) -> None:
    # Not `with body`: a StreamingBody's context manager yields the raw urllib3 stream.
    try:
        with open(local, "wb") as fh:
            for chunk in body.iter_chunks(_STREAM):
                fh.write(chunk)
    finally:
        body.close()


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _is_connection_error(exc: BaseException) -> bool:
    try:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:
        return False
    if isinstance(exc, S3UploadFailedError):
        return "Could not connect" in str(exc) or "Connection" in str(exc)
    return isinstance(exc, (BotoConnectionError, HTTPClientError, ConnectionError, TimeoutError))


def push_to_s3(
    bucket: str,
    folder: str,
    credentials: dict[str, Any] | None = None,
    client_parameters: dict[str, Any] | None = None,
    ignore_file: str | None = ".prefectignore",
    prune: bool = False,
    max_workers: int | None = None,
    external_symlinks: str | None = None,
    plain_layout: bool = True,
) -> dict[str, Any]:
    """Upload the working directory to ``s3://bucket/folder`` (Prefect's ``push_to_s3``, made incremental)."""
    remote = S3Remote(bucket, credentials, client_parameters, max_workers or DEFAULT_WORKERS)
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


def pull_from_s3(
    bucket: str,
    folder: str,
    credentials: dict[str, Any] | None = None,
    client_parameters: dict[str, Any] | None = None,
    max_workers: int | None = None,
    snapshots: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Download ``s3://bucket/folder`` into the working directory (Prefect's ``pull_from_s3``)."""
    remote = S3Remote(bucket, credentials, client_parameters, max_workers or DEFAULT_WORKERS)
    target = Path.cwd()
    pull_tree(remote, folder, target=target, max_workers=max_workers, snapshots=snapshots)
    return {"bucket": bucket, "folder": folder, "directory": str(target)}


class _SmallReads:
    """A file as a request body that returns at most _READ bytes per read.

    botocore reads a body 1 MiB at a time to sign it (over plain http, and over https without a checksum
    header). Each such buffer is allocated and freed on the uploading thread, and glibc keeps freed 1 MiB
    blocks in that thread's malloc arena: with 16 snapshot packs uploading at once, a 20 x 10 MiB push peaked
    at 100 MiB instead of 73. Reads of 128 KiB stay below glibc's mmap threshold and are reused within each
    arena, which kept the same push at 74 MiB (docs/storage.md, "Benchmark"). Short reads are allowed by the
    file protocol, and every reader of a body here (signing, sending, retry rewinds) loops until EOF."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh

    def read(self, size: int = -1) -> bytes:
        """At most ``min(size, _READ)`` bytes; everything left for a negative size."""
        return self._fh.read(min(size, _READ) if size is not None and size >= 0 else -1)

    def seek(self, offset: int, whence: int = 0) -> int:
        """As the file's."""
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        """As the file's."""
        return self._fh.tell()
