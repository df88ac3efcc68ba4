"""`.prefectignore` handling with git's semantics, shared by every storage backend.

Each line is compiled with pathspec's gitignore dialect (``GitIgnoreSpec``), but matching follows git rather
than pathspec where the two differ:

* a rule matches a path *itself*: ``dir/`` matches the directory ``dir``, never a file inside it;
* a path whose parent directory is excluded is excluded too, whatever later ``!`` rules say (git does not
  descend into excluded directories, so it cannot re-include anything under them).

Users wrote their ignore files for Prefect, and a file left behind is an ImportError on the worker, so
flowdeck never uploads less than Prefect would. Where the two rules differ a file is uploaded when either
keeps it, with a warning naming the pattern's file:line:

* Prefect judges every path on its own (pathspec's ``GitIgnoreSpec.match_file``), so a ``!negation`` under a
  directory an earlier pattern excluded re-includes the file there (``["build/", "!build/keep.txt"]``);
* Prefect's S3 step strips each line, its GCS and Azure steps do not, so ``  build/`` (leading spaces)
  excludes ``build/`` on S3 only; the unstripped reading (git's, GCS's and Azure's) keeps it.

A line pathspec cannot compile (a lone ``!`` or backslash, ``[z-a]*``) makes Prefect's push fail; flowdeck
skips it with a located warning. Every rule keeps its file and line, so ``flowdeck check-ignore`` can say
which rule decided.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowdeck.errors import FlowdeckError, FlowdeckWarning, Location

__all__ = ["IGNORE_FILE", "RESERVED_NAMES", "IgnoreSpec", "PrefectReading", "Rule", "WalkEntry"]

IGNORE_FILE = ".prefectignore"
# Files flowdeck itself writes into a pulled directory; never pushed.
RESERVED_NAMES = frozenset({".flowdeck-manifest.json", ".flowdeck-pull.json", ".flowdeck-snapshots"})


def _reserved(name: str) -> bool:
    # The manifest, the pull record, and a pull's staging directory or temporary record (if a pull was
    # killed before it could clean up) are flowdeck's own files, never part of the user's tree.
    return name in RESERVED_NAMES or name.startswith(".flowdeck-pull-")


@dataclass(frozen=True)
class Rule:
    """One pattern line of an ignore file."""

    source: str
    line: int
    pattern: str
    regex: re.Pattern[str]
    anchored: re.Pattern[str]

    @property
    def negated(self) -> bool:
        """True for a ``!pattern`` rule, which re-includes what it matches."""
        return self.pattern.startswith("!")

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.pattern}"

    def matches(self, path: str, is_dir: bool) -> bool:
        """Whether this rule matches ``path`` itself (not merely one of its parent directories)."""
        # pathspec's regexes accept descendants: the group ``ps_d`` marks "matched a directory, the rest
        # is inside it". A direct match is one that ends at the path's end without using that group,
        # or, for a directory, one whose ``ps_d`` slash is the path's own trailing slash.
        m = self.anchored.search(path)
        if m is not None and not _dir_group(m):
            return True
        # Prefix-only patterns such as ``foo/**`` (regex ``^foo/``) match every descendant directly.
        if "ps_d" not in self.regex.groupindex and self.regex.search(path) is not None:
            return True
        if is_dir:
            m = self.anchored.search(path + "/")
            if m is not None and _dir_group(m) and m.end("ps_d") == len(path) + 1:
                return True
        return False


def _dir_group(m: re.Match[str]) -> bool:
    return "ps_d" in m.re.groupindex and m.group("ps_d") is not None


def _compile(pattern: str) -> re.Pattern[str] | None:
    """The regex of one gitignore line (None for a line that matches nothing); raises ValueError when
    pathspec cannot compile it."""
    import pathspec

    try:
        compiled = pathspec.GitIgnoreSpec.from_lines([pattern]).patterns
    except (ValueError, re.error) as exc:  # GitIgnorePatternError is a ValueError
        raise ValueError(str(exc)) from None
    if not compiled:
        return None
    first = compiled[0]
    regex = getattr(first, "regex", None)
    if first.include is None or regex is None:
        return None
    return regex if isinstance(regex, re.Pattern) else re.compile(str(regex))


@dataclass(frozen=True)
class WalkEntry:
    """A file the walk included: its POSIX path relative to the root, and its absolute path."""

    rel: str
    path: Path


@dataclass(frozen=True)
class PrefectReading:
    """How one of Prefect's push steps reads the ignore file: pathspec over every path on its own."""

    label: str  # "Prefect" or "Prefect's S3 step"
    spec: Any  # pathspec.GitIgnoreSpec
    rules: tuple[Rule, ...]  # the rule behind each of the spec's patterns, by index

    @property
    def can_keep(self) -> bool:
        """Whether this reading can keep a file git's reading drops (only a ``!`` rule can)."""
        return any(rule.negated for rule in self.rules)

    def decide(self, path: str) -> Rule | None:
        """The rule that decides ``path`` for Prefect (None when no pattern matches)."""
        check = getattr(self.spec, "check_file", None)
        if check is None:  # pathspec before check_file(): the last pattern that matches decides
            last = None
            for index, pattern in enumerate(self.spec.patterns):
                if pattern.include is not None and pattern.match_file(path) is not None:
                    last = index
            return self.rules[last] if last is not None else None
        result = check(path)
        found: int | None = getattr(result, "index", None)
        return self.rules[found] if found is not None and result.include is not None else None


def _prefect_reading(label: str, rules: list[Rule]) -> PrefectReading | None:
    """Prefect's reading of ``rules`` (None when there are none)."""
    import pathspec

    if not rules:
        return None
    return PrefectReading(label, pathspec.GitIgnoreSpec.from_lines([r.pattern for r in rules]), tuple(rules))


def _rule(source: str, number: int, line: str) -> Rule | None:
    regex = _compile(line)
    if regex is None:
        return None
    anchored = re.compile(f"(?:{regex.pattern})\\Z", regex.flags)
    return Rule(source, number, line.rstrip(" ") if not line.endswith("\\ ") else line, regex, anchored)


def _warn(source: str, number: int, message: str, hint: str) -> None:
    warnings.warn(FlowdeckWarning(message, location=Location(source, number, 1), hint=hint), stacklevel=3)


class IgnoreSpec:
    """An ordered list of rules; the last rule that matches a path decides (see the module docstring for
    where Prefect's readings add files)."""

    def __init__(self, rules: Iterable[Rule] = (), prefect: Iterable[PrefectReading] = ()) -> None:
        self.rules: list[Rule] = list(rules)
        self.prefect: list[PrefectReading] = list(prefect)
        self._keepers = [reading for reading in self.prefect if reading.can_keep]
        self._warned: set[Rule] = set()

    @classmethod
    def from_lines(cls, lines: Iterable[str], source: str = IGNORE_FILE) -> IgnoreSpec:
        """Compile gitignore lines; blank lines and ``#`` comments are skipped, and a line that does not
        compile is skipped with a located warning."""
        rules: list[Rule] = []
        stripped: list[Rule] = []
        indented = False
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            try:
                rule = _rule(source, number, line)
            except ValueError as exc:
                _warn(source, number, f"ignore pattern {line!r} is not valid ({exc}); it is skipped",
                      "fix or remove the line: Prefect's push steps fail on it (escape a literal `!` or `[` "
                      "with `\\`)")
                continue
            if rule is not None:
                rules.append(rule)
            bare = line.strip()
            if bare != line.rstrip() and not bare.startswith("#"):
                indented = True
                _warn(source, number, f"ignore pattern {line!r} starts with spaces: Prefect's S3 step strips "
                      f"them (and reads {bare!r}), its GCS and Azure steps and git do not",
                      "flowdeck uploads a file when either reading keeps it; remove the spaces to mean "
                      f"{bare!r} everywhere")
            try:
                twin = _rule(source, number, bare) if bare != line else rule
            except ValueError:
                twin = None
            if twin is not None and not bare.startswith("#"):
                stripped.append(twin)
        readings = [_prefect_reading("Prefect", rules)]
        if indented:
            readings.append(_prefect_reading("Prefect's S3 step", stripped))
        return cls(rules, [r for r in readings if r is not None])

    @classmethod
    def from_file(cls, path: Path | str, *, display: str | None = None) -> IgnoreSpec:
        """Read an ignore file; a missing file gives an empty spec (everything is included, as in Prefect)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError) as exc:
            raise FlowdeckError(
                f"cannot read ignore file {path}: {exc}", hint="make it a readable UTF-8 text file"
            ) from exc
        return cls.from_lines(text.splitlines(), source=display or str(path))

    def _last(self, path: str, is_dir: bool) -> Rule | None:
        for rule in reversed(self.rules):
            if rule.matches(path, is_dir):
                return rule
        return None

    def match(self, path: str, is_dir: bool = False) -> Rule | None:
        """The rule that decides ``path`` (POSIX, relative to the root), or None when no rule applies.

        A returned rule that is :attr:`Rule.negated` means the path is explicitly included. A path under
        an excluded directory returns that directory's rule.
        """
        parts = [p for p in path.strip("/").split("/") if p and p != "."]
        for i in range(1, len(parts)):
            rule = self._last("/".join(parts[:i]), True)
            if rule is not None and not rule.negated:
                return rule
        return self._last("/".join(parts), is_dir)

    def is_excluded(self, path: str, is_dir: bool = False) -> bool:
        """True when the path would not be pushed (by git's reading and by every Prefect reading)."""
        rule = self.match(path, is_dir)
        if rule is None or rule.negated:
            return False
        return is_dir or self.kept_by_prefect(path) is None

    def kept_by_prefect(self, path: str) -> tuple[PrefectReading, Rule] | None:
        """The Prefect reading and its ``!`` rule that keep a file, if one does."""
        for reading in self._keepers:
            rule = reading.decide(path)
            if rule is not None and rule.negated:
                return reading, rule
        return None

    def explain(self, path: str, is_dir: bool = False) -> list[tuple[str, Rule | None]]:
        """Each reading's deciding rule for ``path``: git's first, then Prefect's where they differ."""
        git = self.match(path, is_dir)
        found: list[tuple[str, Rule | None]] = [("git", git)]
        if is_dir:
            return found
        git_excluded = git is not None and not git.negated
        for reading in self.prefect:
            rule = reading.decide(path)
            if (rule is not None and not rule.negated) != git_excluded:
                found.append((reading.label, rule))
        return found

    def walk(self, root: Path | str) -> Iterator[WalkEntry]:
        """Yield every included file under ``root``, sorted, never descending into excluded directories.

        Symlinks to files are followed (their content is pushed, as Prefect does); symlinks to directories
        are not followed, so a link cycle cannot hang the walk.
        """
        root = Path(root)
        yield from self._walk(root, "")

    def _walk(self, directory: Path, prefix: str) -> Iterator[WalkEntry]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise FlowdeckError(f"cannot list {directory}: {exc.strerror}") from exc
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if not prefix and _reserved(entry.name):
                continue
            if entry.is_dir(follow_symlinks=False):
                if not self._last_excluded(rel, True):
                    yield from self._walk(Path(entry.path), rel + "/")
                elif self._keepers:
                    # Prefect may re-include files under a directory git excluded: look, keep only those.
                    yield from self._walk_excluded(Path(entry.path), rel + "/")
            # is_file() follows file symlinks and skips sockets, fifos and broken links.
            elif entry.is_file() and (not self._last_excluded(rel, False) or self._prefect_keeps(rel)):
                yield WalkEntry(rel, Path(entry.path))

    def _walk_excluded(self, directory: Path, prefix: str) -> Iterator[WalkEntry]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise FlowdeckError(f"cannot list {directory}: {exc.strerror}") from exc
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk_excluded(Path(entry.path), rel + "/")
            elif entry.is_file() and self._prefect_keeps(rel):
                yield WalkEntry(rel, Path(entry.path))

    def _prefect_keeps(self, rel: str) -> bool:
        kept = self.kept_by_prefect(rel)
        if kept is None:
            return False
        reading, rule = kept
        if rule not in self._warned:
            self._warned.add(rule)
            warnings.warn(FlowdeckWarning(
                f"{rel} is uploaded: {reading.label} re-includes it by `{rule.pattern}`, although git's rule "
                "(an excluded parent directory, or a later pattern) would leave it out",
                location=Location(rule.source, rule.line, 1),
                hint="flowdeck uploads what either rule keeps; `flowdeck check-ignore PATH` shows both"),
                stacklevel=3)
        return True

    def _last_excluded(self, rel: str, is_dir: bool) -> bool:
        # Parents were already checked on the way down, so only the path itself is left to judge.
        rule = self._last(rel, is_dir)
        return rule is not None and not rule.negated
