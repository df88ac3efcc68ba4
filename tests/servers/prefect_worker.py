"""A worker-side Python for the worker tests: Prefect and flowdeck, as in a team's worker image.

The server is :func:`tests.servers.prefect.prefect_server` (shared with the registry tests).

Prefect lives in a virtualenv of its own (``scripts/setup-prefect``; ``$FLOWDECK_PREFECT_VENV`` or
``.prefect-venv``), never in flowdeck's. The worker side is what a team's worker image holds: Prefect plus
flowdeck. It is an *overlay* virtualenv made per test session: a ``.pth`` file puts the Prefect
virtualenv's packages on its path, flowdeck is installed there from the checkout (``pip install -e``),
and pip adds there only what the Prefect virtualenv lacks (gitpython, filelock, boto3). The shared Prefect
virtualenv is never modified. Processes started with :func:`prefect_env` get ``PIP_NO_INDEX=1``: Prefect's
install-on-demand may run pip, which must never reach an index from a test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.servers.prefect import PrefectServer
from tests.servers.process import unavailable

__all__ = ["PREFECT_VERSION", "client_env", "make_worker_python", "prefect_env", "prefect_venv", "run_python",
           "worker_python"]

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
PREFECT_VERSION = os.environ.get("FLOWDECK_PREFECT_VERSION", "3.9.1")
# Read once at import: the test-wide isolation scrubs FLOWDECK_* variables before fixtures run.
_VENV = Path(os.environ.get("FLOWDECK_PREFECT_VENV") or REPO_ROOT / ".prefect-venv")
# What flowdeck needs at run time on a worker (its dependencies and the s3 extra).
_WORKER_REQUIREMENTS = (
    "pyyaml>=6.0", "jinja2>=3.1", "jsonschema>=4.18", "gitpython>=3.1", "pathspec>=0.12", "rich>=13",
    "filelock>=3.12", "boto3>=1.34", "zstandard>=0.22",
)


def prefect_venv() -> Path:
    """The Prefect virtualenv; skip (fail under CI) when it is not installed."""
    if not (_VENV / f".prefect-{PREFECT_VERSION}").is_file() or not (_VENV / "bin" / "python").exists():
        unavailable(f"prefect {PREFECT_VERSION} in {_VENV}", "run scripts/setup-prefect")
    return _VENV


def _purelib(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


def prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    """The environment of a Prefect process: its own home, no telemetry, no network but loopback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_CLI_COLORS": "false",
        "PREFECT_CLI_WRAP_LINES": "false",
        "DO_NOT_TRACK": "1",
        "PIP_NO_INDEX": "1",
    })
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def client_env(server: PrefectServer, home: Path) -> dict[str, str]:
    """The environment of a Prefect client (step runner, worker) using ``server``, with its own home."""
    return {**prefect_env(home), **server.env()}


def make_worker_python(env_dir: Path, extra: tuple[str, ...] = ()) -> Path:
    """Build the worker-side environment in ``env_dir``; its python. RuntimeError when pip fails.

    ``extra`` are more packages for it (the worker benchmark adds ``prefect-aws`` for Prefect's own S3 pull).
    """
    base = prefect_venv_python()
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(_purelib(python))
    (site / "_prefect_venv.pth").write_text(_purelib(base) + "\n")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # flowdeck as an installed distribution (editable), so Prefect's install-on-demand of a published
    # `requires: flowdeck[s3]` finds it satisfied and never looks for a "flowdeck" on an index.
    steps = [(*_WORKER_REQUIREMENTS, f"prefect=={PREFECT_VERSION}", *extra), ("--no-deps", "-e", str(REPO_ROOT))]
    for args in steps:
        proc = subprocess.run([*pip, *args], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"pip install {' '.join(args)} failed: {proc.stderr.strip()[-300:]}")
    check = subprocess.run([str(python), "-c", "import prefect, flowdeck.steps, git, boto3"],
                           capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(check.stderr.strip()[-300:])
    return python


def prefect_venv_python() -> Path:
    """The python of the Prefect virtualenv (RuntimeError when it is not installed)."""
    if not (_VENV / f".prefect-{PREFECT_VERSION}").is_file() or not (_VENV / "bin" / "python").exists():
        raise RuntimeError(f"prefect {PREFECT_VERSION} is not installed in {_VENV}: run scripts/setup-prefect")
    return _VENV / "bin" / "python"


@pytest.fixture(scope="session")
def worker_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a worker-side environment: Prefect, and flowdeck from this checkout."""
    prefect_venv()
    try:
        return make_worker_python(tmp_path_factory.mktemp("worker-env"))
    except RuntimeError as exc:
        unavailable("flowdeck and its dependencies in the worker environment", str(exc))
        raise


def run_python(python: Path, code: str, *, cwd: Path, env: dict[str, str],
               timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``python`` (never with secrets in argv: pass them in ``env``)."""
    return subprocess.run([str(python), "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
