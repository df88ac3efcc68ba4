"""Every real prefect.yaml in ../shared/corpus: validate and deploy --dry-run end with 0 or 1, never a traceback;
validate's errors are located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli

# ../shared/corpus from the main checkout; ../../shared/corpus from a worktree under wt/.
CORPUS = next((c for c in (REPO_ROOT.parent / "shared" / "corpus", REPO_ROOT.parent.parent / "shared" / "corpus")
               if c.is_dir()), REPO_ROOT.parent / "shared" / "corpus")
FILES = sorted(p for p in CORPUS.glob("*.y*ml")) if CORPUS.is_dir() else []

# Files Prefect itself would deploy, minus the ones with genuine mistakes named below.
GENUINE_MISTAKES = {
    "029": "a tag that is a list",
    "049": "unquoted template is YAML flow mapping",
    "063": "duplicate keys: a second deployment without '- '",
    "065": "deployments is a mapping",
    "087": "{{ build-image.image }} but the id is build_image",
    "093": "YAML indentation error",
    "105": "step arguments not indented; a misspelled step name",
    "117": "version: 1.0 is a float",
    "125": "schedule is a list",
    "127": "version: 1.0 is a float",
    "135": "YAML syntax error",
    "161": "duplicate top-level build key",
    "175": "pip_install is not a Prefect step",
    "183": "step argument not indented",
    "223": "a pull mapping that is not a step",
    "225": "YAML syntax error",
    "243": "not YAML (a Python file)",
    "247": "a build mapping that is not a step",
    "271": "a cookiecutter template, not a config",
    "277": "an Ansible task list",
    "291": "step arguments not indented; image from a build step that does not exist",
    "303": "duplicate schedules key",
    "309": "schedule is a string",
    "311": "{{ build-image.image }} but the id is build_image",
}


# Files Prefect reads but would not deploy for a reason visible in the file alone (validate reports those since
# issue #12: no deployments, a deployment without a name or an entrypoint, one flow/name twice).
NOT_DEPLOYABLE: dict[str, str] = {
    "019": "the init template was never filled in: a deployment without a name or an entrypoint",
    "059": "no deployments (Prefect 2.10's layout; its deployment.yaml is not in the corpus)",
    "073": "no deployments (Prefect 2.10's layout; its deployment.yaml is not in the corpus)",
    "075": "no deployments (Prefect 2.10's layout; its deployment.yaml is not in the corpus)",
    "077": "no deployments (Prefect 2.10's layout; its deployment.yaml is not in the corpus)",
    "091": "five deployments without an entrypoint",
    "123": "no deployments (a Kubernetes manifest, not a prefect.yaml)",
    "131": "no deployments (Prefect 2.10's layout; its deployment.yaml is not in the corpus)",
    "165": "no deployments (Prefect 2.10's layout; its deployment.yaml is not in the corpus)",
    "173": "no deployments (Prefect 2.10's layout; its deployment.yaml is not in the corpus)",
    "209": "the init template was never filled in: a deployment without a name or an entrypoint",
    "229": "no deployments (only a pull section)",
    "255": "no deployments (a docker-compose file, not a prefect.yaml)",
    "261": "the init template was never filled in: a deployment without a name or an entrypoint",
    "279": "no deployments (Prefect 2.10's layout; its deployment.yaml is not in the corpus)",
    "315": "no deployments (Prefect 2.10's layout; its deployment.yaml is not in the corpus)",
}


def test_the_corpus_is_there() -> None:
    if not FILES:
        pytest.skip("../shared/corpus is not present")
    assert len(FILES) > 100


@pytest.mark.parametrize("path", FILES, ids=[p.name[:40] for p in FILES])
def test_validate_never_crashes_and_locates_every_error(path: Path, tmp_path: Path) -> None:
    # Run from an empty directory: it is the project root (as in Prefect), so nothing else is hashed.
    result = run_cli("validate", "--json", "--file", str(path), cwd=tmp_path)
    assert result.code in (0, 1), result.stderr
    assert "Traceback" not in result.output
    report = json.loads(result.stdout)
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert all(isinstance(p["line"], int) and p["line"] >= 1 for p in errors), errors
    prefix = path.name.split("__", 1)[0]
    if prefix in GENUINE_MISTAKES or prefix in NOT_DEPLOYABLE:
        reason = GENUINE_MISTAKES.get(prefix) or NOT_DEPLOYABLE[prefix]
        assert result.code == 1, f"expected an error: {reason}"
    else:
        assert result.code == 0, errors


@pytest.mark.parametrize("path", FILES, ids=[p.name[:40] for p in FILES])
def test_deploy_dry_run_never_crashes(path: Path, tmp_path: Path) -> None:
    result = run_cli("deploy", "--dry-run", "--all", "--file", str(path), cwd=tmp_path)
    assert result.code in (0, 1), result.output
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
