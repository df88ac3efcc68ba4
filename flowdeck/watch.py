"""Watching a project for changes (``deploy --watch``): polling, debounced, ignore-aware."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["snapshot", "watch_changes"]


def snapshot(root: Path, ignore_file: str = ".prefectignore") -> dict[str, tuple[float, int]]:
    """Modification time and size of every file a push would upload (plus prefect.yaml)."""
    from flowdeck.ignore import IgnoreSpec

    spec = IgnoreSpec.from_file(root / ignore_file)
    state: dict[str, tuple[float, int]] = {}
    for entry in spec.walk(root):
        if entry.rel.startswith(".git/"):
            continue
        try:
            stat = entry.path.stat()
        except OSError:
            continue
        state[entry.rel] = (stat.st_mtime, stat.st_size)
    for name in ("prefect.yaml", ignore_file):
        path = root / name
        if path.is_file():
            stat = path.stat()
            state[name] = (stat.st_mtime, stat.st_size)
    return state


def watch_changes(root: Path, interval: float = 0.5, debounce: float = 1.0) -> Iterator[list[str]]:
    """Yield the changed paths each time the project changes and then stays quiet for ``debounce`` seconds.

    The first snapshot is taken now, not at the first ``next()``: a change made right after the caller says
    "watching" must not be missed (it was, under load, when the generator started late).
    """
    return _watch(root, snapshot(root), interval, debounce)


def _watch(root: Path, before: dict[str, tuple[float, int]], interval: float, debounce: float) -> Iterator[list[str]]:
    while True:
        time.sleep(interval)
        now = snapshot(root)
        if now == before:
            continue
        # Wait until editors and generators have finished writing.
        while True:
            time.sleep(debounce)
            settled = snapshot(root)
            if settled == now:
                break
            now = settled
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        before = now
        yield changed
