"""Incomplete block and variable references are located errors that show the full form."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.validation import validate_file
from flowdeck.validation.incomplete import incomplete_reference


def _problems(tmp_path: Path, value: str) -> list[str]:
    path = tmp_path / "prefect.yaml"
    path.write_text(
        "pull:\n- prefect.deployments.steps.run_shell_script:\n    script: echo hi\n"
        f"deployments:\n- name: d\n  entrypoint: f.py:f\n  parameters:\n    p: '{value}'\n"
    )
    report = validate_file(path, env={})
    return [str(p).replace(str(path), "prefect.yaml") for p in report.sorted() if p.severity == "error"]


@pytest.mark.parametrize(
    ("value", "lacks", "example"),
    [
        ("{{ prefect.blocks.secret }}", "a block name", "{{ prefect.blocks.secret.<block-document-name> }}"),
        ("{{ prefect.blocks. }}", "a block type and a block name",
         "{{ prefect.blocks.<block-type-slug>.<block-document-name> }}"),
        ("{{ prefect.blocks }}", "a block type and a block name",
         "{{ prefect.blocks.<block-type-slug>.<block-document-name> }}"),
        ("{{ prefect.variables }}", "a variable name", "{{ prefect.variables.<variable-name> }}"),
        ("{{ prefect.variables. }}", "a variable name", "{{ prefect.variables.<variable-name> }}"),
        ("x-{{ prefect.blocks.secret | upper }}", "a block name", "{{ prefect.blocks.secret.<block-document-name> }}"),
        ("{{ prefect.blocks.secret.tok. }}", "a field name after the last '.'",
         "{{ prefect.blocks.secret.tok.<field> }}"),
    ],
)
def test_an_incomplete_reference_is_one_located_error_with_the_full_form(
    tmp_path: Path, value: str, lacks: str, example: str
) -> None:
    (problem,) = _problems(tmp_path, value)
    kind = "variable" if "variables" in value else "block"
    text = value[value.index("{{"):]
    assert problem.startswith(
        f"prefect.yaml:8:8: deployments[0].parameters.p: '{text}' is an incomplete {kind} reference: it lacks {lacks} "
        f"(hint: write it in full, e.g. {example}; the form is "
    ), problem


@pytest.mark.parametrize(
    "name",
    ["prefect.blocks.secret.tok", "prefect.blocks.aws-credentials.c.aws_access_key_id", "prefect.variables.x",
     "prefect.variables.cfg.a.b", "build-image.image", "prefect_like.blocks"],
)
def test_complete_references_and_other_names_are_not_flagged(name: str) -> None:
    assert incomplete_reference(name) is None
