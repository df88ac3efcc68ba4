"""The ignore engine is checked file by file against real ``git check-ignore`` on generated trees."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from flowdeck.ignore import IgnoreSpec

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

# Each row: the ignore file, and why it is here (the rule it exercises).
CASES = [
    (["*.pyc", "__pycache__/"], "plain globs and a directory-only rule"),
    (["build/", "!build/keep.txt"], "git cannot re-include a file under an excluded directory (Prefect can)"),
    (["*", "!a/b/c/file.py"], "Prefect's test_negation_includes_nested_parent_dirs: git excludes it"),
    (["*", "!*/", "!*.py"], "the git idiom for 'only .py files'"),
    (["*.txt", "!dir/"], "a directory negation does not re-include its files"),
    (["/top.txt", "sub/*.py", "**/deep", "a/**/z.txt"], "anchoring, middle slash and double stars"),
    (["docs/*", "!docs/keep/"], "`dir/*` excludes children; a negated child directory comes back"),
    (["foo/**", "!foo/x/"], "`foo/**` matches everything inside foo, not foo itself"),
    (
        ["#comment", "", "  spaced.txt", "trail.txt   ", "\\#hash.txt", "\\!bang.txt"],
        "comments, blanks, escapes",
    ),
    (["*.py[cod]", "?.md", "[ab]*.cfg"], "character classes and ?"),
    ([".prefectignore", ".git/", ".venv", "env/"], "Prefect's defaults"),
]

NAMES = [
    "a",
    "b",
    "dir",
    "sub",
    "docs",
    "foo",
    "build",
    "deep",
    "x",
    "keep",
    "c",
    "env",
    ".venv",
    "__pycache__",
]
FILES = [
    "file.py",
    "x.pyc",
    "top.txt",
    "keep.txt",
    "z.txt",
    "n.md",
    "ab.md",
    "a.cfg",
    "c.cfg",
    "deep",
    "spaced.txt",
    "  spaced.txt",
    "trail.txt",
    "#hash.txt",
    "!bang.txt",
    "mod.pyo",
    ".prefectignore",
]


def _tree(root: Path, seed: int) -> list[tuple[str, bool]]:
    rng = random.Random(seed)
    paths: set[tuple[str, bool]] = set()
    for _ in range(120):
        depth = rng.randint(0, 3)
        dirs = [rng.choice(NAMES) for _ in range(depth)]
        rel = "/".join([*dirs, rng.choice(FILES)])
        target = root / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                continue
            target.write_text("x")
        except (FileExistsError, NotADirectoryError):
            continue
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel == ".git" or rel.startswith(".git/") or rel == ".gitignore":
            continue
        paths.add((rel, path.is_dir()))
    return sorted(paths)


def _git_verdicts(root: Path, paths: list[str]) -> dict[str, str]:
    """path -> 'source:line:pattern' of the deciding rule (git prints '::' when none)."""
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "-v", "-n", "--stdin", "-z"],
        cwd=root,
        input="\0".join(paths) + "\0",
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    fields = proc.stdout.split("\0")
    out = {}
    for i in range(0, len(fields) - 1, 4):
        source, line, pattern, path = fields[i : i + 4]
        out[path] = f"{line}:{pattern}" if source else ""
    return out


@pytest.mark.parametrize(("lines", "why"), CASES, ids=[c[1] for c in CASES])
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.filterwarnings("ignore::flowdeck.errors.FlowdeckWarning")  # the leading-space line warns
def test_same_verdict_as_git_check_ignore(tmp_path: Path, lines: list[str], why: str, seed: int) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / ".gitignore").write_text("\n".join(lines) + "\n")
    entries = _tree(root, seed)
    git = _git_verdicts(root, [p for p, _ in entries])
    spec = IgnoreSpec.from_lines(lines, source=".gitignore")
    for rel, is_dir in entries:
        rule = spec.match(rel, is_dir)
        ours = f"{rule.line}:{rule.pattern}" if rule else ""
        assert ours == git[rel], f"{rel} (dir={is_dir}): git says {git[rel]!r}, flowdeck {ours!r} [{why}]"
    # And the walk yields exactly the files git would not ignore.
    walked = {e.rel for e in spec.walk(root) if not e.rel.startswith(".git/")}
    expected = {
        p for p, d in entries if not d and not (git[p] and not git[p].split(":", 1)[1].startswith("!"))
    }
    assert walked - {".gitignore"} == expected


def test_rules_carry_file_and_line(tmp_path: Path) -> None:
    ignore = tmp_path / ".prefectignore"
    ignore.write_text("# comment\n\n*.log\n!keep.log\n")
    spec = IgnoreSpec.from_file(ignore, display=".prefectignore")
    assert str(spec.match("x/a.log")) == ".prefectignore:3:*.log"
    assert str(spec.match("keep.log")) == ".prefectignore:4:!keep.log"
    assert spec.match("a.py") is None


def test_missing_ignore_file_includes_everything(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("x")
    spec = IgnoreSpec.from_file(tmp_path / ".prefectignore")
    assert [e.rel for e in spec.walk(tmp_path)] == [".git/HEAD"]


def test_walk_skips_flowdecks_own_files_at_the_root(tmp_path: Path) -> None:
    for rel in (
        ".flowdeck-pull.json",
        ".flowdeck-manifest.json",
        ".flowdeck-pull-abc/x.py",
        "sub/.flowdeck-pull.json",
        "a.py",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    assert [e.rel for e in IgnoreSpec().walk(tmp_path)] == ["a.py", "sub/.flowdeck-pull.json"]
