"""``flowdeck ls-files`` and ``flowdeck check-ignore``, run as a user would."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli, write_tree

PREFECT_YAML = """\
push:
- prefect_aws.deployments.steps.push_to_s3:
    bucket: b
    folder: f
deployments:
- name: everything
  push:
  - prefect_gcp.deployments.steps.push_to_gcs:
      bucket: b
      folder: f
      ignore_file: null
- name: custom
  push:
  - prefect_azure.deployments.steps.push_to_azure_blob_storage:
      container: c
      folder: f
      credentials: {}
      ignore_file: .deployignore
"""


def _project(root: Path) -> Path:
    return write_tree(
        root,
        {
            ".prefectignore": "build/\n!build/keep.txt\n*.log\n",
            ".deployignore": "*.py\n",
            "a.py": "print(1)\n",
            "pkg/b.log": "log\n",
            "build/keep.txt": "kept?\n",
            "prefect.yaml": PREFECT_YAML,
        },
    )


def test_ls_files_lists_what_a_push_would_upload(tmp_path: Path) -> None:
    root = _project(tmp_path)
    result = run_cli("ls-files", cwd=root)
    assert result.code == 0, result.stderr
    # build/keep.txt: git would not re-include a file under an excluded directory, Prefect does; flowdeck
    # uploads what either keeps, and says so at the pattern's line.
    assert result.stdout.splitlines() == [".deployignore", ".prefectignore", "a.py", "build/keep.txt",
                                          "prefect.yaml"]
    assert result.stderr.splitlines() == [
        "warning: .prefectignore:2:1: build/keep.txt is uploaded: Prefect re-includes it by `!build/keep.txt`, "
        "although git's rule (an excluded parent directory, or a later pattern) would leave it out (hint: "
        "flowdeck uploads what either rule keeps; `flowdeck check-ignore PATH` shows both)",
        "5 files, 447 B"]


def test_ls_files_uses_the_deployments_push_step(tmp_path: Path) -> None:
    root = _project(tmp_path)
    everything = run_cli("ls-files", "--deployment", "everything", cwd=root)
    assert everything.stdout.splitlines() == [
        ".deployignore",
        ".prefectignore",
        "a.py",
        "build/keep.txt",
        "pkg/b.log",
        "prefect.yaml",
    ]
    custom = run_cli("ls-files", "--deployment", "custom", cwd=root)
    assert custom.stdout.splitlines() == [
        ".deployignore",
        ".prefectignore",
        "build/keep.txt",
        "pkg/b.log",
        "prefect.yaml",
    ]
    missing = run_cli("ls-files", "--deployment", "nope", cwd=root)
    assert missing.code == 1
    assert (
        missing.stderr.strip()
        == "error: no deployment named 'nope' in prefect.yaml (hint: the deployments are: everything, custom)"
    )


def test_check_ignore_names_the_rule(tmp_path: Path) -> None:
    root = _project(tmp_path)
    result = run_cli("check-ignore", "build/keep.txt", "a.py", "pkg/b.log", cwd=root)
    assert result.code == 0
    assert result.stdout.splitlines() == [
        "build/keep.txt: included (uploaded because one rule keeps it) - git: excluded by "
        ".prefectignore:1:build/; Prefect: included by .prefectignore:2:!build/keep.txt",
        "a.py: included (no rule)",
        "pkg/b.log: excluded by .prefectignore:3:*.log",
    ]
    porcelain = run_cli("check-ignore", "--porcelain", "a.py", "build/keep.txt", cwd=root)
    assert porcelain.code == 1
    assert porcelain.stdout == "::\ta.py\n.prefectignore:2:!build/keep.txt\tbuild/keep.txt\n"
    nothing = run_cli("check-ignore", "a.py", cwd=root)
    assert nothing.code == 1
