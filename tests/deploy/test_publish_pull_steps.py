"""Publishing pull steps for Prefect's own workers: ``--pull-steps flowdeck`` and Prefect-only templates."""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from flowdeck.errors import DeployError
from flowdeck.publish import EXTRA_REQUIREMENTS, flowdeck_requirement, publish_pull_steps
from tests.conftest import REPO_ROOT, run_cli, write_tree

FLOW = "def hello(name: str = 'world'):\n    return name\n"


def _project(root: Path, pull: str, top: str = "") -> Path:
    write_tree(root, {
        "flows/hello.py": FLOW,
        "prefect.yaml": top + "pull:\n" + pull + (
            "deployments:\n- name: daily\n  entrypoint: flows/hello.py:hello\n  work_pool: {name: pool}\n"),
    })
    return root


PULL = """\
- prefect.deployments.steps.git_clone:
    id: clone
    repository: https://github.com/acme/flows.git
    credentials: '{{ prefect.blocks.github-credentials.acme }}'
- prefect_aws.deployments.steps.pull_from_s3:
    requires: prefect-aws>=0.3
    bucket: code
    folder: '<< clone.directory >>'
    credentials: '{{ prefect.blocks.aws-credentials.prod }}'
- prefect.deployments.steps.set_working_directory:
    directory: '{{ clone.directory }}'
- mypkg.steps:prepare:
    requires: mypkg>=1
    path: x
"""


def _published(project: Path) -> list[dict[str, Any]]:
    shown = run_cli("deployment", "show", "daily", "--json", cwd=project)
    assert shown.code == 0, shown.stderr
    steps: list[dict[str, Any]] = json.loads(shown.stdout)["record"]["pull_steps"]
    return steps


def test_pull_steps_flowdeck_publishes_flowdecks_names_with_requires(project: Path) -> None:
    _project(project, PULL)
    result = run_cli("deploy", "--pull-steps", "flowdeck", cwd=project)
    assert result.code == 0, result.stderr
    assert _published(project) == [
        {"flowdeck.steps.git_clone": {
            "id": "clone", "repository": "https://github.com/acme/flows.git",
            "credentials": "{{ prefect.blocks.github-credentials.acme }}", "requires": "flowdeck"}},
        {"flowdeck.steps.pull_from_s3": {
            "requires": ["flowdeck", "boto3>=1.34", "zstandard>=0.22"], "bucket": "code",
            "folder": "{{ clone.directory }}",
            "credentials": "{{ prefect.blocks.aws-credentials.prod }}"}},
        {"flowdeck.steps.set_working_directory": {"directory": "{{ clone.directory }}", "requires": "flowdeck"}},
        {"mypkg.steps:prepare": {"requires": "mypkg>=1", "path": "x"}},
    ]


def test_the_default_publishes_the_names_as_written(project: Path) -> None:
    _project(project, PULL)
    assert run_cli("deploy", cwd=project).code == 0
    published = _published(project)
    assert [next(iter(s)) for s in published] == [
        "prefect.deployments.steps.git_clone", "prefect_aws.deployments.steps.pull_from_s3",
        "prefect.deployments.steps.set_working_directory", "mypkg.steps:prepare"]
    assert published[1]["prefect_aws.deployments.steps.pull_from_s3"]["requires"] == "prefect-aws>=0.3"


def test_the_mode_can_be_set_in_prefect_yaml_and_the_option_wins(project: Path) -> None:
    _project(project, PULL, top="flowdeck:\n  pull_steps: flowdeck\n")
    validated = run_cli("validate", cwd=project)
    assert validated.code == 0 and "unknown" not in validated.output, validated.output
    assert run_cli("deploy", cwd=project).code == 0
    assert next(iter(_published(project)[0])) == "flowdeck.steps.git_clone"
    assert run_cli("deploy", "--pull-steps", "as-written", cwd=project).code == 0
    assert next(iter(_published(project)[0])) == "prefect.deployments.steps.git_clone"


@pytest.mark.parametrize(("value", "words"), [
    ("'{{ $BRANCH | default(\"main\") }}'", "is an expression Prefect's step runner does not evaluate"),
    ("'<< $BRANCH | upper >>'", "is an expression Prefect's step runner does not evaluate"),
    ("'token={{ prefect.blocks.secret.tok }}'", "is a block inside a longer string"),
])
def test_templates_prefects_runner_cannot_read_are_refused_with_their_place(
        project: Path, value: str, words: str) -> None:
    _project(project, "- prefect.deployments.steps.git_clone:\n    repository: https://h/r.git\n"
                      f"    branch: {value}\n")
    result = run_cli("deploy", "--pull-steps", "flowdeck", cwd=project)
    assert result.code == 1
    assert words in result.stderr
    assert "prefect.yaml:4:" in result.stderr and "pull[0]" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli("deployment", "show", "daily", cwd=project).code == 1  # nothing was recorded


def test_an_expression_over_a_build_output_is_rendered_at_deploy_time(project: Path) -> None:
    write_tree(project, {"flows/hello.py": FLOW, "prefect.yaml": """\
build:
- prefect.deployments.steps.run_shell_script:
    id: ver
    script: echo Release-7
pull:
- prefect.deployments.steps.git_clone:
    repository: https://h/r.git
    branch: '{{ ver.stdout | trim | lower }}'
deployments:
- name: daily
  entrypoint: flows/hello.py:hello
"""})
    result = run_cli("deploy", "--steps", "flowdeck", cwd=project)
    assert result.code == 0, result.stderr
    assert _published(project)[0]["flowdeck.steps.git_clone"]["branch"] == "release-7"


def test_every_storage_step_requires_its_extra() -> None:
    steps = [{"prefect_gcp.deployments.steps.pull_from_gcs": {"bucket": "b", "folder": "f"}},
             {"prefect_azure.deployments.steps.pull_from_azure_blob_storage": {
                 "container": "c", "folder": "f", "credentials": "{{ prefect.blocks.azure.x }}"}},
             {"prefect.deployments.steps.run_shell_script": {"script": "echo <<x>>"}}]
    published = publish_pull_steps(steps, None, mode="flowdeck")
    assert [s[next(iter(s))]["requires"] for s in published] == [
        ["flowdeck", "google.cloud.storage>=2.14", "zstandard>=0.22"],
        ["flowdeck", "azure.storage.blob>=12.19", "azure.identity>=1.15", "zstandard>=0.22"],
        "flowdeck"]
    assert published[2]["flowdeck.steps.run_shell_script"]["script"] == "echo {{ x }}"
    assert flowdeck_requirement("s3") == ["flowdeck", "boto3>=1.34", "zstandard>=0.22"]


def _prefect_import_name(requirement: str) -> str:
    """The module Prefect's step runner imports to decide whether a requirement is installed."""
    return re.split(r"[<>=!~]", requirement, maxsplit=1)[0].strip().replace("-", "_")


@pytest.mark.parametrize("extra", sorted(EXTRA_REQUIREMENTS))
def test_published_requirements_are_the_extras_by_importable_names(extra: str) -> None:
    # The same distributions and versions as pyproject.toml's extra: pip compares names with -, _ and . alike.
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][extra]
    ours = flowdeck_requirement(extra)
    assert ours[0] == "flowdeck"

    def same(requirements: list[str]) -> list[tuple[str, str]]:
        return [(canonicalize_name(Requirement(r).name), str(Requirement(r).specifier)) for r in requirements]

    assert same(ours[1:]) == same(declared)
    # Each imports under Prefect's rule, so a worker with flowdeck installed never runs pip before the step.
    for requirement in ours:
        importlib.import_module(_prefect_import_name(requirement))


def test_as_written_for_a_prefect_server_checks_templates_too() -> None:
    steps = [{"prefect.deployments.steps.git_clone": {"repository": "{{ $REPO | lower }}"}}]
    assert publish_pull_steps(steps, None, for_prefect=False) == steps
    with pytest.raises(DeployError, match="does not evaluate"):
        publish_pull_steps(steps, None, for_prefect=True)


def test_runner_flowdeck_sets_the_pools_command(project: Path) -> None:
    _project(project, "- prefect.deployments.steps.set_working_directory:\n    directory: /srv\n")
    result = run_cli("deploy", "--runner", "flowdeck", cwd=project)
    assert result.code == 0, result.stderr
    shown = json.loads(run_cli("deployment", "show", "daily", "--json", cwd=project).stdout)
    assert shown["record"]["work_pool"]["job_variables"] == {"command": "flowdeck flow-run execute"}


def test_runner_can_be_set_in_prefect_yaml(project: Path) -> None:
    _project(project, "- prefect.deployments.steps.set_working_directory:\n    directory: /srv\n",
             top="flowdeck:\n  runner: flowdeck\n")
    assert run_cli("deploy", cwd=project).code == 0
    shown = json.loads(run_cli("deployment", "show", "daily", "--json", cwd=project).stdout)
    assert shown["record"]["work_pool"]["job_variables"]["command"] == "flowdeck flow-run execute"
    bad = _project(project, "- prefect.deployments.steps.set_working_directory:\n    directory: /srv\n",
                   top="flowdeck:\n  runner: docker\n")
    result = run_cli("deploy", cwd=bad)
    assert result.code == 1 and "prefect.yaml:2:" in result.stderr and "runner" in result.stderr
