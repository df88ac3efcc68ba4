"""Every bundled recipe renders to a valid, commented prefect.yaml with its runtime placeholders intact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from flowdeck.errors import RecipeError
from flowdeck.init import initialize_project
from flowdeck.recipes import list_recipes, load_recipe
from tests.conftest import run_cli

RECIPES = [
    "azure",
    "docker",
    "docker-azure",
    "docker-gcs",
    "docker-git",
    "docker-s3",
    "gcs",
    "git",
    "local",
    "s3",
]

# Required inputs per recipe, plus a repository for the git ones (automatic only with a git remote).
FIELDS: dict[str, dict[str, str]] = {
    "local": {},
    "git": {"repository": "https://github.com/acme/flows.git"},
    "s3": {"bucket": "code-bucket"},
    "gcs": {"bucket": "code-bucket"},
    "azure": {"container": "code", "credentials": "azure-creds"},
    "docker": {"image_name": "127.0.0.1:5000/acme/flows", "tag": "v1"},
    "docker-git": {
        "image_name": "acme/flows",
        "tag": "v1",
        "repository": "https://github.com/acme/flows.git",
    },
    "docker-s3": {"image_name": "acme/flows", "tag": "v1", "bucket": "code-bucket"},
    "docker-gcs": {"image_name": "acme/flows", "tag": "v1", "bucket": "code-bucket"},
    "docker-azure": {"image_name": "acme/flows", "tag": "v1", "container": "code", "credentials": "az"},
}


def _steps(section: Any) -> dict[str, dict[str, Any]]:
    return {name.rsplit(".", 1)[-1]: args for step in section or [] for name, args in step.items()}


def test_all_ten_recipes_are_listed_with_descriptions() -> None:
    recipes = list_recipes()
    assert [r.name for r in recipes] == RECIPES
    assert all(r.description for r in recipes)
    assert load_recipe("s3").required_inputs == {"bucket": "The S3 bucket to store and retrieve code from"}


@pytest.mark.parametrize("name", RECIPES)
def test_each_recipe_renders_valid_commented_yaml(name: str, tmp_path: Path) -> None:
    project = tmp_path / "my-proj"
    project.mkdir()
    fields = [f"{k}={v}" for k, v in FIELDS[name].items()]
    result = run_cli("init", "--recipe", name, *(a for f in fields for a in ("--field", f)), cwd=project)
    assert result.code == 0, result.stderr
    assert result.stdout == (
        f"Created project in {project} with the following new files:\n  .prefectignore\n  prefect.yaml\n"
    )
    text = (project / "prefect.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["name"] == "my-proj"
    # Recipe metadata stays in the recipe; the file explains itself with comments.
    assert not {"description", "required_inputs", "optional_inputs", "block_inputs"} & set(config)
    assert "if-input" not in text
    for section in ("# build:", "# push:", "# pull:", "# deployments:"):
        assert section in text
    # No recipe input is left unfilled; runtime placeholders survive.
    assert "{{ name }}" not in text and "{{ bucket }}" not in text and "{{ image_name }}" not in text
    pull = _steps(config["pull"])
    if "pull_from_s3" in pull or "pull_from_gcs" in pull:
        args = pull.get("pull_from_s3") or pull["pull_from_gcs"]
        assert args["bucket"] == "{{ push_code.bucket }}"
        assert args["folder"] == "{{ push_code.folder }}"  # Prefect's gcs recipe reads pull_code here
    if "docker" in name:
        assert config["deployments"][0]["work_pool"]["job_variables"] == {"image": "{{ build_image.image }}"}
        assert _steps(config["build"])["build_docker_image"]["dockerfile"] == "auto"
    if "azure" in name:
        assert _steps(config["push"])["push_to_azure_blob_storage"]["credentials"] == (
            "{{ prefect.blocks.azure-blob-storage-credentials." + FIELDS[name]["credentials"] + " }}"
        )
    assert (project / ".prefectignore").read_text().startswith("# prefect artifacts\n.prefectignore\n")



@pytest.mark.parametrize("name", RECIPES)
def test_each_initialised_recipe_passes_flowdeck_validate(name: str, tmp_path: Path) -> None:
    fields = [a for k, v in FIELDS[name].items() for a in ("--field", f"{k}={v}")]
    assert run_cli("init", "--recipe", name, *fields, cwd=tmp_path).code == 0
    # The template leaves the deployment's name and entrypoint empty, as Prefect's does: validate says so
    # (deploy would refuse it) and nothing else; filled in, the file is valid.
    result = run_cli("validate", cwd=tmp_path)
    assert result.code == 1, result.output
    assert result.stderr.splitlines()[-1] == "prefect.yaml: 1 error, 0 warnings", result.stderr
    assert "error: deployments[0]: deployments[0] has no name and no entrypoint" in result.stderr
    path = tmp_path / "prefect.yaml"
    path.write_text(path.read_text().replace("- name: null", "- name: d")
                    .replace("entrypoint: null", "entrypoint: flows.py:main"))
    result = run_cli("validate", cwd=tmp_path)
    assert result.code == 0, result.output


def test_values_that_yaml_would_misread_are_quoted(tmp_path: Path) -> None:
    tricky = ["yes", "123", "a: b", "#hash", "null", "ünïcode", "x'y\"z", "  padded ", "{{ $BUCKET }}"]
    for index, value in enumerate(tricky):
        project = tmp_path / f"p{index}"
        project.mkdir()
        initialize_project(project, recipe="s3", fields={"bucket": value})
        config = yaml.safe_load((project / "prefect.yaml").read_text())
        assert _steps(config["push"])["push_to_s3"]["bucket"] == value


@pytest.mark.parametrize(
    ("recipe", "field", "step", "reference"),
    [
        ("s3", "credentials=my-creds", "push_to_s3", "{{ prefect.blocks.aws-credentials.my-creds }}"),
        ("gcs", "credentials=gcp", "pull_from_gcs", "{{ prefect.blocks.gcp-credentials.gcp }}"),
        (
            "docker",
            "registry_credentials=reg",
            "push_docker_image",
            "{{ prefect.blocks.docker-registry-credentials.reg }}",
        ),
        (
            "docker-s3",
            "registry_credentials=reg",
            "push_docker_image",
            "{{ prefect.blocks.docker-registry-credentials.reg }}",
        ),
        ("git", "credentials=gh", "git_clone", "{{ prefect.blocks.github-credentials.gh }}"),
        (
            "git",
            "credentials=gitlab-credentials/gl",
            "git_clone",
            "{{ prefect.blocks.gitlab-credentials.gl }}",
        ),
        (
            "s3",
            "credentials={{ prefect.blocks.aws-credentials.x }}",
            "pull_from_s3",
            "{{ prefect.blocks.aws-credentials.x }}",
        ),
    ],
)
def test_credentials_fields_become_block_references_in_push_and_pull(
    recipe: str, field: str, step: str, reference: str, tmp_path: Path
) -> None:
    fields = [field, *(f"{k}={v}" for k, v in FIELDS[recipe].items())]
    initialize_project(tmp_path, recipe=recipe, fields=fields)
    config = yaml.safe_load((tmp_path / "prefect.yaml").read_text())
    steps = {**_steps(config["push"]), **_steps(config["pull"])}
    assert steps[step]["credentials"] == reference
    if recipe == "s3":
        assert _steps(config["pull"])["pull_from_s3"]["credentials"] == reference


def test_credentials_are_left_out_when_not_given(tmp_path: Path) -> None:
    initialize_project(tmp_path, recipe="s3", fields={"bucket": "b"})
    config = yaml.safe_load((tmp_path / "prefect.yaml").read_text())
    assert "credentials" not in _steps(config["push"])["push_to_s3"]


def test_unknown_recipe_lists_the_recipes(tmp_path: Path) -> None:
    result = run_cli("init", "--recipe", "s4", cwd=tmp_path)
    assert result.code == 1
    assert result.stderr == (
        "error: unknown recipe 's4' (hint: did you mean 's3'? "
        "recipes: azure, docker, docker-azure, docker-gcs, "
        "docker-git, docker-s3, gcs, git, local, s3 (`flowdeck init --list` describes them))\n"
    )
    assert not list(tmp_path.iterdir())


def test_init_list_shows_every_recipe_and_its_inputs() -> None:
    result = run_cli("init", "--list")
    assert result.code == 0
    lines = result.stdout.splitlines()
    assert "s3: Store code within an S3 bucket" in lines
    assert "    --field bucket=...  (required) The S3 bucket to store and retrieve code from" in lines
    assert sum(1 for line in lines if not line.startswith(" ")) == 10


def test_bundled_recipe_errors_are_recipe_errors() -> None:
    with pytest.raises(RecipeError):
        load_recipe("../s3")


def test_docker_recipe_pulls_into_the_directory_the_generated_dockerfile_copies_to(tmp_path: Path) -> None:
    from flowdeck.steps.docker_context import generate_dockerfile

    project = tmp_path / "proj"
    project.mkdir()
    result = run_cli("init", "--recipe", "docker", "--name", "other-name", "--field", "image_name=r/x",
                     "--field", "tag=v1", cwd=project)
    assert result.code == 0, result.output
    config = yaml.safe_load((project / "prefect.yaml").read_text())
    assert config["name"] == "other-name"
    directory = _steps(config["pull"])["set_working_directory"]["directory"]
    # The build step generates its Dockerfile from the directory it runs in (the project directory).
    dockerfile = generate_dockerfile("python:3.12-slim", project.name, has_requirements=False)
    assert f"COPY . {directory}/" in dockerfile
    assert f"WORKDIR {directory}/" in dockerfile
