"""The real docker recipes, from ``flowdeck init`` to an image in a registry, through the CLI only.

For each of docker, docker-git, docker-s3, docker-gcs and docker-azure: ``flowdeck init --recipe``
writes the file (with a ``FROM scratch`` Dockerfile in the project, so ``dockerfile: Dockerfile``), then
``flowdeck steps run build push --json`` builds with podman, pushes to the test registry and, for the
storage variants, uploads the code to the real storage server with the credentials block. The digest
the steps report is the one the registry serves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.e2e.helpers import cli_ok, init_recipe, name_deployment, storage_backend, write_project
from tests.servers.registry import PodmanConfig, Registry

# Each docker recipe, and the storage server its push uploads the code to (None: no code upload).
RECIPES = {
    "docker": None,
    "docker-git": None,
    "docker-s3": "moto",
    "docker-gcs": "fake-gcs",
    "docker-azure": "azurite",
}
DOCKERFILE = "FROM scratch\nCOPY flows /opt/prefect/flows\nCOPY README.md /opt/prefect/README.md\n"


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_a_docker_recipe_builds_and_pushes_to_the_registry(
    recipe: str, podman: PodmanConfig, registry: Registry, project: Path,
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_project(project, {"Dockerfile": DOCKERFILE})
    repo = registry.repo(recipe)
    fields = ["--field", f"image_name={repo}", "--field", "tag=v1"]
    if recipe == "docker-git":
        # The clone happens on the worker only; building and pushing never contacts the repository.
        fields += ["--field", "repository=https://git.example.invalid/acme/flows.git"]
    kind = RECIPES[recipe]
    backend = storage_backend(request, kind, monkeypatch) if kind else None
    if backend is not None:
        backend.create_block(project)
        fields += backend.init_fields()
    config = yaml.safe_load(init_recipe(project, recipe, *fields))
    (build_step,) = config["build"]
    assert build_step["prefect_docker.deployments.steps.build_docker_image"] == {
        "id": "build_image", "requires": "prefect-docker>=0.3.1", "image_name": repo, "tag": "v1",
        "dockerfile": "Dockerfile"}
    name_deployment(project)
    cli_ok("validate", "--strict", cwd=project)

    result = cli_ok("steps", "run", "build", "push", "--json", cwd=project)
    outputs = json.loads(result.stdout)
    digest = registry.manifest_digest(f"{repo}:v1")
    assert outputs["build_image"]["image"] == f"{repo}:v1"
    assert outputs["image_with_digest"] == f"{repo}@{digest}"
    assert registry.tags(repo) == ["v1"]
    files = registry.image_files(f"{repo}@{digest}")
    assert {"opt/prefect/flows/hello.py", "opt/prefect/README.md"} <= files

    if backend is not None:
        assert outputs["push_code"] == {backend.name_field: backend.name, "folder": "project",
                                        "snapshot": outputs["push_code"]["snapshot"]}
        keys = backend.list_keys()
        assert {"project/Dockerfile", "project/flows/hello.py", "project/prefect.yaml"} <= set(keys)
        assert "project/.env" not in keys
        if backend.secret is not None:
            assert backend.secret not in result.output
    else:
        assert "push_code" not in outputs
