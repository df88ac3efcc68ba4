"""Helpers shared by the git_clone tests."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

from tests.conftest import REPO_ROOT

# A worker process running the step, configured through the environment (never argv: a token there
# would be visible in the process list the tests scan).
WORKER = (
    "import json, os\n"
    "from flowdeck.steps.git import git_clone\n"
    "kwargs = json.loads(os.environ['FD_ARGS'])\n"
    "if os.environ.get('FD_TOKEN'):\n"
    "    kwargs['access_token'] = os.environ['FD_TOKEN']\n"
    "print(json.dumps(git_clone(**kwargs)))\n"
)


def head(repo: Path, ref: str = "HEAD") -> str:
    """The sha ``ref`` resolves to in ``repo``."""
    return subprocess.run(
        ["git", "rev-parse", ref], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def git_out(repo: Path, *args: str) -> str:
    """stdout of a git command in ``repo``."""
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def secret_forms(token: str) -> list[str]:
    """Every form in which a token could leak: raw, URL-encoded, and inside a Basic auth header."""
    forms = {token, quote(token, safe=""), quote_plus(token, safe="")}
    for user in (token, "oauth2", "x-token-auth", "x-access-token", "deploy-user", "someone"):
        for pair in (f"{user}:{token}", f"{token}:"):
            forms.add(base64.b64encode(pair.encode()).decode())
    return sorted(forms)


def assert_nowhere(token: str, *texts: str) -> None:
    """No form of ``token`` occurs in any of ``texts``."""
    for text in texts:
        for form in secret_forms(token):
            assert form not in text, f"secret leaked ({form[:6]}...) in: {text[:200]!r}"


def assert_not_in_tree(token: str, root: Path) -> None:
    """No form of ``token`` occurs in any file under ``root`` (configs, FETCH_HEAD, logs, packs...)."""
    forms = [f.encode() for f in secret_forms(token)]
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            for form in forms:
                assert form not in data, f"secret leaked into {path}"


def start_worker(
    cwd: Path, kwargs: dict[str, object], token: str | None = None, *, code: str = WORKER
) -> subprocess.Popen[str]:
    """Start the step in a separate process (a worker), in its own session so it can be killed alone."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["FD_ARGS"] = json.dumps(kwargs)
    if token:
        env["FD_TOKEN"] = token
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
