"""`.prefectignore` handling with git's semantics, shared by every storage backend.

Each line is compiled with pathspec's gitignore dialect (``GitIgnoreSpec``), but matching follows git rather
than pathspec where the two differ:

* a rule matches a path *itself*: ``dir/`` matches the directory ``dir``, never a file inside it;
* a path whose parent directory is excluded is excluded too, whatever later ``!`` rules say (git does not
  descend into excluded directories, so it cannot re-include anything under them). Prefect judges every
  path on its own, so ``["*", "!a/b.py"]`` uploads ``a/b.py`` there but not here.

Every rule keeps its file and line, so ``flowdeck check-ignore`` can say which rule decided.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flowdeck.errors import FlowdeckError

__all__ = ["IGNORE_FILE", "RESERVED_NAMES", "IgnoreSpec", "Rule", "WalkEntry"]

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
    import pathspec

    compiled = pathspec.GitIgnoreSpec.from_lines([pattern]).patterns
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


class IgnoreSpec:
    """An ordered list of rules; the last rule that matches a path decides."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules: list[Rule] = list(rules)

    @classmethod
    def from_lines(cls, lines: Iterable[str], source: str = IGNORE_FILE) -> IgnoreSpec:
        """Compile gitignore lines; blank lines and ``#`` comments are skipped."""
        rules: list[Rule] = []
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            regex = _compile(line)
            if regex is None:
                continue
            anchored = re.compile(f"(?:{regex.pattern})\\Z", regex.flags)
            rules.append(
                Rule(source, number, line.rstrip(" ") if not line.endswith("\\ ") else line, regex, anchored)
            )
        return cls(rules)

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
        """True when the path would not be pushed."""
        rule = self.match(path, is_dir)
        return rule is not None and not rule.negated

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
            # is_file() follows file symlinks and skips sockets, fifos and broken links.
            elif entry.is_file() and not self._last_excluded(rel, False):
                yield WalkEntry(rel, Path(entry.path))

    def _last_excluded(self, rel: str, is_dir: bool) -> bool:
        # Parents were already checked on the way down, so only the path itself is left to judge.
        rule = self._last(rel, is_dir)
        return rule is not None and not rule.negated
