"""flowdeck's local state store: one SQLite database under ``FLOWDECK_HOME``.

The store holds blocks and variables (and, later, deployments). It is built for several CLI processes
running at once: every write happens inside ``BEGIN IMMEDIATE`` with a busy timeout, so writers queue up
instead of failing, and nothing is ever half-written. The database runs in WAL mode so readers never block
writers.

Files: ``FLOWDECK_HOME`` is created with mode 0700 and the database (with its ``-wal`` and ``-shm``
companions) with mode 0600, because the store holds secrets in clear text (it *is* the local secret store).

Schema versions
---------------
The schema version is SQLite's ``PRAGMA user_version``. :data:`MIGRATIONS` is an ordered list; entry ``i``
upgrades a database from version ``i`` to ``i + 1``. To change the schema, **append** an entry (never edit
or reorder an existing one, databases in the field already ran it):

* a string of SQL statements, run with ``executescript``-like semantics inside the migration transaction;
* or a callable ``(connection) -> None`` for migrations that must move data in Python.

Migrations run inside ``BEGIN IMMEDIATE`` and re-check the version after taking the lock, so two processes
that open an old database at the same moment migrate it exactly once. A database whose version is *newer*
than this flowdeck knows is refused with a hint to upgrade flowdeck.

Damage and full disks
---------------------
A new store is built in a temporary file and linked into place only once it is complete, so a
``flowdeck.db`` never legitimately exists empty or half set up. flowdeck therefore refuses to use a
damaged one (empty, truncated, overwritten: :class:`StoreCorruptError` naming the file and how to move it
aside) instead of silently starting a fresh store over it. A write that fails because the filesystem is
full is a :class:`DiskFullError` naming the path; SQLite's transaction leaves the store as it was. A row
whose JSON cannot be read is a :class:`StoreRowError` naming the entry (:func:`decode_json`).
:mod:`flowdeck.store_failure` tells these failures apart.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from flowdeck.errors import StoreError, StoreRowError
from flowdeck.jsontypes import loads_bounded
from flowdeck.paths import home_dir
from flowdeck.store_failure import corrupt, failure

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "DB_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "connect",
    "db_path",
    "decode_json",
    "ensure_home",
    "open_store",
    "transaction",
]

DB_NAME = "flowdeck.db"
# Long enough for many processes to queue behind each other; a write transaction takes milliseconds.
BUSY_TIMEOUT_SECONDS = 60.0

Migration = str | Callable[[sqlite3.Connection], None]

_V1 = """
CREATE TABLE blocks (
    type_slug  TEXT NOT NULL,
    name       TEXT NOT NULL,
    data       TEXT NOT NULL,          -- JSON object of the block's fields (secrets included)
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (type_slug, name)
);
CREATE TABLE variables (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,          -- JSON value
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""

# Deployments, their versions (flowdeck.history) and runs (flowdeck.runs).
_V2 = """
CREATE TABLE deployments (
    name              TEXT PRIMARY KEY,      -- flow-name/deployment-name
    flow_name         TEXT NOT NULL,
    deployment_name   TEXT NOT NULL,
    live_revision     INTEGER,
    schedules         TEXT NOT NULL DEFAULT '[]',
    paused            INTEGER NOT NULL DEFAULT 0,
    concurrency_limit TEXT,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE versions (
    deployment   TEXT NOT NULL REFERENCES deployments(name) ON DELETE CASCADE,
    revision     INTEGER NOT NULL,
    label        TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    record       TEXT NOT NULL,              -- JSON: what a worker needs (block references, never values)
    version_info TEXT NOT NULL,              -- JSON
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (deployment, revision)
);
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment      TEXT NOT NULL,
    revision        INTEGER NOT NULL,
    run_name        TEXT,
    idempotency_key TEXT UNIQUE,
    status          TEXT NOT NULL,
    parameters      TEXT NOT NULL,
    result          TEXT,
    error           TEXT,
    directory       TEXT,
    started_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ended_at        TEXT
);
"""


#: Ordered schema migrations; entry ``i`` takes the database from version ``i`` to ``i + 1``. Append only.
MIGRATIONS: list[Migration] = [_V1, _V2]

#: The schema version this flowdeck writes.
SCHEMA_VERSION = len(MIGRATIONS)


def db_path() -> Path:
    """Where the database lives: ``$FLOWDECK_HOME/flowdeck.db``."""
    return home_dir() / DB_NAME


def ensure_home() -> Path:
    """Create ``FLOWDECK_HOME`` (mode 0700) if it is missing; return it."""
    home = home_dir()
    if not home.is_dir():
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask; set it exactly.
            os.chmod(home, 0o700)
        except OSError as exc:
            raise StoreError(
                f"cannot create the flowdeck home {home}: {exc.strerror or exc}",
                hint="set FLOWDECK_HOME to a writable directory",
            ) from exc
    return home


def _remove_quietly(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
                      path.with_name(path.name + "-journal")):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()


def _create_store(path: Path) -> None:
    """Build a new store in a temporary file and link it into place once complete (never over one)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.new")
    _remove_quietly(temp)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.chmod(temp, 0o600)
        conn = sqlite3.connect(temp, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # pragma: no cover - filesystems without WAL support
                conn.execute("PRAGMA journal_mode = DELETE")
            _migrate(conn, temp)
        finally:
            conn.close()
        try:
            os.link(temp, path)  # never replaces: if another process was quicker, use its store
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            # A filesystem without hard links: rename, which is safe under the setup lock we hold.
            if not path.exists():
                os.rename(temp, path)
    except (OSError, sqlite3.Error) as exc:
        raise failure(exc, path, "creating the store") from exc
    finally:
        _remove_quietly(temp)


def _tighten(path: Path) -> None:
    """Make the database and its WAL companions 0600 (SQLite copies the mode, this is a safety net)."""
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = stat.S_IMODE(candidate.stat().st_mode)
            if mode & 0o077:
                os.chmod(candidate, 0o600)
        except FileNotFoundError:
            continue


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _run_migration(conn: sqlite3.Connection, migration: Migration) -> None:
    if callable(migration):
        migration(conn)
        return
    # sqlite3's executescript would COMMIT our transaction first; run statement by statement instead.
    buffer = ""
    for line in migration.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            conn.execute(buffer)
            buffer = ""
    if buffer.strip():
        conn.execute(buffer)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    # Read the list at call time (not SCHEMA_VERSION) so a migration appended later is always seen.
    target = len(MIGRATIONS)
    current = _version(conn)
    if current == target:
        return
    if current > target:
        raise StoreError(
            f"the store {path} has schema version {current}, newer than this flowdeck supports ({target})",
            hint="upgrade flowdeck (`pip install -U flowdeck`) or point FLOWDECK_HOME elsewhere",
        )
    with transaction(conn):
        # Another process may have migrated while we waited for the write lock.
        current = _version(conn)
        for index in range(current, target):
            _run_migration(conn, MIGRATIONS[index])
        # PRAGMA does not take parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {max(current, target):d}")


def _needs_setup(conn: sqlite3.Connection) -> bool:
    mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    return mode != "wal" or _version(conn) != len(MIGRATIONS)


def connect(path: Path | None = None) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the store and return an autocommit connection.

    Writes must go through :func:`transaction`. The caller closes the connection (or uses
    :func:`open_store`). A damaged store raises :class:`StoreCorruptError`, a full disk
    :class:`DiskFullError`.
    """
    if path is None:
        ensure_home()
        path = db_path()
    try:
        if not path.exists():
            with FileLock(str(path) + ".lock", timeout=BUSY_TIMEOUT_SECONDS, mode=0o600):
                if not path.exists():
                    _create_store(path)
        elif path.is_file() and path.stat().st_size == 0:
            raise corrupt(path, "the file is empty, probably truncated")
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, Python never opens implicit
        # transactions behind our back.
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    except Timeout as exc:
        raise StoreError(
            f"the store {path} is being set up by another process that does not finish",
            hint=f"retry; if no flowdeck is running, remove {path}.lock",
        ) from exc
    except (OSError, sqlite3.Error) as exc:
        raise failure(exc, path, "opening the store") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000):d}")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if _needs_setup(conn):
            # Switching to WAL answers "database is locked" at once (no busy wait) when another process
            # does the same, so setup and migrations are serialised with a file lock.
            with FileLock(str(path) + ".lock", timeout=BUSY_TIMEOUT_SECONDS, mode=0o600):
                if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    if str(mode).lower() != "wal":  # pragma: no cover - filesystems without WAL support
                        conn.execute("PRAGMA journal_mode = DELETE")
                _migrate(conn, path)
        _tighten(path)
    except Timeout as exc:
        conn.close()
        raise StoreError(
            f"the store {path} is being set up by another process that does not finish",
            hint=f"retry; if no flowdeck is running, remove {path}.lock",
        ) from exc
    except (OSError, sqlite3.Error) as exc:
        conn.close()
        raise failure(exc, path, "opening the store") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def decode_json(raw: object, *, entry: str, remedy: str, shape: type | None = None) -> Any:
    """Decode a JSON column of ``entry`` (e.g. ``block secret/tok``); check it is a ``shape`` if given.

    A damaged value is a :class:`StoreRowError` that names the entry and how to repair it, never the
    value itself (it may be a secret).
    """
    kinds: dict[type, str] = {dict: "a JSON object", list: "a JSON list"}
    try:
        if not isinstance(raw, (str, bytes)):
            raise TypeError(type(raw).__name__)
        value = loads_bounded(raw)
    except (ValueError, TypeError, RecursionError):
        problem = "is not valid JSON"
    else:
        if shape is None or isinstance(value, shape):
            return value
        problem = f"is {type(value).__name__} where {kinds.get(shape, shape.__name__)} was expected"
    raise StoreRowError(
        f"the store {db_path()} holds a damaged entry: {entry} {problem}",
        hint=f"{remedy}; or restore the store from a copy",
    )


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block as one write transaction (``BEGIN IMMEDIATE``): all of it is committed or none."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise failure(exc, _conn_path(conn), "starting a write") from exc
        raise StoreError(
            f"the store is busy: {exc}",
            hint="another flowdeck process holds the store for too long; retry",
        ) from exc
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


@contextlib.contextmanager
def open_store(*, create: bool = True) -> Iterator[sqlite3.Connection | None]:
    """Open the store for the duration of a ``with`` block.

    With ``create=False`` a missing store yields ``None`` instead of being created, so read-only
    commands on a fresh machine leave no files behind.
    """
    if not create and not db_path().exists():
        yield None
        return
    conn = connect()
    try:
        yield conn
    except sqlite3.Error as exc:
        raise failure(exc, _conn_path(conn), "a store operation") from exc
    finally:
        conn.close()


def _conn_path(conn: sqlite3.Connection) -> Path:
    try:
        row = conn.execute("PRAGMA database_list").fetchone()
        return Path(row[2]) if row and row[2] else db_path()
    except sqlite3.Error:
        return db_path()
