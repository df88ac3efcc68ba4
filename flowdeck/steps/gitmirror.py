"""Working clones from the worker's git mirror (:mod:`flowdeck.gitcache`), made while the server is asked.

A warm ``git_clone`` spends its time in two independent waits: the server's answer to "what changed?"
(a fetch, or for a pinned commit already cached the ``ls-remote`` proof of access) and writing the
project's files. :func:`clone_while_updating` overlaps them: it clones what the mirror holds now and checks
it out while the mirror is updated on another thread. When the update changed none of the mirror's refs
(the usual warm run), that clone is exactly what cloning after the update would have made, and it stands;
otherwise it is thrown away and the caller clones the updated mirror. Either way the caller gets the clone
only after the update succeeded: a refused credential still fails the step before any file is handed over.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from flowdeck.background import Background
from flowdeck.errors import GitError
from flowdeck.gitrun import GitCommandError, git

__all__ = ["clone_while_updating", "local_clone", "point_origin", "refs_fingerprint"]

log = logging.getLogger("flowdeck.steps.git")


def local_clone(mirror: Path, tmp: Path, *, checkout: bool = False) -> None:
    """Clone the mirror with hard links when it shares a filesystem with ``tmp``, else by copying; with
    ``checkout``, also check out the mirror's ``HEAD`` (one git instead of two).

    ``--local`` makes git fail ("Invalid cross-device link") rather than copy when a link is impossible,
    e.g. with the working directory on a tmpfs. A copy, not ``--reference``/alternates: the clone must not
    depend on a cache that may be deleted.
    """
    args = ["clone", "--quiet"] if checkout else ["clone", "--quiet", "--no-checkout"]
    if os.stat(mirror).st_dev == os.stat(tmp.parent).st_dev:
        try:
            git([*args, "--local", "--", str(mirror), str(tmp)])
            return
        except GitCommandError as exc:
            if "failed to create link" not in exc.stderr:
                raise
            # Same device but links refused (some overlay and network filesystems): copy instead.
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("the git cache cannot be hard-linked into %s (another filesystem); copying it", tmp.parent)
    git([*args, "--no-hardlinks", "--", str(mirror), str(tmp)])


def _config_value(text: str) -> str:
    """``text`` as a double-quoted git config value (``\\`` and ``"`` escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def point_origin(repo: Path, url: str) -> None:
    """Set the ``origin`` URL of ``repo``, a clone :func:`local_clone` just made, to ``url``.

    That clone's ``.git/config`` is the one git writes for every new clone: one ``[remote "origin"]`` section
    with one ``url`` line. Rewriting that line here spares a ``git remote set-url`` process on every warm
    clone; anything else (or a URL with a control character) goes through git itself.
    """
    config = repo / ".git" / "config"
    try:
        lines = config.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError):
        lines = []
    section = [i for i, line in enumerate(lines) if line.strip() == '[remote "origin"]']
    found: list[int] = []
    if len(section) == 1 and not any(ord(c) < 32 or c == "\x7f" for c in url):
        for i in range(section[0] + 1, len(lines)):
            stripped = lines[i].strip()
            if stripped.startswith("["):
                break
            if stripped.partition("=")[0].strip().lower() == "url":
                found.append(i)
    if len(found) != 1:
        git(["remote", "set-url", "origin", url], cwd=repo)
        return
    lines[found[0]] = f"\turl = {_config_value(url)}"
    tmp = config.with_name("config.flowdeck-tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, config)


def refs_fingerprint(git_dir: Path) -> dict[str, bytes]:
    """Every file that holds a ref of ``git_dir`` (``HEAD``, ``packed-refs``, ``refs/**``, ``reftable/**``)
    and its bytes: equal fingerprints mean equal refs (git writes a ref's file only to change it, or to
    pack it, which at worst makes two equal states look different)."""
    found: dict[str, bytes] = {}
    for name in ("HEAD", "packed-refs"):
        try:
            found[name] = (git_dir / name).read_bytes()
        except FileNotFoundError:
            pass
    for sub in ("refs", "reftable"):
        for root, _dirs, files in os.walk(git_dir / sub):
            for file in files:
                path = Path(root) / file
                try:
                    found[str(path.relative_to(git_dir))] = path.read_bytes()
                except FileNotFoundError:
                    pass
    return found


def clone_while_updating(mirror: Path, tmp: Path, update: Callable[[], object],
                         clone: Callable[[], None]) -> bool:
    """``clone`` the mirror (which must exist) into ``tmp`` while ``update`` runs; see the module's
    description. True when the clone stands; False when ``tmp`` was removed and the caller must clone the
    updated mirror. Raises what ``update`` raised. The caller holds the mirror's lock.

    The clone may read the mirror while the update writes it: git writes objects before the refs that
    reach them, and a clone that saw a ref change, or failed because of one, is thrown away, since then
    the refs are no longer those fingerprinted before the update started.
    """
    before = refs_fingerprint(mirror)
    updating = Background(update, "flowdeck-git-update")
    try:
        try:
            clone()
            checked_out = True
        except GitError as exc:  # e.g. a branch the server only now has: the update brings it
            log.debug("cloning the cached copy failed (%s); waiting for the server", exc)
            checked_out = False
    except BaseException:
        try:
            updating.result()  # never leave the lock while the update writes the mirror
        except BaseException as exc:
            log.debug("the update of the git cache also failed: %s", exc)
        raise
    updating.result()
    if checked_out and refs_fingerprint(mirror) == before:
        return True
    log.debug("the server had something new for %s; cloning the updated cache", mirror.name)
    shutil.rmtree(tmp, ignore_errors=True)
    return False
