"""Fixtures for the registry tests: the shared Prefect server, its environment, a small project."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import write_tree
from tests.servers.flaky_proxy import FaultyHttpProxy
from tests.servers.prefect import PrefectServer, prefect_server, server  # noqa: F401

FLOW = '''
def hello(name: str = "world", times: int = 1):
    """Say hello."""
    return {"greeting": " ".join([f"hello {name}"] * times)}
'''


@pytest.fixture
def uid() -> str:
    """A short unique suffix: the server is shared by every test of the session."""
    return secrets.token_hex(4)


def write_project(root: Path, flow_name: str, deployments: str, pull_dir: Path | None = None) -> Path:
    """A project whose flow is called ``flow_name``, with the given ``deployments:`` YAML block."""
    write_tree(root, {
        "flows/hello.py": FLOW,
        "prefect.yaml": (
            "pull:\n- prefect.deployments.steps.set_working_directory:\n    directory: "
            + str(pull_dir or root) + "\n" + "deployments:\n" + deployments
        ),
    })
    return root


@pytest.fixture
def proxy(prefect_server: PrefectServer) -> Iterator[FaultyHttpProxy]:  # noqa: F811
    """A proxy in front of the shared server that can answer errors, drop connections or hold requests."""
    port = int(prefect_server.url.rsplit(":", 1)[1].split("/")[0])
    forwarding = FaultyHttpProxy(port)
    yield forwarding
    forwarding.close()
