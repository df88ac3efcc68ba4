"""Entrypoints resolve as Prefect resolves them, and a wrong one gets a useful hint (issue #12)."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from tests.conftest import run_cli

FLOW = "from prefect import flow\n\n\n@flow\ndef main(n: int = 1):\n    return n\n"


def _repo(tmp_path: Path, entrypoint: str) -> Path:
    """A repository with its prefect.yaml kept in deploy/ and its flows in flows/."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "etl.py").write_text(FLOW)
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "prefect.yaml").write_text(f"deployments:\n- name: d\n  entrypoint: {entrypoint}\n")
    return tmp_path


@pytest.mark.parametrize("option", ["--prefect-file", "--file", "-f"])
def test_entrypoints_are_relative_to_the_working_directory(tmp_path: Path, option: str) -> None:
    root = _repo(tmp_path, "flows/etl.py:main")
    result = run_cli("deploy", option, "deploy/prefect.yaml", "--dry-run", cwd=root)
    assert result.code == 0, result.output
    assert "main/d: would create" in result.stdout
    # The project root is the working directory: the default pull step goes there, as in Prefect.
    assert f"directory: {root}" in result.stdout
    assert (f"entrypoints are resolved relative to the working directory {root}, as in Prefect (not to the "
            "directory of deploy/prefect.yaml)") in result.stderr


def test_the_files_directory_is_used_only_when_the_working_directory_finds_nothing(tmp_path: Path) -> None:
    root = _repo(tmp_path, "../flows/etl.py:main")
    result = run_cli("deploy", "--prefect-file", "deploy/prefect.yaml", "--dry-run", cwd=root)
    assert result.code == 0, result.output
    assert (f"warning: entrypoints are resolved relative to {root / 'deploy'} (the directory of "
            "deploy/prefect.yaml): none of them exists relative to the working directory, where Prefect looks "
            "for them") in result.stderr


@pytest.mark.parametrize("command", [("validate",), ("steps", "run", "pull"), ("ls-files",)])
def test_prefect_file_is_accepted_everywhere_a_file_is(tmp_path: Path, command: tuple[str, ...]) -> None:
    root = _repo(tmp_path, "flows/etl.py:main")
    result = run_cli(*command, "--prefect-file", "deploy/prefect.yaml", cwd=root)
    assert result.code == 0, result.output


@pytest.mark.parametrize(("written", "suggested"), [
    ("flows/ETL.py:main", "flows/etl.py:main"),
    ("Flows/etl.py:main", "flows/etl.py:main"),
    ("flows\\etl.py:main", "flows/etl.py:main"),
    ("flows.ETL:main", "flows/etl.py:main"),
    ("flows/etl:main", "flows/etl.py:main"),
])
def test_an_entrypoint_that_plainly_means_an_existing_file_gets_a_did_you_mean(
        tmp_path: Path, written: str, suggested: str) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "etl.py").write_text(FLOW)
    quoted = written.replace("'", "''")
    (tmp_path / "prefect.yaml").write_text(f"deployments:\n- name: d\n  entrypoint: '{quoted}'\n")
    result = run_cli("deploy", "--dry-run", cwd=tmp_path)
    assert result.code == 1, result.output
    assert f"does not exist (hint: did you mean '{suggested}'?)" in result.stderr


@pytest.mark.parametrize(("content", "expected"), [
    (codecs.BOM_UTF16_LE + FLOW.encode("utf-16-le"),
     "flow.py: the flow file is UTF-16 encoded; Python reads source files as UTF-8 (hint: save it as UTF-8"),
    (FLOW.encode("utf-16-le"), "flow.py: the flow file is UTF-16 encoded"),
    (b"type Count = int\n" + FLOW.encode(),
     "flow.py: cannot parse the flow file: line 1: invalid syntax; it uses a `type` alias, syntax of Python 3.12"),
    (b"def main[T](x: T):\n    return x\n", "type parameters (`def f[T]`), syntax of Python 3.12"),
    (b"x = 1\x00\n" + FLOW.encode(), "flow.py: cannot parse the flow file: source code string cannot contain "
     "null bytes"),
])
def test_a_flow_file_that_does_not_parse_says_why(tmp_path: Path, content: bytes, expected: str) -> None:
    import sys

    if "3.12" in expected and sys.version_info >= (3, 12):
        pytest.skip("this Python parses 3.12 syntax")
    (tmp_path / "flow.py").write_bytes(content)
    (tmp_path / "prefect.yaml").write_text("deployments:\n- name: d\n  entrypoint: flow.py:main\n")
    result = run_cli("deploy", "--dry-run", cwd=tmp_path)
    assert result.code == 1, result.output
    assert expected in result.stderr
    assert "None" not in result.stderr
    assert "internal error" not in result.output
