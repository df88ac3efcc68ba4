"""Never upload less than Prefect would (issue #12), and bad lines warn instead of crashing (issue #13).

Prefect's recorded behaviour (prefect-behaviour.md §3.7): ``filter_files`` judges each path on its own with
pathspec's GitIgnoreSpec, so ``["*", "!a/b/c/file.py"]`` uploads ``a/b/c/file.py``; S3 strips each line, GCS
and Azure do not. When a real Prefect is installed (``.prefect-venv``), its ``filter_files`` is run too.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import pytest

from flowdeck.errors import FlowdeckWarning
from flowdeck.ignore import IgnoreSpec
from tests.conftest import REPO_ROOT, run_cli, write_tree

TREE = {
    "a/b/c/file.py": "x", "a/b/c/other.py": "x", "a/top.py": "x", "build/keep.txt": "x", "build/drop.txt": "x",
    "testdir1/x/deep.txt": "x", "testdir1/y.txt": "x", "main.py": "x", "logs/run.log": "x",
}
# (lines, files Prefect uploads) from Prefect's own tests and the reference.
CASES = [
    (["*", "!a/b/c/file.py"], {"a/b/c/file.py"}),  # test_negation_includes_nested_parent_dirs
    (["build/", "!build/keep.txt"], set(TREE) - {"build/drop.txt"}),
    (["testdir1/*"], set(TREE) - {"testdir1/x/deep.txt", "testdir1/y.txt"}),
    (["logs/", "!*.log"], set(TREE)),
]


def _walk(root: Path, lines: list[str]) -> tuple[set[str], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        walked = {e.rel for e in IgnoreSpec.from_lines(lines).walk(root)}
    return walked, [str(w.message) for w in caught if issubclass(w.category, FlowdeckWarning)]


@pytest.mark.parametrize(("lines", "prefect"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_every_file_prefect_uploads_is_uploaded(tmp_path: Path, lines: list[str], prefect: set[str]) -> None:
    write_tree(tmp_path, TREE)
    walked, _ = _walk(tmp_path, lines)
    assert prefect <= walked, prefect - walked


def test_a_negation_under_an_excluded_directory_warns_at_the_patterns_line(tmp_path: Path) -> None:
    write_tree(tmp_path, TREE)
    walked, messages = _walk(tmp_path, ["build/", "!build/keep.txt"])
    assert "build/keep.txt" in walked and "build/drop.txt" not in walked
    assert messages == [
        ".prefectignore:2:1: build/keep.txt is uploaded: Prefect re-includes it by `!build/keep.txt`, although "
        "git's rule (an excluded parent directory, or a later pattern) would leave it out (hint: flowdeck "
        "uploads what either rule keeps; `flowdeck check-ignore PATH` shows both)"]


def test_leading_spaces_keep_the_file_and_warn(tmp_path: Path) -> None:
    write_tree(tmp_path, TREE)
    walked, messages = _walk(tmp_path, ["  build/", "  !build/drop.txt"])
    assert {"build/keep.txt", "build/drop.txt"} <= walked  # GCS and Azure (and git) read the spaces literally
    assert messages[0] == (
        ".prefectignore:1:1: ignore pattern '  build/' starts with spaces: Prefect's S3 step strips them (and "
        "reads 'build/'), its GCS and Azure steps and git do not (hint: flowdeck uploads a file when either "
        "reading keeps it; remove the spaces to mean 'build/' everywhere)")


def test_check_ignore_explains_both_rules(tmp_path: Path) -> None:
    write_tree(tmp_path, {**TREE, ".prefectignore": "  main.py\n"})
    result = run_cli("check-ignore", "main.py", cwd=tmp_path)
    assert result.stdout == ("main.py: included (uploaded because one rule keeps it) - git: included (no rule); "
                             "Prefect's S3 step: excluded by .prefectignore:1:main.py\n")


BAD_LINES = "*.log\n!\n\\\n[z-a]*\n"


@pytest.mark.parametrize("command", [("ls-files",), ("check-ignore", "main.py"), ("steps", "run", "push"),
                                     ("deploy", "--dry-run")])
def test_invalid_lines_are_located_warnings_not_a_crash(tmp_path: Path, command: tuple[str, ...]) -> None:
    write_tree(tmp_path, {**TREE, ".prefectignore": BAD_LINES,
                          "flow.py": "def main():\n    pass\n",
                          "prefect.yaml": "deployments:\n- name: d\n  entrypoint: flow.py:main\n"})
    result = run_cli(*command, cwd=tmp_path)
    assert result.code in (0, 1), result.output
    assert "internal error" not in result.output
    for line, pattern in ((2, "'!'"), (3, "'\\\\'"), (4, "'[z-a]*'")):
        if command[0] in ("ls-files", "check-ignore", "deploy"):
            assert f".prefectignore:{line}:1: ignore pattern {pattern} is not valid" in result.stderr, result.stderr


def _prefect_python() -> Path | None:
    for venv in (REPO_ROOT / ".prefect-venv", REPO_ROOT.parent.parent / "main" / ".prefect-venv"):
        if (venv / "bin" / "python").exists():
            return venv / "bin" / "python"
    return None


@pytest.mark.parametrize(("lines", "prefect"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_against_the_real_prefect(tmp_path: Path, lines: list[str], prefect: set[str]) -> None:
    python = _prefect_python()
    if python is None:
        pytest.skip("no real Prefect installed in .prefect-venv")
    write_tree(tmp_path, TREE)
    code = ("import json, sys\nfrom prefect.utilities.filesystem import filter_files\n"
            "print(json.dumps(sorted(filter_files('.', json.loads(sys.argv[1]), include_dirs=False))))")
    proc = subprocess.run([str(python), "-c", code, json.dumps(lines)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=True)
    real = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert real == prefect
    walked, _ = _walk(tmp_path, lines)
    assert real <= walked
