"""The s3, gcs and azure recipes push and pull against the real servers, through the CLI only.

For each server (moto and SeaweedFS for S3, fake-gcs-server, Azurite): a credentials block is created
with ``flowdeck block create``, the project is started with ``flowdeck init --recipe``, the generated
deployment gets a name and an entrypoint, ``flowdeck steps run push`` uploads the project, and the code
is pulled into empty directories twice: by ``flowdeck steps run pull`` (with the push outputs filled in,
as deploy stores them) and by ``flowdeck pull`` on the deployed version (the worker's way).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.e2e.helpers import (
    PROJECT_FILES,
    Backend,
    cli_ok,
    init_recipe,
    name_deployment,
    tree,
    write_project,
)

# The pull step's own record of what it downloaded (it makes the next pull incremental).
PULL_RECORD = ".flowdeck-pull.json"


def test_a_storage_recipe_pushes_and_pulls_the_project(backend: Backend, project: Path, tmp_path: Path) -> None:
    backend.create_block(project)
    write_project(project)
    generated = init_recipe(project, backend.recipe, *backend.init_fields())
    push_step = yaml.safe_load(generated)["push"][0]
    assert push_step[f"prefect_{_package(backend)}.deployments.steps.push_to_{_step(backend)}"] == {
        "id": "push_code", "requires": _requires(backend), backend.name_field: backend.name,
        "folder": "project", "credentials": backend.reference}
    name_deployment(project)
    assert cli_ok("validate", "--strict", cwd=project).code == 0

    push_run = cli_ok("steps", "run", "push", "--json", cwd=project)
    pushed = json.loads(push_run.stdout)
    assert pushed["push_code"] == {backend.name_field: backend.name, "folder": "project",
                                   "snapshot": pushed["push_code"]["snapshot"]}
    # The upload is the project minus .prefectignore's matches (and the ignore file itself).
    expected = {**tree(project, skip=(".prefectignore",))}
    for ignored in ("flows/__pycache__/hello.cpython-311.pyc", ".env", ".venv/bin/activate", "debug.log"):
        expected.pop(ignored)
    assert sorted(expected) == sorted([*PROJECT_FILES, "prefect.yaml"])
    keys = backend.list_keys()
    assert [k for k in keys if k.startswith("project/") and not k.startswith("project/.flowdeck")] == sorted(
        f"project/{p}" for p in expected)
    assert any(k.startswith(".flowdeck-snapshots/project/snapshots/") for k in keys)  # the snapshot, beside it

    # `steps run pull` on its own: the recipe's pull step reads push_code's outputs, which deploy would
    # have filled in, so the worker's copy of the file carries them.
    worker = tmp_path / "worker"
    worker.mkdir()
    worker_file = worker / "prefect.yaml"
    worker_file.write_text(
        (project / "prefect.yaml").read_text(encoding="utf-8")
        .replace("{{ push_code." + backend.name_field + " }}", backend.name)
        .replace("{{ push_code.folder }}", pushed["push_code"]["folder"]),
        encoding="utf-8")
    pulled_dir = tmp_path / "pulled"
    pulled_dir.mkdir()
    pull_run = cli_ok("steps", "run", "pull", "--json", "--file", str(worker_file), cwd=pulled_dir)
    pulled = json.loads(pull_run.stdout)
    assert pulled["pull_code"] == {backend.name_field: backend.name, "folder": "project",
                                   "directory": str(pulled_dir)}
    assert tree(pulled_dir, skip=(PULL_RECORD,)) == expected

    # The worker's way: deploy (the push finds nothing new to upload), then pull the stored version.
    deploy_run = cli_ok("deploy", "--json", cwd=project)
    show = cli_ok("deployment", "show", "e2e", "--json", cwd=tmp_path)
    record = json.loads(show.stdout)["record"]
    assert record["pull_steps"][0][f"prefect_{_package(backend)}.deployments.steps.pull_from_{_step(backend)}"] \
        == {"id": "pull_code", "requires": _requires(backend), backend.name_field: backend.name,
            "folder": "project", "credentials": backend.reference}
    target = tmp_path / "worker-run"
    out = cli_ok("pull", "e2e", "--dir", str(target), cwd=tmp_path)
    assert out.stdout.strip() == str(target)
    assert tree(target, skip=(PULL_RECORD,)) == expected

    if backend.secret is not None:
        # The secret went in on stdin only: no output, stored record or project file holds it.
        seen = [r.output for r in (push_run, pull_run, deploy_run, show, out)]
        seen += [(project / name).read_text(encoding="utf-8") for name in ("prefect.yaml", ".prefectignore")]
        assert not [text for text in seen if backend.secret in text]


def _package(backend: Backend) -> str:
    return {"s3": "aws", "gcs": "gcp", "azure": "azure"}[backend.recipe]


def _step(backend: Backend) -> str:
    return {"s3": "s3", "gcs": "gcs", "azure": "azure_blob_storage"}[backend.recipe]


def _requires(backend: Backend) -> str:
    return {"s3": "prefect-aws>=0.3.4", "gcs": "prefect-gcp>=0.4.3",
            "azure": "prefect-azure[blob_storage]>=0.2.8"}[backend.recipe]
