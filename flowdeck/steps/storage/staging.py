"""A pull's staging directory, its lock, and the journaled swap that makes a pull all-or-nothing.

* **One pull of a directory at a time.** A pull holds an exclusive ``flock`` on ``.flowdeck-pull-lock`` in
  the destination for its whole life (a second pull of the same directory waits). The kernel releases the
  lock when the process dies, however it dies, so a staging directory (``.flowdeck-pull-*``) found while
  holding the lock belongs to a dead pull: it is cleaned up, and never one of a live pull.
* **The swap is journaled.** Once every file is downloaded and verified, the pull writes ``swap.json`` into
  its staging directory: the files to move in, the files to delete and the new pull record. Then it moves
  the files in (one rename each) and writes the record. If the pull is killed during the swap, the
  directory briefly holds new files among old ones; the next pull of the directory (``flowdeck pull`` and
  ``flowdeck run`` always pull before a flow starts) finds the journal and finishes the swap before
  anything else, so no flow that flowdeck starts ever sees a mix. A staging directory without a journal
  (a pull killed while downloading) never touched the destination and is simply removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowdeck.errors import StorageError
from flowdeck.locks import LockTimeout, held
from flowdeck.steps.storage.destfs import replace_into, unlink_from

__all__ = ["LOCK_NAME", "STAGING_PREFIX", "Swap", "locked_destination", "recover_stale", "staging_dir"]

log = logging.getLogger("flowdeck.storage")

STAGING_PREFIX = ".flowdeck-pull-"
LOCK_NAME = STAGING_PREFIX + "lock"
JOURNAL = "swap.json"
FILES = "files"
#: Test-only fault injection: ``N:PATH`` makes a pull create PATH and stop after moving N files in.
PAUSE_ENV = "FLOWDECK_TEST_ONLY_PAUSE_IN_SWAP"
LOCK_WAIT = 600.0  # seconds a pull waits for another pull of the same directory

@contextlib.contextmanager
def locked_destination(target: Path, wait: float | None = None) -> Iterator[None]:
    """Hold the destination's pull lock (see the module docstring), waiting at most ``wait`` seconds
    (default :data:`LOCK_WAIT`) for another pull of it."""
    wait = LOCK_WAIT if wait is None else wait
    path = target / LOCK_NAME
    with contextlib.ExitStack() as stack:
        # Only taking the lock is in the `try`: the same errors raised by the pull it guards are the pull's.
        try:
            stack.enter_context(held(path, wait=wait, remove=True,
                                     on_wait=lambda: log.info("waiting for another pull of %s to finish", target)))
        except LockTimeout:
            raise StorageError(
                f"another pull of {target} has been running for more than {wait:g}s",
                hint="wait for it to finish, or stop it",
            ) from None
        except OSError as exc:
            raise StorageError(
                f"cannot lock {path}: {exc.strerror}", hint="check that the directory is writable"
            ) from exc
        yield


def staging_dir(target: Path) -> Path:
    """A fresh staging directory inside ``target`` (same filesystem, so every move is one rename)."""
    staging = Path(tempfile.mkdtemp(dir=target, prefix=STAGING_PREFIX))
    (staging / FILES).mkdir()
    return staging


@dataclass
class Swap:
    """The last step of a pull: what to move in, what to delete, and the record to write at the end."""

    source: str
    moves: list[str]
    removals: dict[str, dict[str, Any]] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    def write(self, staging: Path) -> None:
        """Save the journal (atomically) before the first move."""
        body = {"source": self.source, "moves": self.moves, "removals": self.removals, "record": self.record}
        tmp = staging / (JOURNAL + ".tmp")
        tmp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(tmp, staging / JOURNAL)

    @classmethod
    def read(cls, staging: Path) -> Swap | None:
        """The journal of a staging directory; None when the pull never got to its swap."""
        try:
            body = json.loads((staging / JOURNAL).read_text(encoding="utf-8"))
            return cls(str(body["source"]), list(body["moves"]), dict(body["removals"]), dict(body["record"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def apply(
        self,
        target: Path,
        staging: Path,
        still_as_pulled: Callable[[Path, dict[str, Any] | None], bool],
        write_record: Callable[[str, dict[str, Any]], None],
    ) -> int:
        """Move the staged files in, delete the removed ones, write the record; return how many were
        removed. Safe to run again after an interruption: what was done already is skipped."""
        pause = _pause_point()
        for done, rel in enumerate(self.moves):
            if pause is not None and done == pause[0]:
                _pause(pause[1])
            staged = staging / FILES / rel
            if staged.exists() or staged.is_symlink():
                replace_into(target, rel, staged)
        removed = 0
        for rel, prev in self.removals.items():
            path = target / rel
            if not still_as_pulled(path, prev):
                if path.exists():
                    log.warning(
                        "keeping %s: it was pulled before but was edited since, and the new tree lacks it", rel
                    )
                continue
            try:
                unlink_from(target, rel)
            except (OSError, StorageError) as exc:
                log.warning("keeping %s: %s", rel, getattr(exc, "message", None) or exc)
                continue
            removed += 1
            _prune_empty_dirs(path.parent, target)
        write_record(self.source, self.record)
        return removed


def recover_stale(
    target: Path,
    still_as_pulled: Callable[[Path, dict[str, Any] | None], bool],
    write_record: Callable[[str, dict[str, Any]], None],
) -> None:
    """Finish or remove what dead pulls of ``target`` left behind (call it holding the lock)."""
    try:
        entries = sorted(os.scandir(target), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(STAGING_PREFIX) or entry.name == LOCK_NAME:
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            swap = Swap.read(path)
            if swap is not None:
                log.warning("finishing the swap of an earlier pull of %s that was stopped during it", target)
                swap.apply(target, path, still_as_pulled, write_record)
            else:
                log.info("removing %s, left by an earlier pull that was stopped", entry.name)
            shutil.rmtree(path, ignore_errors=True)
        else:
            # A temporary pull record, or a link someone planted: never followed, just removed.
            with contextlib.suppress(OSError):
                path.unlink()


def _prune_empty_dirs(directory: Path, stop: Path) -> None:
    real_stop = os.path.realpath(stop)
    while directory != stop and stop in directory.parents:
        if os.path.islink(directory) or not os.path.realpath(directory).startswith(real_stop + os.sep):
            return
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def _pause_point() -> tuple[int, Path] | None:
    count, _, path = os.environ.get(PAUSE_ENV, "").partition(":")
    return (int(count), Path(path)) if count.isdigit() and path else None


def _pause(marker: Path) -> None:
    # Only tests set this: they kill the process while it sleeps here, in the middle of the swap.
    marker.write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(600)
