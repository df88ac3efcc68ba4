"""A real Prefect server (3.9.1, from its own virtualenv) on 127.0.0.1, shared by the registry tests.

One server for the whole session, with an auth string so that every test also exercises authentication
(tests use unique deployment, block and variable names). It runs from ``$FLOWDECK_PREFECT_VENV`` or the
repository's ``.prefect-venv`` (``scripts/setup-prefect``), never from flowdeck's own environment.
Under ``CI=true`` a server that cannot start fails the tests.
"""

from __future__ import annotations

import os
import secrets
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.process import ServerProcess, free_port, unavailable

__all__ = ["PrefectServer", "prefect_bin", "prefect_server", "server", "start_prefect_server"]

REPO_ROOT = Path(__file__).resolve().parents[2]
AUTH_USER = "flowdeck"


# Read once at import: the test-wide isolation scrubs FLOWDECK_* variables before each test runs.
_VENV = Path(os.environ.get("FLOWDECK_PREFECT_VENV") or REPO_ROOT / ".prefect-venv")


def prefect_venv() -> Path:
    """Where the Prefect used by the tests is installed."""
    return _VENV


def prefect_bin() -> Path:
    """The ``prefect`` executable of the tests' Prefect virtualenv."""
    return prefect_venv() / "bin" / "prefect"


@dataclass
class PrefectServer:
    """A running Prefect server: its API URL and the credential it requires."""

    url: str
    auth_string: str
    process: ServerProcess
    home: Path

    @property
    def password(self) -> str:
        """The password half of the auth string (a sentinel the tests search output for)."""
        return self.auth_string.split(":", 1)[1]

    def env(self) -> dict[str, str]:
        """The environment a client needs to use this server, as Prefect's own client reads it."""
        return {"PREFECT_API_URL": self.url, "PREFECT_API_AUTH_STRING": self.auth_string}


def _ready(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
        return bool(response.status == 200)


def start_prefect_server(root: Path, *, database_url: str | None = None, auth_string: str | None = None,
                         port: int | None = None, csrf: bool = False, timeout: float = 180.0) -> PrefectServer:
    """Start ``prefect server start`` on a loopback port (free, or ``port``) with its home under ``root``.

    Starting again with the same ``root``, ``port`` and ``auth_string`` restarts the same server: the
    database under its home survives.
    """
    exe = prefect_bin()
    if not exe.exists():
        unavailable("a Prefect installation for the registry tests", "run scripts/setup-prefect")
    port = port or free_port()
    home = root / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    auth = auth_string or f"{AUTH_USER}:sentinel-{secrets.token_hex(10)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FLOWDECK_"))}
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_API_AUTH_STRING": auth,
        "PREFECT_UI_ENABLED": "false",
    })
    if csrf:
        env["PREFECT_SERVER_CSRF_PROTECTION_ENABLED"] = "true"
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    process = ServerProcess("prefect server", [str(exe), "server", "start", "--host", "127.0.0.1", "--port",
                                               str(port)], root / "prefect-server.log", cwd=root, env=env)
    url = f"http://127.0.0.1:{port}/api"
    try:
        process.start(lambda: _ready(url), timeout=timeout)
    except RuntimeError as exc:
        unavailable("a Prefect server", str(exc)[-500:])
    return PrefectServer(url, auth, process, home)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One Prefect server on SQLite for the whole session, requiring an auth string and CSRF tokens."""
    server = start_prefect_server(tmp_path_factory.mktemp("prefect"), csrf=True)
    yield server
    server.process.stop()


@pytest.fixture
def server(prefect_server: PrefectServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrefectServer]:
    """The shared server, configured for this test as PREFECT_API_URL + PREFECT_API_AUTH_STRING."""
    from flowdeck.registry import choose

    for key, value in prefect_server.env().items():
        monkeypatch.setenv(key, value)
    choose.reset()
    yield prefect_server
    choose.reset()
