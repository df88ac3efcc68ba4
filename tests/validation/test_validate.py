"""flowdeck validate: each rule, with the whole message a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.validation import validate_file


def _messages(tmp_path: Path, text: str, env: dict[str, str] | None = None, strict: bool = False) -> list[str]:
    path = tmp_path / "prefect.yaml"
    path.write_text(text)
    report = validate_file(path, env=env or {}, strict=strict)
    prefix = str(path)
    return [f"{p.severity}: {str(p).replace(prefix, 'prefect.yaml')}" for p in report.sorted()]


CASES = [
    (
        "misspelled step argument gets a did-you-mean",
        "pull:\n- prefect.deployments.steps.git_clone:\n    repository: https://h/r.git\n    comit_sha: abc\n",
        ["error: prefect.yaml:4:5: pull[0].prefect.deployments.steps.git_clone.comit_sha: git_clone has no "
         "argument 'comit_sha' (hint: did you mean 'commit_sha'?)"],
    ),
    (
        "missing required argument",
        "pull:\n- prefect.deployments.steps.git_clone:\n    branch: main\n",
        ["error: prefect.yaml:3:5: pull[0].prefect.deployments.steps.git_clone: git_clone is missing its "
         "required argument 'repository' (hint: add `repository: ...` indented under "
         "`prefect.deployments.steps.git_clone:`)"],
    ),
    (
        "arguments at the step's level",
        "pull:\n- prefect.deployments.steps.set_working_directory:\n  directory: /opt\n",
        ["error: prefect.yaml:2:3: pull[0]: this step has 2 keys (prefect.deployments.steps.set_working_directory, "
         "directory) but a step has exactly one (hint: indent directory under "
         "`prefect.deployments.steps.set_working_directory:` (two more spaces) so they become its arguments)"],
    ),
    (
        "unknown Prefect step with a close match",
        "pull:\n- prefect.deployments.steps.pip_install_requiements:\n    directory: x\n",
        ["error: prefect.yaml:2:3: pull[0]: 'prefect.deployments.steps.pip_install_requiements' is not a step "
         "flowdeck knows (hint: did you mean 'prefect.deployments.steps.pip_install_requirements'?)"],
    ),
    (
        "unknown module step",
        "build:\n- no_such_pkg_xyz.steps.tag_release:\n    x: 1\n",
        ["error: prefect.yaml:2:3: build[0]: 'no_such_pkg_xyz.steps.tag_release' is not a built-in step and "
         "cannot be imported (hint: run `flowdeck steps list` to see the built-in steps)"],
    ),
    (
        "reference to a misspelled step id",
        "build:\n- prefect.deployments.steps.run_shell_script:\n    id: build_image\n    script: echo\n"
        "deployments:\n- name: d\n  entrypoint: f.py:f\n  work_pool:\n    name: p\n"
        "    job_variables:\n      image: '{{ build-image.stdout }}'\n",
        ["error: prefect.yaml:11:14: deployments[0].work_pool.job_variables.image: '{{ build-image.stdout }}' "
         "does not name an output of an earlier step (build or push) (hint: did you mean 'build_image'?)"],
    ),
    (
        "reference to a step that runs later (Prefect's gcs recipe typo)",
        "push:\n- prefect_gcp.deployments.steps.push_to_gcs:\n    id: push_code\n    bucket: b\n    folder: f\n"
        "pull:\n- prefect_gcp.deployments.steps.pull_from_gcs:\n    id: pull_code\n"
        "    bucket: '{{ push_code.bucket }}'\n    folder: '{{ pull_code.folder }}'\n",
        ["error: prefect.yaml:10:13: pull[0].prefect_gcp.deployments.steps.pull_from_gcs.folder: "
         "'{{ pull_code.folder }}' uses this step's own id; a step can only use outputs of earlier steps "
         "(hint: did you mean 'push_code'?)"],
    ),
    (
        "reference to a step that runs later",
        "pull:\n- prefect.deployments.steps.set_working_directory:\n    directory: '{{ clone.directory }}'\n"
        "- prefect.deployments.steps.git_clone:\n    id: clone\n    repository: https://h/r.git\n",
        ["error: prefect.yaml:3:16: pull[0].prefect.deployments.steps.set_working_directory.directory: "
         "'{{ clone.directory }}' uses step 'clone', which runs later (pull[1]) (hint: a step can only use the "
         "outputs of steps that run before it)"],
    ),
    (
        "output a built-in step does not have",
        "push:\n- prefect_aws.deployments.steps.push_to_s3:\n    id: push_code\n    bucket: b\n    folder: f\n"
        "pull:\n- prefect_aws.deployments.steps.pull_from_s3:\n    bucket: '{{ push_code.bucket }}'\n"
        "    folder: '{{ push_code.prefix }}'\n",
        ["error: prefect.yaml:9:13: pull[0].prefect_aws.deployments.steps.pull_from_s3.folder: step 'push_code' "
         "(push_to_s3) has no output 'prefix' (hint: its outputs are: bucket, folder, snapshot)"],
    ),
    (
        "unknown deployment key with a suggestion",
        "deployments:\n- name: d\n  entrypoint: f.py:f\n  pool: p\n",
        ["warning: prefect.yaml:4:3: deployments[0].pool: unknown deployment key 'pool' is ignored "
         "(hint: did you mean 'work_pool'?)"],
    ),
    (
        "a float version must be quoted",
        "deployments:\n- name: d\n  version: 1.0\n  entrypoint: f.py:f\n",
        ["error: prefect.yaml:3:12: deployments[0].version: must be a string (or empty), not a number "
         "(hint: quote it: version: \"1.0\")"],
    ),
    (
        "deployments must be a list",
        "deployments:\n  name: d\n",
        ["error: prefect.yaml:2:3: deployments: must be a list (or empty), not a mapping (hint: start each "
         "deployment with `- name: ...` so that `deployments` is a list)"],
    ),
    (
        "a schedule with two kinds",
        "deployments:\n- name: d\n  entrypoint: f.py:f\n  schedules:\n  - cron: '* * * * *'\n    interval: 60\n",
        ["error: prefect.yaml:5:5: deployments[0].schedules[0]: a schedule takes one of cron, interval or rrule, "
         "not cron and interval (hint: split it into two schedules under `schedules:`)"],
    ),
    (
        "legacy step names still work but warn",
        "pull:\n- prefect.projects.steps.git_clone_project:\n    repository: https://h/r.git\n",
        ["warning: prefect.yaml:2:3: pull[0]: 'prefect.projects.steps.git_clone_project' is a legacy Prefect step "
         "name (hint: use 'prefect.deployments.steps.git_clone' (both work in flowdeck))"],
    ),
    (
        "an unset environment variable in a push step warns",
        "push:\n- prefect.deployments.steps.run_shell_script:\n    script: echo {{ $NOT_SET_X }}\n",
        ["warning: prefect.yaml:3:13: push[0].prefect.deployments.steps.run_shell_script.script: environment "
         "variable NOT_SET_X is not set; '{{ $NOT_SET_X }}' will resolve to \"\" (hint: export NOT_SET_X=... "
         "before deploying, or use `{{ $NOT_SET_X | default('...') }}`)"],
    ),
    (
        "module-path entrypoints are accepted; a bare name is not",
        "deployments:\n- name: a\n  entrypoint: pkg.flows.etl\n- name: b\n  entrypoint: etl\n",
        ["error: prefect.yaml:5:15: deployments[1].entrypoint: entrypoint 'etl' does not name a function "
         "(hint: write it as `path/to/file.py:function_name` or `package.module:function_name`)"],
    ),
]


@pytest.mark.parametrize(("rule", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rules(tmp_path: Path, rule: str, text: str, expected: list[str]) -> None:
    assert _messages(tmp_path, text) == expected


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = (
        "pull:\n- prefect.deployments.steps.git_clone:\n    repo: x\n"
        "deployments:\n- name: d\n  entrypoint: f.py:f\n  pool: p\n  version: 2.0\n"
    )
    messages = _messages(tmp_path, text)
    assert len(messages) == 4
    assert [m.split(": ")[1].split(":")[1] for m in messages] == ["3", "3", "7", "8"]


def test_valid_files_and_prefect_features(tmp_path: Path) -> None:
    text = (
        "prefect-version: 2.14\n"
        "definitions:\n  work_pools:\n    pool: &pool\n      name: p\n      job_variables:\n"
        "        image: '{{ build_image.image }}'\n"
        "build:\n  prefect_docker.deployments.steps.build_docker_image:\n    id: build_image\n"
        "    image_name: x\n    tag: latest\n    dockerfile: auto\n"
        "pull:\n- prefect.deployments.steps.git_clone:\n    id: clone\n    repository: https://h/r.git\n"
        "- prefect.deployments.steps.pip_install_requirements:\n    directory: '{{ clone.directory }}'\n"
        "deployments:\n- name: d\n  entrypoint: f.py:f\n  work_pool: *pool\n  tags: ['{{ $ENV_X }}']\n"
        "  schedule: {}\n  parameters:\n    n: '{{ prefect.variables.n }}'\n    when: '{{ ctx.flow_run.id }}'\n"
    )
    assert _messages(tmp_path, text, env={"ENV_X": "1"}) == []


def test_strict_turns_warnings_into_errors(tmp_path: Path) -> None:
    text = "deployments:\n- name: d\n  entrypoint: f.py:f\n  pool: p\n"
    assert _messages(tmp_path, text, strict=True)[0].startswith("error: ")


def test_an_expression_that_does_not_parse_is_a_located_error(tmp_path: Path) -> None:
    text = "build:\n- prefect.deployments.steps.run_shell_script:\n    script: \"echo {{ $A | default('x' }}\"\n"
    (message,) = _messages(tmp_path, text)
    assert message.startswith("error: prefect.yaml:3:13: build[0].prefect.deployments.steps.run_shell_script.script: ")
