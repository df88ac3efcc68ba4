"""A PostgreSQL 15 server on 127.0.0.1 for the Prefect server of the three-machine test.

Debian's binaries (``/usr/lib/postgresql/15/bin``, installed by ``scripts/setup-dev``) run ``initdb`` into a
temp dir and ``pg_ctl`` on a free loopback port, with trust authentication on loopback only. Running as root
(CI containers), the cluster is owned by the ``postgres`` user, as PostgreSQL requires.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.process import free_port, unavailable

__all__ = ["Postgres", "postgres"]

BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")


@dataclass
class Postgres:
    """A running cluster: connect with :attr:`url` (SQLAlchemy + asyncpg form, for Prefect)."""

    port: int
    data: Path
    bindir: Path
    as_user: list[str]

    def url(self, database: str) -> str:
        """``postgresql+asyncpg://postgres@127.0.0.1:PORT/DATABASE``."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def createdb(self, name: str) -> None:
        """Create a database."""
        subprocess.run([*self.as_user, str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", "postgres", name], check=True, capture_output=True, timeout=60)

    def stop(self) -> None:
        """Stop the cluster (fast shutdown)."""
        subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
                       capture_output=True, timeout=60, check=False)


def _bindir() -> Path | None:
    for candidate in BIN_DIRS:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster for the session."""
    bindir = _bindir()
    if bindir is None:
        unavailable("PostgreSQL", "apt-get install postgresql (scripts/setup-dev does)")
        raise AssertionError("unreachable")
    # Under /tmp directly: pytest's temp dirs are private to root, and the cluster may run as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="flowdeck-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("a postgres user", "apt-get install postgresql")
            raise AssertionError("unreachable") from None
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    try:
        subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8"], check=True, capture_output=True, timeout=180)
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "120",
                        "-o", f"-p {port} -h 127.0.0.1 -k {root}", "start"], check=True, capture_output=True,
                       timeout=180)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        unavailable("PostgreSQL", f"could not start it: {exc}: {detail.decode(errors='replace')[-300:]}")
    server = Postgres(port, data, bindir, as_user)
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)
