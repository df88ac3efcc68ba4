"""The worker's git cache: one bare mirror per repository URL, updated incrementally, cloned locally.

A worker clones the same repository before every flow run. With the cache, only the first run transfers
the history; later runs ask the server what changed (or, for a pinned sha already present, only whether
the caller may read the repository) and clone from the mirror on local disk, with hard links when it is on
the same filesystem, else by copying.

Layout: ``<cache_dir>/git/<name>-<sha256(url)[:16]>.git`` where ``url`` is the credential-free URL, so no
secret ever appears in a path or in the mirror's config. Every use of a mirror holds ``<mirror>.lock``
(a :mod:`filelock` file lock), so concurrent workers take turns. Safety against interruption:
the mirror is first created in a temporary sibling and renamed into place; git writes objects before it
moves refs; and leftovers of a killed git (stale ``*.lock`` files, temporary packs) are removed under our
lock before each use. A mirror that git no longer accepts is rebuilt.

A mirror is shared by every caller on the worker, whatever their credentials, so it never serves what
the server would refuse: before a pinned commit is served from the mirror without a fetch (a "cache hit"),
:func:`prove_access` asks the server to list one ref (``git ls-remote URL HEAD``) with the caller's own
credentials, in the environment exactly as a fetch would. Every other path fetches from the server with
those credentials anyway. A successful proof or fetch is remembered in this process only, for
:data:`PROOF_TTL` seconds, keyed by a hash of the URL and the credentials. When the server cannot be
reached, the mirror is used only if its last contact with the server needed no credentials (recorded in
``<mirror>/flowdeck-access``), and for ``file://`` and local paths only if the path can be read.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from flowdeck.errors import GitError
from flowdeck.gitauth import clean_url, local_path, transport
from flowdeck.gitrun import GitCommandError, git, git_output, retrying
from flowdeck.locks import LockTimeout, held
from flowdeck.paths import cache_dir

__all__ = [
    "PIN_PREFIX",
    "PROOF_TTL",
    "fetch_from_mirror",
    "forget_proofs",
    "has_commit",
    "locked_mirror",
    "mirror_path",
    "prove_access",
    "update_mirror",
]

log = logging.getLogger("flowdeck.gitcache")

# Commits fetched by sha (not on any branch) are kept under this prefix so git never prunes them.
PIN_PREFIX = "refs/flowdeck/pins/"
_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
# How long a worker waits for another one that holds the mirror (a large first fetch can take a while).
LOCK_TIMEOUT = 1800.0
# How long a successful proof of access (or fetch) spares the next cache hit its ls-remote, per process.
PROOF_TTL = 60.0
# An ls-remote lists one ref; a server that has not answered in this time is not going to.
PROOF_TIMEOUT = 120.0
_ACCESS_FILE = "flowdeck-access"
_OFFLINE_KINDS = frozenset({"dns", "connect", "transfer", "timeout"})
# access key (a hash of the URL and the credentials) -> time.monotonic() of the last success
_proven: dict[str, float] = {}


def mirror_path(url: str, root: Path | None = None) -> Path:
    """Where the mirror of ``url`` lives; credentials in ``url`` do not change the answer."""
    plain = clean_url(url).rstrip("/")
    path = local_path(plain)
    if path is not None and not plain.lower().startswith("file://"):
        plain = os.path.abspath(path)  # `./repo` of two projects are two repositories
    digest = hashlib.sha256(plain.encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", plain.rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    stem = stem.removesuffix(".git")[:40] or "repo"
    return (root or cache_dir()) / "git" / f"{stem}-{digest}.git"


@contextlib.contextmanager
def locked_mirror(url: str, root: Path | None = None) -> Iterator[Path]:
    """Hold the mirror's lock, repair what an interrupted run left behind, and yield its path."""
    path = mirror_path(url, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = str(path) + ".lock"
    with contextlib.ExitStack() as stack:
        # Only taking the lock is in the `try`: a timeout on another mirror's lock (a submodule's) while
        # this one is held must name that mirror, not this one.
        try:
            stack.enter_context(held(
                lock, wait=LOCK_TIMEOUT,
                on_wait=lambda: log.info("waiting for another process that uses the git cache %s", path.name)))
        except LockTimeout:
            raise GitError(
                f"the git cache {path} has been in use by another process for more than {LOCK_TIMEOUT:g}s",
                hint=f"wait for it, or if no flowdeck is running, remove {lock}; or set FLOWDECK_NO_CACHE=1",
            ) from None
        _repair(path)
        yield path


def _repair(path: Path) -> None:
    # Only called with the lock held: no other flowdeck process is using this mirror, so any lock or
    # temporary file in it belongs to a git that was killed.
    for leftover in path.parent.glob(path.name + ".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if not path.exists():
        return
    if not _looks_like_git_dir(path):
        log.warning("the git cache %s is damaged; rebuilding it", path)
        shutil.rmtree(path, ignore_errors=True)
        return
    stale = [
        *path.glob("*.lock"),
        *(path / "refs").rglob("*.lock"),
        *(path / "objects" / "pack").glob("tmp_*"),
        *(path / "objects").glob("tmp_objdir-*"),
        *(path / "objects").glob("incoming-*"),
    ]
    for item in stale:
        log.debug("removing %s left by an interrupted git", item)
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


def _head(git_dir: Path) -> str | None:
    """The text of ``git_dir``'s HEAD file, or None when it cannot be read."""
    try:
        return (git_dir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _looks_like_git_dir(path: Path) -> bool:
    """Git's own test of a repository directory (``is_git_directory``: ``objects/``, ``refs/`` and a
    ``HEAD`` holding a ref or a sha), without starting a git: this runs before every clone from the cache."""
    if not (path / "objects").is_dir() or not (path / "refs").is_dir():
        return False
    head = _head(path)
    return head is not None and (head.startswith("ref: refs/") or bool(_HEX.fullmatch(head)))


def _head_resolves(path: Path) -> bool:
    """``git rev-parse --verify HEAD`` succeeds: HEAD names a sha, or a branch that exists (read from the
    files, which a warm fetch of the default branch asks after every fetch; git itself for reftables)."""
    head = _head(path)
    if head is None:
        return False
    if (path / "reftable").exists() or not head.startswith("ref: "):
        return git_output(["--git-dir", str(path), "rev-parse", "--verify", "--quiet", "HEAD"]) is not None
    ref = head[len("ref: "):]
    if (path / ref).is_file():
        return True
    try:
        packed = (path / "packed-refs").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(line.endswith(" " + ref) for line in packed.splitlines() if not line.startswith(("#", "^")))


def has_commit(git_dir: Path, sha: str) -> bool:
    """True if the repository at ``git_dir`` holds commit ``sha`` (a full sha) - no network."""
    found = git_output(["--git-dir", str(git_dir), "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}"])
    return found is not None and found.lower() == sha.lower()


def _create(path: Path, url: str, env: Mapping[str, str], failure: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")

    def clone() -> None:
        shutil.rmtree(tmp, ignore_errors=True)
        git(["clone", "--bare", "--quiet", "--", url, str(tmp)], env=env, what=failure)

    try:
        retrying(clone, what=failure)
        git(["--git-dir", str(tmp), "config", "--replace-all", "remote.origin.fetch", _FETCH_REFSPECS[0]])
        git(["--git-dir", str(tmp), "config", "--add", "remote.origin.fetch", _FETCH_REFSPECS[1]])
        # Objects reachable only from old fetches must stay for clones that borrowed them.
        git(["--git-dir", str(tmp), "config", "gc.pruneExpire", "never"])
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def update_mirror(
    path: Path,
    url: str,
    env: Mapping[str, str],
    *,
    branch: str | None = None,
    commit_sha: str | None = None,
    failure: str = "fetch",
) -> bool:
    """Bring the mirror up to date for what is asked; returns False when no network was needed.

    - ``commit_sha`` already present: nothing is fetched.
    - ``branch``: only that branch is fetched (the server just confirms it when nothing is new).
    - neither: all branches and tags are fetched, pruning deleted branches.
    - a ``commit_sha`` that no branch reaches is fetched by sha and kept under :data:`PIN_PREFIX`.
    ``url`` must be credential-free; credentials travel in ``env``.
    """
    if commit_sha and path.exists() and has_commit(path, commit_sha):
        prove_access(path, url, env, failure)
        log.info("git cache hit: %s is already in %s", commit_sha, path.name)
        return False
    created = False
    if not path.exists():
        log.info("creating the git cache %s", path)
        _create(path, url, env, failure)
        created = True
    gd = ["--git-dir", str(path)]
    if not created:
        everything = ["--prune", *_FETCH_REFSPECS]
        if branch and not commit_sha:
            try:
                _fetch(gd, [f"+refs/heads/{branch}:refs/heads/{branch}"], env, failure)
            except GitCommandError as exc:
                if exc.kind != "ref":
                    raise
                _fetch(gd, everything, env, failure)  # not a branch: perhaps a tag
        else:
            _fetch(gd, everything, env, failure)
            if not branch and not _head_resolves(path):
                _follow_default_branch(gd, env, failure)
    if commit_sha and not has_commit(path, commit_sha):
        pin = f"{commit_sha}:{PIN_PREFIX}{commit_sha}"
        _fetch(gd, [pin], env, failure)
    _remember(path, url, env)  # the server just served these credentials
    return True


def _access_key(url: str, env: Mapping[str, str]) -> str:
    """A hash of the URL and of everything that decides who git says it is (never the secrets themselves)."""
    parts = [clean_url(url).rstrip("/")]
    for name in sorted(env):
        if name.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_", "GIT_CONFIG_PARAMETERS")) or name in {
            "GIT_CONFIG_COUNT",
            "GIT_SSH_COMMAND",
            "GIT_SSH",
            "GIT_ASKPASS",
        }:
            parts.append(f"{name}={env[name]}")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _needs_credentials(url: str, env: Mapping[str, str]) -> bool:
    """True when this contact carried a caller's own credentials (an auth header, or ssh's identity)."""
    if transport(url) == "ssh":
        return True
    return any(
        name.startswith("GIT_CONFIG_KEY_") and value.lower().endswith(".extraheader")
        for name, value in env.items()
    )


def _remember(path: Path, url: str, env: Mapping[str, str]) -> None:
    _proven[_access_key(url, env)] = time.monotonic()
    if transport(url) != "file":
        # What the last contact with the server needed: it decides whether an offline hit may be served.
        access = "credentials" if _needs_credentials(url, env) else "anonymous"
        with contextlib.suppress(OSError):
            (path / _ACCESS_FILE).write_text(access + "\n")


def forget_proofs() -> None:
    """Forget every remembered proof of access (the next cache hit asks the server again)."""
    _proven.clear()


def prove_access(path: Path, url: str, env: Mapping[str, str], failure: str = "fetch") -> None:
    """Raise unless the caller (``env``'s credentials) may read ``url`` now; see the module's docstring.

    ``file://`` and local paths: the path must be readable (a path that is gone, e.g. an unmounted disk,
    counts as offline). Proven within :data:`PROOF_TTL` seconds in this process: nothing to do. Otherwise
    ``git ls-remote URL HEAD`` with ``env``; when the server cannot be reached, the mirror is served only
    if its last contact needed no credentials.
    """
    local = local_path(url)
    if local is not None:
        _prove_local(local, url, failure)  # a stat: cheaper than remembering
        return
    key = _access_key(url, env)
    last = _proven.get(key)
    if last is not None and time.monotonic() - last < PROOF_TTL:
        log.debug("access to %s was proven %.0fs ago", url, time.monotonic() - last)
        return
    try:
        anonymous = (path / _ACCESS_FILE).read_text().strip() == "anonymous"
    except OSError:
        anonymous = False
    log.info("checking access to %s before using the git cache", url)

    def probe() -> None:
        git(["ls-remote", "--quiet", url, "HEAD"], env=env, what=failure, timeout=PROOF_TIMEOUT)

    try:
        if anonymous:  # no retries: being offline is then no error, and must be quick
            probe()
        else:
            retrying(probe, what=failure)
    except GitCommandError as exc:
        if exc.kind not in _OFFLINE_KINDS:
            raise
        if anonymous:
            log.warning(
                "%s cannot be reached (%s); using the cached copy, which its server gave without credentials",
                url,
                exc.message,
            )
            return
        exc.hint = (
            f"{exc.hint}; the cached copy of this repository is only used once the server accepts the "
            "credentials, and it could not be reached"
        )
        raise
    _remember(path, url, env)


def _prove_local(local: str, url: str, failure: str) -> None:
    try:
        os.stat(local)
    except FileNotFoundError:
        log.warning("%s is not there (an unmounted disk?); using the cached copy", url)
        return
    except OSError as exc:
        raise GitError(
            f"{failure}: cannot read {local}: {exc.strerror}",
            hint="the cached copy is only used when the repository itself can be read: check its permissions",
        ) from exc
    if not os.access(local, os.R_OK | os.X_OK):
        raise GitError(
            f"{failure}: cannot read {local}: permission denied",
            hint="the cached copy is only used when the repository itself can be read: check its permissions",
        )


def _follow_default_branch(gd: list[str], env: Mapping[str, str], failure: str) -> None:
    """The default branch was renamed or deleted (pruned): point HEAD at the server's default branch."""
    out = retrying(
        lambda: git([*gd, "ls-remote", "--symref", "origin", "HEAD"], env=env, what=failure), what=failure
    ).stdout
    for line in out.splitlines():
        if line.startswith("ref: ") and line.endswith("\tHEAD"):
            target = line[len("ref: ") : -len("\tHEAD")]
            log.info("the default branch is now %s", target.removeprefix("refs/heads/"))
            git([*gd, "symbolic-ref", "HEAD", target])
            return


def _fetch(gd: list[str], refspecs: list[str], env: Mapping[str, str], failure: str) -> None:
    retrying(lambda: git([*gd, "fetch", "--quiet", "origin", *refspecs], env=env, what=failure), what=failure)


def fetch_from_mirror(workdir: Path, mirror: Path, refspecs: list[str]) -> None:
    """Fetch ``refspecs`` from the mirror into a working clone (local disk only)."""
    git(
        ["-c", "uploadpack.allowAnySHA1InWant=true", "fetch", "--quiet", "--no-tags", str(mirror), *refspecs],
        cwd=workdir,
    )
