"""Every step name Prefect accepts resolves to a flowdeck step (issue #12).

The table is checked against Prefect's own step modules: when a real Prefect is installed beside the repo
(``.prefect-venv``, see scripts/setup-dev) its sources are read with ``ast`` and every public function must
resolve; the integrations' public functions are listed from prefect-behaviour.md §3.8-3.11.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flowdeck.steps.aliases import resolve_name
from flowdeck.validation import validate_file
from tests.conftest import REPO_ROOT

_CANDIDATES = [REPO_ROOT / ".prefect-venv", REPO_ROOT.parent.parent / "main" / ".prefect-venv"]

# prefect-behaviour.md §3.8-3.11: the public functions of each integration's deployments/steps.py.
INTEGRATIONS = {
    "prefect_aws.deployments.steps": ("push_to_s3", "pull_from_s3"),
    "prefect_gcp.deployments.steps": ("push_to_gcs", "pull_from_gcs"),
    "prefect_azure.deployments.steps": ("push_to_azure_blob_storage", "pull_from_azure_blob_storage"),
    "prefect_docker.deployments.steps": ("build_docker_image", "push_docker_image"),
}
# Prefect's own modules as of 3.9.1 (checked against the installed sources when they are present).
CORE = {
    "prefect.deployments.steps": ("git_clone", "set_working_directory", "pull_from_remote_storage",
                                  "pull_with_block", "run_shell_script", "pip_install_requirements"),
    "prefect.deployments.steps.pull": ("set_working_directory", "agit_clone", "git_clone",
                                       "pull_from_remote_storage", "pull_with_block"),
    "prefect.deployments.steps.utility": ("run_shell_script", "pip_install_requirements"),
}
# Public functions of the step modules that are machinery, not steps.
NOT_STEPS = {"run_step", "run_steps"}


def _names() -> list[str]:
    names = [f"{module}.{fn}" for table in (CORE, INTEGRATIONS) for module, fns in table.items() for fn in fns]
    names += [f"{module}:{fn}" for module, fns in CORE.items() for fn in fns]
    return names


@pytest.mark.parametrize("name", _names())
def test_every_prefect_step_name_resolves(name: str) -> None:
    resolution = resolve_name(name)
    assert resolution.builtin, name
    short = name.replace(":", ".").rsplit(".", 1)[-1]
    assert resolution.canonical.rsplit(".", 1)[-1] == {"agit_clone": "git_clone"}.get(short, short)


@pytest.mark.parametrize("name", ["prefect.deployments.steps.pull.agit_clone",
                                  "prefect.deployments.steps:git_clone"])
def test_validate_accepts_the_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text(f"pull:\n- {name}:\n    repository: https://h/r.git\n"
                    "deployments:\n- name: d\n  entrypoint: f.py:f\n")
    assert validate_file(path, env={}).errors() == []


def _public_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    for node in tree.body:  # re-exports in __init__.py
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            found.update(a.asname or a.name for a in node.names)
    return {n for n in found if not n.startswith("_")} - NOT_STEPS


def test_the_table_covers_the_installed_prefect() -> None:
    roots = [p for c in _CANDIDATES for p in c.glob("lib/python3*/site-packages/prefect/deployments/steps")]
    if not roots:
        pytest.skip("no real Prefect installed in .prefect-venv")
    steps_dir = roots[0]
    for module, filename in (("prefect.deployments.steps", "__init__.py"),
                             ("prefect.deployments.steps.pull", "pull.py"),
                             ("prefect.deployments.steps.utility", "utility.py")):
        public = _public_functions(steps_dir / filename)
        assert public == set(CORE[module]), (module, public)
        for fn in public:
            assert resolve_name(f"{module}.{fn}").builtin, f"{module}.{fn}"
