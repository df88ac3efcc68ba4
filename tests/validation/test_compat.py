"""Prefect compatibility, second pass (issue #12): what validate says about files Prefect reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.validation import validate_file
from tests.conftest import run_cli


def _report(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "prefect.yaml"
    path.write_text(text)
    report = validate_file(path, env={})
    return [f"{p.severity}: {str(p).replace(str(path), 'prefect.yaml')}" for p in report.sorted()]


def test_a_duplicate_key_with_the_same_value_is_a_warning_that_says_so(tmp_path: Path) -> None:
    text = ("deployments:\n- name: d\n  entrypoint: f.py:f\n  work_pool:\n    name: p\n"
            "  tags: [a, b]\n  tags: [a, b]\n")
    assert _report(tmp_path, text) == [
        "warning: prefect.yaml:7:3: deployments[0].tags: duplicate key 'tags' (first defined at line 6, column 3) "
        "with the same value both times; nothing is lost (hint: remove one of the two 'tags' keys)"]


def test_a_duplicate_key_with_different_values_stays_an_error(tmp_path: Path) -> None:
    text = "deployments:\n- name: d\n  entrypoint: f.py:f\n  tags: [a]\n  tags: [b]\n"
    (message,) = _report(tmp_path, text)
    assert message.startswith("error: prefect.yaml:5:3: deployments[0].tags: duplicate key 'tags'")
    assert "silently lost" in message


def _validate_cli(tmp_path: Path, text: str) -> tuple[int, str]:
    (tmp_path / "prefect.yaml").write_text(text)
    result = run_cli("validate", cwd=tmp_path)
    return result.code, result.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("pull:\n- prefect.deployments.steps.set_working_directory:\n    directory: /opt\n",
     "prefect.yaml:1:1: error: deployments: the file has no deployments, so there is nothing to deploy"),
    ("deployments: []\n", "prefect.yaml:1:1: error: deployments: the file has no deployments"),
    ("deployments:\n- name: d\n  work_pool:\n    name: p\n",
     "prefect.yaml:2:3: error: deployments[0]: deployment 'd' has no entrypoint"),
    ("deployments:\n- name: d\n  entrypoint: f.py:f\n- name: d\n  entrypoint: f.py:f\n",
     "prefect.yaml:4:9: error: deployments[1].name: deployment 'f/d' is defined twice: deployments[0] (line 2) "
     "has the same flow and name"),
    ("deployments:\n- name: d\n  entrypoint: a.py:etl\n- name: d\n  entrypoint: b.py:etl\n",
     "prefect.yaml:4:9: error: deployments[1].name: deployment 'etl/d' is defined twice"),
])
def test_validate_fails_on_what_deploy_would_reject(tmp_path: Path, text: str, expected: str) -> None:
    code, stderr = _validate_cli(tmp_path, text)
    assert code == 1, stderr
    assert expected in stderr


def test_same_name_for_two_flows_is_only_a_warning(tmp_path: Path) -> None:
    code, stderr = _validate_cli(tmp_path, "deployments:\n- name: d\n  entrypoint: a.py:one\n"
                                           "- name: d\n  entrypoint: a.py:two\n")
    assert code == 0, stderr
    assert "warning: deployments[1].name: deployment name 'd' is also used by deployments[0]" in stderr


def test_deploy_locates_the_second_of_two_equal_names(tmp_path: Path) -> None:
    # The flows' names come from their decorators, so only deploy can see that these two collide.
    (tmp_path / "a.py").write_text("from prefect import flow\n@flow(name='etl')\ndef one():\n    pass\n")
    (tmp_path / "b.py").write_text("from prefect import flow\n@flow(name='etl')\ndef two():\n    pass\n")
    (tmp_path / "prefect.yaml").write_text("deployments:\n- name: d\n  entrypoint: a.py:one\n"
                                           "- name: d\n  entrypoint: b.py:two\n")
    result = run_cli("deploy", "--all", "--dry-run", cwd=tmp_path)
    assert result.code == 1, result.output
    assert ("error: prefect.yaml:4:9: deployments[1].name: two selected deployments are both called 'etl/d' "
            "(the first is deployments[0], line 2)") in result.stderr


def test_deploy_of_a_deployment_without_a_name_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text("def f():\n    pass\n")
    (tmp_path / "prefect.yaml").write_text("deployments:\n- entrypoint: f.py:f\n")
    result = run_cli("deploy", "--dry-run", cwd=tmp_path)
    assert result.code == 1, result.output
    assert "prefect.yaml:2:3: deployments[0]: a deployment name is required" in result.stderr
    assert "internal error" not in result.output
