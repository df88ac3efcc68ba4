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
    ("deployments:\n- name: d\n  flow_name: etl\n  entrypoint: a.py:one\n- name: d\n  flow_name: etl\n"
     "  entrypoint: b.py:two\n", "prefect.yaml:5:9: error: deployments[1].name: deployment 'etl/d' is defined twice"),
])
def test_validate_fails_on_what_deploy_would_reject(tmp_path: Path, text: str, expected: str) -> None:
    code, stderr = _validate_cli(tmp_path, text)
    assert code == 1, stderr
    assert expected in stderr


def test_same_name_for_two_flows_is_only_a_warning(tmp_path: Path) -> None:
    # Same function name in two files: the flows' names come from their decorators, only deploy can tell.
    code, stderr = _validate_cli(tmp_path, "deployments:\n- name: d\n  entrypoint: a/flow.py:main\n"
                                           "- name: d\n  entrypoint: b/flow.py:main\n")
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


def test_prefect2_keys_get_named_warnings_with_the_prefect3_spelling(tmp_path: Path) -> None:
    text = ("deployments:\n- name: d\n  entrypoint: f.py:f\n  is_schedule_active: false\n"
            "  infra_overrides: {env: {A: '1'}}\n  schedule: {}\n  schedules:\n  - cron: '0 * * * *'\n"
            "    max_active_runs: 1\n    catchup: false\n")
    assert _report(tmp_path, text) == [
        "warning: prefect.yaml:4:3: deployments[0].is_schedule_active: 'is_schedule_active' is a Prefect 2 "
        "deployment key; Prefect 3 ignores it (hint: write `active: false` on each schedule under `schedules:` "
        "(or `paused: true` for the whole deployment))",
        "warning: prefect.yaml:5:3: deployments[0].infra_overrides: 'infra_overrides' is a Prefect 2 deployment "
        "key; Prefect 3 ignores it (hint: write `work_pool: {job_variables: {...}}`)",
        "warning: prefect.yaml:6:3: deployments[0].schedule: the singular `schedule` (Prefect 2) is ignored beside "
        "`schedules` (hint: remove `schedule:`; put every schedule in the `schedules:` list)",
        "warning: prefect.yaml:9:5: deployments[0].schedules[0].max_active_runs: 'max_active_runs' is a Prefect 2 "
        "schedule key; Prefect 3 rejects it (and then skips the whole file) (hint: write `concurrency_limit: N` "
        "on the deployment)",
        "warning: prefect.yaml:10:5: deployments[0].schedules[0].catchup: 'catchup' is a Prefect 2 schedule key; "
        "Prefect 3 rejects it (and then skips the whole file) (hint: remove it: Prefect 3 schedules have no "
        "catch-up)",
    ]


def test_did_you_mean_suggests_only_near_misses(tmp_path: Path) -> None:
    text = "description: my flows\ndeployments:\n- name: d\n  entrypoint: f.py:f\n  decription: x\n"
    messages = _report(tmp_path, text)
    assert "definitions" not in "\n".join(messages)
    assert messages == [
        "warning: prefect.yaml:1:1: description: a top-level `description` is ignored (Prefect's recipes use it "
        "as recipe metadata) (hint: a deployment's description goes under its entry in `deployments:`)",
        "warning: prefect.yaml:5:3: deployments[0].decription: unknown deployment key 'decription' is ignored "
        "(hint: did you mean 'description'?)",
    ]


def test_a_deployment_written_at_the_top_level_says_how_to_move_it(tmp_path: Path) -> None:
    text = "name: proj\nflow_name: etl\nentrypoint: f.py:f\n"
    (message,) = _report(tmp_path, text)
    assert message == (
        "warning: prefect.yaml:2:1: flow_name: `flow_name`, `entrypoint` at the top level belong to a deployment; "
        "Prefect ignores them here (hint: move the deployment under `deployments:` as a list item: write "
        "`deployments:`, then `- name: ...` and indent `flow_name`, `entrypoint` under it)")


def test_a_run_time_name_points_to_ctx(tmp_path: Path) -> None:
    text = ("deployments:\n- name: d\n  entrypoint: f.py:f\n  work_pool:\n    name: p\n    job_variables:\n"
            "      name: 'run-{{ flow_run.name }}'\n")
    (message,) = _report(tmp_path, text)
    assert message == (
        "error: prefect.yaml:7:13: deployments[0].work_pool.job_variables.name: '{{ flow_run.name }}' is a "
        "run-time value, which Prefect only fills in as `ctx.flow_run.name` (hint: write "
        "'{{ ctx.flow_run.name }}')")
    assert "id:" not in message


def test_prefect_2_10_layout_reads_deployment_yaml_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text("def main(n: int = 1):\n    return n\n")
    (tmp_path / "prefect.yaml").write_text(
        "name: proj\nbuild: null\npush: null\npull:\n- prefect.deployments.steps.set_working_directory:\n"
        "    directory: /opt/proj\n")
    (tmp_path / "deployment.yaml").write_text(
        "deployments:\n- name: nightly\n  entrypoint: flow.py:main\n  parameters:\n    m: 1\n")
    result = run_cli("validate", cwd=tmp_path)
    assert result.code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "deployment.yaml:1:1: warning: deployments: the deployments are read from deployment.yaml, as Prefect 2.10 "
        "did; Prefect 3 ignores that file (hint: merge it into prefect.yaml: copy its `deployments:` list to the "
        "end of prefect.yaml, then delete deployment.yaml)")
    deployed = run_cli("deploy", "--dry-run", cwd=tmp_path)
    # Located in deployment.yaml, where the deployment is written.
    assert deployed.code == 1, deployed.output
    assert ("deployment.yaml:5:5: deployments[0].parameters.m: flow function 'main' has no parameter 'm'"
            in deployed.stderr), deployed.stderr
    (tmp_path / "deployment.yaml").write_text("name: nightly\nentrypoint: flow.py:main\n")
    deployed = run_cli("deploy", "--dry-run", cwd=tmp_path)
    assert deployed.code == 0, deployed.output
    assert "main/nightly: would create" in deployed.stdout
    assert "directory: /opt/proj" in deployed.stdout
    assert "as one `- name: ...` item under `deployments:`" in deployed.stderr


def test_comparing_duplicate_values_stays_fast_with_exponential_aliases() -> None:
    import time

    lines = ["a0: &a0 [x, x]", "b0: &b0 [x, x]"]
    for i in range(1, 40):
        lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]", f"b{i}: &b{i} [*b{i - 1}, *b{i - 1}]"]
    text = "definitions:\n" + "".join(f"  {line}\n" for line in lines) + "dup: *a39\ndup: *b39\n"
    import yaml

    from flowdeck.source import _check_duplicates

    # Only the duplicate check (expanding the data itself is bounded elsewhere, issue #13).
    started = time.monotonic()
    problems = _check_duplicates(yaml.compose(text, Loader=yaml.SafeLoader), "prefect.yaml")
    assert time.monotonic() - started < 5
    assert [p.code for p in problems] == ["duplicate-key-same"]
