"""The seam between the shared transfer engine and one object store.

A backend is a small class implementing :class:`Remote` for one store (S3, Azure Blob Storage, GCS). The
engine (walk, ignore rules, plan, parallel transfer, manifest, pull cache) lives once in this package and
only talks to stores through this protocol, so one contract test suite covers every backend.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast

from flowdeck.errors import MissingDependencyError, StorageError

__all__ = [
    "Failure",
    "Remote",
    "RemoteObject",
    "client_cache",
    "client_in_background",
    "missing_sdk",
    "normalise_folder",
]


@dataclass(frozen=True)
class RemoteObject:
    """One object of a listing: its full key, size in bytes and, when the store says, last-modified time
    (seconds since the epoch; snapshot gc uses it for its grace period)."""

    key: str
    size: int
    modified: float | None = None


@dataclass(frozen=True)
class Failure:
    """How a backend judges an exception: a clean StorageError, and whether trying again may help."""

    error: StorageError
    transient: bool


class Remote(Protocol):
    """What the engine needs from a store. Keys are full object names with ``/`` separators."""

    def url(self, key: str = "") -> str:
        """A display URL such as ``s3://bucket/key`` (never with credentials)."""
        ...

    def list(self, prefix: str) -> Iterator[RemoteObject]:
        """Every object whose key starts with ``prefix``, directory markers left out."""
        ...

    def upload(self, local: Path, key: str, size: int) -> None:
        """Stream a local file to ``key`` (multipart for large files), replacing any existing object."""
        ...

    def download(self, key: str, local: Path) -> None:
        """Stream ``key`` into the local file (created or truncated)."""
        ...

    def download_range(self, key: str, local: Path, start: int, length: int) -> None:
        """Stream ``length`` bytes of ``key`` from offset ``start`` into the local file (snapshot packs)."""
        ...

    def iter_range(self, key: str, start: int, length: int) -> Iterator[bytes]:
        """Stream ``length`` bytes of ``key`` from offset ``start``, in pieces of at most a few MiB."""
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Delete these objects; missing ones are not an error."""
        ...

    def read(self, key: str) -> bytes | None:
        """A small object's bytes, or None when it does not exist."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Store a small object."""
        ...

    def classify(self, exc: BaseException, action: str, key: str) -> Failure:
        """Turn an SDK exception into a redacted StorageError and say whether it is worth a retry."""
        ...


def normalise_folder(folder: str | None) -> str:
    """The key prefix for ``folder``: ``""`` for the whole store, else ``a/b/`` (always one trailing ``/``).

    Backslashes become ``/`` (old Windows pushes), empty and ``.`` segments are dropped, and ``..`` is refused
    because it would address objects outside the folder.
    """
    text = (folder or "").replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise StorageError(
            f"folder {folder!r} contains '..'", hint="give a plain folder path such as 'flows/etl'"
        )
    return "/".join(parts) + "/" if parts else ""


def missing_sdk(step: str, module: str, extra: str) -> MissingDependencyError:
    """The error for a cloud SDK that is not installed."""
    return MissingDependencyError(
        f"{step} needs the {module} package, which is not installed",
        hint=f"pip install 'flowdeck[{extra}]'",
    )


T = TypeVar("T")


class _Pending(Generic[T]):
    """A client being made on its own thread; ``get`` waits for it and raises what making it raised."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._error: BaseException | None = None
        # A daemon: a push that fails before it needs the client must not wait for it to exit.
        self._thread = threading.Thread(target=self._run, name="flowdeck-client", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._make()
        except BaseException as exc:  # handed to whoever waits for the client
            self._error = exc

    @property
    def failed(self) -> bool:
        """True once making the client raised (a later caller then tries again)."""
        return not self._thread.is_alive() and self._error is not None

    def get(self) -> T:
        """The client, once made."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)


_clients: dict[str, Any] = {}
_pending: dict[str, _Pending[Any]] = {}
_clients_lock = threading.Lock()


def _settings_key(kind: str, settings: Mapping[str, Any]) -> str:
    # A hash of the settings, so the secrets are never kept as dictionary keys.
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}:{digest}"


def client_cache(kind: str, settings: Mapping[str, Any], make: Callable[[], T]) -> T:
    """One SDK client per process and per settings: creating clients per file was Prefect's slow path."""
    key = _settings_key(kind, settings)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = make()
            _clients[key] = client
        return cast(T, client)


def client_in_background(kind: str, settings: Mapping[str, Any], make: Callable[[], T]) -> Callable[[], T]:
    """Like :func:`client_cache`, but a client not made yet is made on a background thread: the returned
    function waits for it. Building a boto3 client takes 0.1 to 0.2 s of CPU (loading the S3 service model),
    which a push spends hashing its files meanwhile (hashlib releases the GIL)."""
    key = _settings_key(kind, settings)
    with _clients_lock:
        pending = _pending.get(key)
        if pending is None or pending.failed:
            pending = _Pending(make)
            _pending[key] = pending
        return pending.get


def clear_clients() -> None:
    """Forget cached clients (tests that restart a server use this)."""
    with _clients_lock:
        _clients.clear()
        _pending.clear()
