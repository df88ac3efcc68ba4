"""Fuzzing the commands that read a prefect.yaml: no traceback, no exit code outside 0/1/2, no hang.

Mutants of the real files in ../shared/corpus (a fixed seed, so every run tries the same inputs): byte
flips, deletions, duplicated lines, truncation, and injected hostile constructs (control characters,
alias bombs, recursive aliases, deep nesting, huge integers, unclosed quotes and brackets, incomplete
references, tabs, invalid UTF-8). Most mutants run through ``flowdeck.cli.main`` in two worker processes
(cheap); a smaller sample runs as real ``python -m flowdeck`` subprocesses. A run that takes longer than
:data:`HANG_SECONDS` counts as a hang (that is the only use of time here: no wall time is asserted).

Reproduce one failure: the assertion names the corpus file and the mutation seed; ``_mutant(path, seed)``
rebuilds the exact bytes.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli

# In CI the corpus sits beside the repository; in a git worktree under wt/ one level further up.
CORPUS = next((d for d in (REPO_ROOT.parent / "shared" / "corpus", REPO_ROOT.parent.parent / "shared" / "corpus")
               if d.is_dir()), REPO_ROOT.parent / "shared" / "corpus")
FILES = sorted(p for p in CORPUS.glob("*.y*ml")) if CORPUS.is_dir() else []

SEED = 1313
IN_PROCESS_MUTANTS = 160  # x 3 commands, in 2 worker processes
SUBPROCESS_MUTANTS = 16  # x 3 commands, one CLI process each
HANG_SECONDS = 20

# --------------------------------------------------------------------------------------------- mutations


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _indent_of(line: bytes) -> bytes:
    return line[: len(line) - len(line.lstrip(b" "))]


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    at = rng.randrange(len(data))
    return data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]


def _delete(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randint(1, 60):]


def _duplicate_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    start = rng.randrange(len(lines))
    chunk = lines[start:start + rng.randint(1, 6)]
    at = rng.randrange(len(lines) + 1)
    return b"\n".join(lines[:at] + chunk + lines[at:])


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _insert(rng: random.Random, data: bytes, text: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + text + data[at:]


def _control(rng: random.Random, data: bytes) -> bytes:
    return _insert(rng, data, rng.choice([b"\x00", b"\x7f", b"\x1b", b"\x0b", b"\x08", b"\x0c", b"\xc2\x85"]))


def _bad_encoding(rng: random.Random, data: bytes) -> bytes:
    return _insert(rng, data, rng.choice([b"\xff\xfe", b"\xed\xa0\x80", b"\xc3", b'"\\ud800"', b"\xef\xbb\xbf"]))


def _unclosed(rng: random.Random, data: bytes) -> bytes:
    return _insert(rng, data, rng.choice([b'"', b"'", b"[", b"{", b"{{ ", b"- [a, b", b"key: {a: 1"]))


def _at_line(rng: random.Random, data: bytes, make: Callable[[bytes], bytes]) -> bytes:
    """Insert ``make(indent)`` as a new line after a random line, with that line's indentation."""
    lines = _lines(data)
    at = rng.randrange(len(lines))
    return b"\n".join([*lines[: at + 1], make(_indent_of(lines[at])), *lines[at + 1:]])


def _alias_bomb(rng: random.Random, data: bytes) -> bytes:
    bomb = b"lol0: &l0 [x, x, x, x, x, x, x, x, x]\n" + b"".join(
        b"lol%d: &l%d [%s]\n" % (i, i, b", ".join([b"*l%d" % (i - 1)] * 9)) for i in range(1, 9)
    )
    if rng.random() < 0.5:
        return bomb + data.replace(b"name:", b"tags: *l8\n  name:", 1)
    return bomb + _at_line(rng, data, lambda indent: indent + b"bomb: *l8")


def _recursive_alias(rng: random.Random, data: bytes) -> bytes:
    return _at_line(rng, data, lambda indent: indent + b"loop: &loop\n" + indent + b"  again: [*loop]")


def _deep(rng: random.Random, data: bytes) -> bytes:
    depth = rng.choice([150, 2000, 6000])
    nested = rng.choice([b"[" * depth + b"]" * depth, b"{a: " * depth + b"1" + b"}" * depth])
    return _at_line(rng, data, lambda indent: indent + b"deep: " + nested)


def _huge(rng: random.Random, data: bytes) -> bytes:
    value = rng.choice([b"9" * 5000, b"-" + b"1" * 4400, b"0x" + b"f" * 3000, b"s" * 5000, b"1e99999"])
    return _at_line(rng, data, lambda indent: indent + b"huge: " + value)


def _incomplete_reference(rng: random.Random, data: bytes) -> bytes:
    ref = rng.choice([b"{{ prefect.blocks.secret }}", b"{{ prefect.blocks. }}", b"{{ prefect.variables }}",
                      b"{{ prefect.blocks.secret.x. }}", b"{{ }}", b"{{ a..b }}", b"{{ $ }}", b"{% if %}"])
    return re.sub(rb"(\w+: )[\w./-]+", lambda m: m.group(1) + b"'" + ref + b"'", data, count=1)


_EXPRESSION_TOKENS = ["(", ")", "[", "]", "{", "}", "|", "upper", "default(", "join(", "tojson", "+", "*", "**",
                      "-", "/", "//", "%", "~", ",", ".", ":", "1", "0", "-1", "1e308", "'a'", "\"b\"", "x",
                      "build.image", "$HOME", "prefect.blocks.secret.x", "prefect.variables.v", "ctx.flow.name",
                      "none", "true", "range", "if", "else", "not", "in", "is", "defined", "9" * 60]


def _expression(rng: random.Random, data: bytes) -> bytes:
    tokens = " ".join(rng.choice(_EXPRESSION_TOKENS) for _ in range(rng.randint(1, 12)))
    text = ("'{{ " + tokens.replace("'", "''") + " }}'").encode()
    return _at_line(rng, data, lambda indent: indent + b"expr: " + text)


def _tab(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    at = rng.randrange(len(lines))
    lines[at] = b"\t" + lines[at].lstrip(b" ")
    return b"\n".join(lines)


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    _flip, _flip, _delete, _delete, _duplicate_lines, _duplicate_lines, _truncate, _control, _bad_encoding,
    _unclosed, _unclosed, _alias_bomb, _recursive_alias, _deep, _huge, _incomplete_reference, _tab,
    _expression, _expression,
]


def _mutant(path: Path, seed: int) -> bytes:
    """The mutant number ``seed`` of ``path``: one to three mutations, reproducible from the seed."""
    rng = random.Random(seed)
    data = path.read_bytes()
    for _ in range(rng.randint(1, 3)):
        data = rng.choice(MUTATIONS)(rng, data)
    return data


def _cases(count: int, offset: int) -> list[tuple[Path, int]]:
    rng = random.Random(SEED + offset)
    return [(rng.choice(FILES), SEED * 100_000 + offset + i) for i in range(count)]


def _deployment_name(data: bytes) -> str:
    found = re.search(rb"name:\s*['\"]?([\w.-]+)", data)
    return found.group(1).decode() if found else "none"


def _commands(file: Path, data: bytes) -> list[list[str]]:
    return [
        ["validate", "--json", "--file", str(file)],
        ["deploy", "--dry-run", "--all", "--file", str(file)],
        ["ls-files", "--file", str(file), "--deployment", _deployment_name(data)],
    ]


def _write_project(root: Path, data: bytes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "flow.py").write_text("def main():\n    return 1\n")
    file = root / "prefect.yaml"
    file.write_bytes(data)
    return file


def _problem(argv: Sequence[str], code: int, output: str) -> str | None:
    """What is wrong with one run, or None."""
    if code not in (0, 1, 2):
        return f"exit {code}"
    if "Traceback" in output or "internal error" in output:
        return "a traceback / internal error"
    if argv[0] == "validate" and code == 1:
        try:
            report = json.loads(output.split("\n\x00\n", 1)[0])
        except ValueError:
            return "validate --json printed no JSON"
        unlocated = [p for p in report["problems"] if p["severity"] == "error" and not isinstance(p["line"], int)]
        if unlocated:
            return f"errors without a line: {unlocated}"
    return None


# ------------------------------------------------------------------------------- in-process worker side


def _worker(root: Path, cases: list[tuple[Path, int]]) -> None:
    """Run every command of every mutant through ``main``; print one JSON line per run."""
    from flowdeck.cli import main

    for index, (source, seed) in enumerate(cases):
        data = _mutant(source, seed)
        file = _write_project(root / str(index), data)
        os.chdir(file.parent)
        for argv in _commands(file, data):
            # A run that does not end within HANG_SECONDS kills this worker with a traceback on stderr.
            faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as exc:  # argparse
                    code = exc.code if isinstance(exc.code, int) else 2
            faulthandler.cancel_dump_traceback_later()
            line = {"source": source.name, "seed": seed, "argv": argv[:2], "code": code,
                    "problem": _problem(argv, code, out.getvalue() + "\n\x00\n" + err.getvalue()),
                    "stderr": err.getvalue()[-600:]}
            print(json.dumps(line), flush=True)


# ---------------------------------------------------------------------------------------------- tests


def _needs_corpus() -> None:
    if not FILES:
        pytest.skip("../shared/corpus is not present")


def test_mutants_through_the_cli_entry_point_never_crash_or_hang(tmp_path: Path) -> None:
    _needs_corpus()
    cases = _cases(IN_PROCESS_MUTANTS, 0)
    halves = [cases[: len(cases) // 2], cases[len(cases) // 2:]]
    procs = []
    for n, half in enumerate(halves):
        spec = tmp_path / f"cases-{n}.json"
        spec.write_text(json.dumps([[str(p), s] for p, s in half]))
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONFAULTHANDLER": "1"}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.test_fuzz", str(tmp_path / f"work-{n}"), str(spec)],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    failures: list[str] = []
    seen = 0
    for proc, half in zip(procs, halves, strict=True):
        # Bounded: every run is limited by the worker's own hang detector.
        stdout, stderr = proc.communicate(timeout=HANG_SECONDS * 3 * len(half) + 60)
        results = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        seen += len(results)
        if proc.returncode != 0 or len(results) != 3 * len(half):
            last = results[-1] if results else None
            failures.append(f"worker ended early (exit {proc.returncode}) after {last}: hang or crash\n"
                            f"{stderr[-3000:]}")
        failures += [f"{r['source']} seed {r['seed']} {' '.join(r['argv'])}: {r['problem']}\n{r['stderr']}"
                     for r in results if r["problem"]]
    assert not failures, "\n\n".join(failures[:10])
    assert seen == 3 * IN_PROCESS_MUTANTS


def test_mutants_as_real_cli_processes_never_crash_or_hang(tmp_path: Path) -> None:
    _needs_corpus()
    runs: list[tuple[str, list[str], Path]] = []
    for index, (source, seed) in enumerate(_cases(SUBPROCESS_MUTANTS, 50_000)):
        data = _mutant(source, seed)
        file = _write_project(tmp_path / str(index), data)
        runs += [(f"{source.name} seed {seed}", argv, file.parent) for argv in _commands(file, data)]

    def one(run: tuple[str, list[str], Path]) -> str | None:
        label, argv, cwd = run
        try:
            result = run_cli(*argv, cwd=cwd, timeout=HANG_SECONDS)
        except subprocess.TimeoutExpired:
            return f"{label} {' '.join(argv[:2])}: no exit within {HANG_SECONDS} s (a hang)"
        problem = _problem(argv, result.code, result.stdout + "\n\x00\n" + result.stderr)
        return f"{label} {' '.join(argv[:2])}: {problem}\n{result.stderr[-600:]}" if problem else None

    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(one, runs) if f]
    assert not failures, "\n\n".join(failures[:10])


def test_the_mutations_are_reproducible_and_varied() -> None:
    _needs_corpus()
    cases = _cases(40, 0)
    assert [_mutant(p, s) for p, s in cases[:5]] == [_mutant(p, s) for p, s in cases[:5]]
    originals = {p: p.read_bytes() for p, _ in cases}
    assert sum(_mutant(p, s) != originals[p] for p, s in cases) >= 35


# ------------------------------------------------------------- each known class, through every command

_DEPLOYMENT = "deployments:\n- name: d\n  entrypoint: flow.py:main\n"
_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
KNOWN_CLASSES: dict[str, tuple[bytes, tuple[int, int], str]] = {
    "NUL": (_DEPLOYMENT.replace("name: d", "name: d\x00").encode(), (2, 10), "U+0000 (NUL)"),
    "DEL": (("pull:\n- x.y: {a: \x7f}\n" + _DEPLOYMENT).encode(), (2, 12), "U+007F (DEL)"),
    "lone surrogate": (_DEPLOYMENT.replace("name: d", 'name: "d\\udc00"').encode(), (2, 9), "lone surrogate"),
    "billion laughs": ((_LAUGHS + _DEPLOYMENT + "  tags: *i\n").encode(), (5, 12), "aliases expand"),
    "recursive alias": ((_DEPLOYMENT + "  parameters: &p\n    me: [*p]\n").encode(), (5, 10), "recursive"),
    "deep nesting": ((_DEPLOYMENT + "  parameters: {p: " + "[" * 5000 + "]" * 5000 + "}\n").encode(), (4, 115),
                     "nested more than 100 levels"),
    "huge integer": ((_DEPLOYMENT + "  parameters: {p: " + "7" * 5000 + "}\n").encode(), (4, 19),
                     "more than 1000 digits"),
    "unclosed quote": ((_DEPLOYMENT + "  description: 'never closed\n  tags: [a]\n\n\n").encode(), (4, 16),
                       "quoted string (') opened here is never closed"),
    "unclosed bracket": ((_DEPLOYMENT + "  tags: [a, b\n  version: '1'\n").encode(), (4, 9),
                         "list '[' opened here is never closed"),
    "incomplete block reference": ((_DEPLOYMENT + "  parameters: {p: '{{ prefect.blocks.secret }}'}\n").encode(),
                                   (4, 19), "incomplete block reference"),
    "incomplete variable reference": ((_DEPLOYMENT + "  version: '{{ prefect.variables }}'\n").encode(), (4, 12),
                                      "incomplete variable reference"),
    "deeply nested expression": ((_DEPLOYMENT + "  parameters: {p: '{{ " + "(" * 3000 + "1" + ")" * 3000
                                  + " }}'}\n").encode(), (4, 19), "is nested too deeply"),
    "long operator chain": ((_DEPLOYMENT + "  parameters: {p: '{{ 1" + " + 1" * 5000 + " }}'}\n").encode(),
                            (4, 19), "chains too many operators"),
}
# Problems that validation finds (ls-files, which only loads the file, does not look for them).
_VALIDATION_CLASSES = {"incomplete block reference", "incomplete variable reference", "deeply nested expression",
                       "long operator chain"}


@pytest.mark.parametrize("name", list(KNOWN_CLASSES))
def test_each_known_class_is_a_located_error_in_every_command_that_reads_the_file(
    name: str, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowdeck.cli import main

    data, (line, column), message = KNOWN_CLASSES[name]
    file = _write_project(project, data)
    for argv in (["validate"], ["deploy", "--dry-run", "--all"], ["deploy", "--all"], ["steps", "run", "pull"],
                 ["ls-files", "--deployment", "d"]):
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=sys.__stderr__)
        try:
            code = main(argv)
        finally:
            faulthandler.cancel_dump_traceback_later()
        output = capsys.readouterr()
        if argv[0] == "ls-files" and name in _VALIDATION_CLASSES:
            # ls-files reads the file for a push step's ignore_file only; it does not validate references.
            assert code == 0, output
            continue
        assert code == 1, (argv, output)
        assert "internal error" not in output.err and "Traceback" not in output.err
        assert f"{file.name}:{line}:{column}: " in output.out + output.err, (argv, output)
        assert message in output.out + output.err, (argv, output)


def test_mapping_keys_of_mixed_types_deploy_like_any_other_value(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # YAML allows {1: a, 2.5: b, null: c} in one mapping; sorting such keys for the hash and the diff
    # raised TypeError (exit 3).
    from flowdeck.cli import main

    _write_project(project, (_DEPLOYMENT + "  parameters:\n    p: {1: a, 2.5: b, null: c, x: d}\n").encode())
    (project / "flow.py").write_text("def main(p=None):\n    return p\n")
    for argv in (["deploy", "--dry-run", "--all"], ["deploy", "--all"], ["deploy", "--all"],
                 ["deployment", "show", "d", "--json"]):
        code = main(argv)
        output = capsys.readouterr()
        assert code == 0, (argv, output)
    assert '"p": {\n' in output.out and '"null": "c"' in output.out


def test_a_hostile_param_file_is_refused_like_a_hostile_prefect_yaml(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowdeck.cli import main

    (project / "bomb.yaml").write_text(_LAUGHS + "p: *i\n")
    (project / "deep.json").write_text("{\"p\": " + "[" * 100_000 + "]" * 100_000 + "}")
    assert main(["run", "x", "--param-file", "bomb.yaml"]) == 1
    assert "bomb.yaml:5:12: aliases expand the document" in capsys.readouterr().err
    assert main(["run", "x", "--param-file", "deep.json"]) == 1
    assert "internal error" not in capsys.readouterr().err


if __name__ == "__main__":
    _root, _spec = Path(sys.argv[1]), Path(sys.argv[2])
    _worker(_root, [(Path(p), int(s)) for p, s in json.loads(_spec.read_text())])
