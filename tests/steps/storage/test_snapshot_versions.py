"""Snapshots through deploy and the worker, on every store: rollback runs the first version's code, gc keeps
whatever a version references, and the `flowdeck snapshot` commands."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.config import load_project
from flowdeck.deploy import DeployOptions, deploy
from flowdeck.history import get_version, list_deployments, set_live
from flowdeck.resolver import default_resolver
from flowdeck.snapshot.admin import collect_garbage, list_snapshots, open_location
from flowdeck.worker import pull_deployment, run_deployment
from tests.conftest import run_cli, write_tree
from tests.steps.storage.conftest import Store
from tests.steps.storage.test_faults import killer_on  # noqa: F401  (the fixture)

_STEP = {"moto": "s3", "seaweedfs": "s3", "azurite": "azure_blob_storage", "fake-gcs": "gcs"}


@pytest.fixture(autouse=True)
def _forget_block_env() -> Iterator[None]:
    yield
    for key in [k for k in os.environ if k.startswith("FLOWDECK_BLOCK__") and k.endswith("__SNAP")]:
        del os.environ[key]


_BLOCK_TYPE = {"moto": "aws-credentials", "seaweedfs": "aws-credentials", "azurite": "azure-blob-storage-credentials"}


def _project(store: Store, root: Path, greeting: str) -> Path:
    args = {store.name_arg: store.name, "folder": "flows", **store.step_args}
    if "credentials" in args:
        # Credentials go in a block, as users are told to: deploy refuses to store a known secret in clear.
        block_type = _BLOCK_TYPE[store.kind]
        env_name = f"FLOWDECK_BLOCK__{block_type.upper().replace('-', '_')}__SNAP"
        os.environ[env_name] = json.dumps(args["credentials"])
        args["credentials"] = f"{{{{ prefect.blocks.{block_type}.snap }}}}"
    doc = {
        "push": [{f"flowdeck.steps.push_to_{_STEP[store.kind]}": {"id": "push_code", **args}}],
        "pull": [{f"flowdeck.steps.pull_from_{_STEP[store.kind]}": args}],
        "deployments": [{"name": "etl", "entrypoint": "flows/hello.py:hello", "work_pool": {"name": "pool"}}],
    }
    write_tree(root, {
        "prefect.yaml": json.dumps(doc),
        "flows/hello.py": f"def hello():\n    return {greeting!r}\n",
        "flows/helper.py": "X = 1\n" * 1000,
    })
    return root


def _deploy(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(root)
    deploy(load_project(root / "prefect.yaml"), DeployOptions(all=True, resolver=default_resolver()))
    return list_deployments()[0].name


def _location(store: Store) -> Any:
    scheme = {"azurite": "az", "fake-gcs": "gs"}.get(store.kind, "s3")
    creds = store.step_args.get("credentials")
    endpoint = (store.step_args.get("client_parameters") or {}).get("endpoint_url")
    return open_location(f"{scheme}://{store.name}/flows", creds, endpoint)


def test_rollback_after_two_deploys_runs_the_first_versions_code(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(store, tmp_path / "project", "version one")
    name = _deploy(root, monkeypatch)
    first = get_version(name)
    assert [s["location"] for s in first.record["snapshots"]] == [_location(store).url]
    _project(store, root, "version two")
    _deploy(root, monkeypatch)
    assert get_version(name).record["snapshots"] != first.record["snapshots"]

    latest = run_deployment(name, directory=tmp_path / "run-latest")
    assert latest.run.result == "version two"
    set_live(name, None, previous=True)
    rolled_back = run_deployment(name, directory=tmp_path / "run-rollback")
    assert rolled_back.run.result == "version one"
    # The same directory, pulled for each version in turn, holds exactly that version's code.
    work = tmp_path / "work"
    pull_deployment(name, directory=work)
    assert "version one" in (work / "flows/hello.py").read_text()
    pull_deployment(name, version="2", directory=work)
    assert "version two" in (work / "flows/hello.py").read_text()


def test_gc_removes_nothing_referenced(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(store, tmp_path / "project", "version one")
    name = _deploy(root, monkeypatch)
    _project(store, root, "version two")
    _deploy(root, monkeypatch)
    # A push whose tree no version records (a deploy that failed later, or one still running).
    (root / "flows/hello.py").write_text("def hello():\n    return 'orphan'\n")
    monkeypatch.chdir(root)
    store.push()
    _project(store, root, "version two")
    store.push()  # HEAD is version two again
    location = _location(store)
    assert len(list_snapshots(location)) == 3

    young = collect_garbage(location, grace=3600)  # the orphan is younger than the grace period: kept
    assert young.snapshots == [] and young.packs == []
    dry = collect_garbage(location, grace=0, dry_run=True)
    assert len(dry.snapshots) == 1 and len(dry.packs) == 1
    assert len(list_snapshots(location)) == 3
    done = collect_garbage(location, grace=0)
    assert done.snapshots == dry.snapshots and done.packs == dry.packs
    infos = list_snapshots(location)
    assert sorted(len(i.versions) for i in infos) == [1, 1]
    assert collect_garbage(location, grace=0).snapshots == []
    for version in ("1", "2"):  # every referenced version still pulls, from a cold cache
        monkeypatch.setenv("FLOWDECK_NO_CACHE", "1")
        pull_deployment(name, version=version, directory=tmp_path / f"v{version}")
    assert "version one" in (tmp_path / "v1/flows/hello.py").read_text()


def test_snapshot_commands(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if store.kind != "moto":
        pytest.skip("the CLI is the same for every store; the library calls are tested on each")
    root = _project(store, tmp_path / "project", "version one")
    name = _deploy(root, monkeypatch)
    sid = get_version(name).record["snapshots"][0]["id"]
    server = store.extra["server"]
    env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
    where = [f"s3://{store.name}/flows", "--endpoint-url", server.endpoint]
    ls = run_cli("snapshot", "ls", *where, cwd=tmp_path, env=env)
    assert ls.code == 0, ls.stderr
    assert sid[:12] in ls.stdout and f"HEAD {name} " in ls.stdout
    show = run_cli("snapshot", "show", *where, sid[:8], cwd=tmp_path, env=env)
    assert show.code == 0, show.stderr
    assert f"snapshot {sid}" in show.stdout and "flows/hello.py" in show.stdout
    gc = run_cli("snapshot", "gc", *where, "--grace", "0s", "--dry-run", cwd=tmp_path, env=env)
    assert gc.code == 0, gc.stderr
    assert "would delete 0 snapshots and 0 packs" in gc.stdout
    bad = run_cli("snapshot", "ls", "ftp://x/y", cwd=tmp_path)
    assert bad.code == 1 and "is not a storage location" in bad.stderr


@pytest.mark.parametrize("kind", ["moto", "azurite", "fake-gcs"])
def test_a_server_killed_mid_push_leaves_no_version_and_no_snapshot(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, killer_on: Any  # noqa: F811
) -> None:
    from flowdeck.errors import FlowdeckError
    from tests.steps.storage.test_faults import _Backend

    backend = _Backend(kind, tmp_path / "servers", monkeypatch)
    try:
        server = backend.server
        if kind == "moto":
            args: dict[str, Any] = {"bucket": "faults", "credentials": server.credentials(),
                                    "client_parameters": {"endpoint_url": server.endpoint}}
            step = "s3"
        elif kind == "azurite":
            args = {"container": "faults", "credentials": {"connection_string": server.connection_string()}}
            step = "azure_blob_storage"
        else:
            args = {"bucket": "faults"}
            step = "gcs"
        args["folder"] = "app"
        doc = {
            "push": [{f"flowdeck.steps.push_to_{step}": {**args, "plain_layout": False}}],
            "pull": [{f"flowdeck.steps.pull_from_{step}": args}],
            "deployments": [{"name": "etl", "entrypoint": "flows/hello.py:hello", "work_pool": {"name": "p"}}],
        }
        root = tmp_path / "project"
        write_tree(root, {"prefect.yaml": json.dumps(doc), "flows/hello.py": "def hello():\n    return 1\n"})
        monkeypatch.chdir(root)
        # The first write of a snapshot is its first pack's index: the manifest comes after it, and never.
        killer = killer_on("write", 1, backend.kill)
        with pytest.raises(FlowdeckError, match=r"push\[0\] push_to_\w+ failed: .*\(gave up after"):
            deploy(load_project(root / "prefect.yaml"), DeployOptions(all=True))
        assert killer.fired
        assert list_deployments() == []
    finally:
        backend.server.stop()
