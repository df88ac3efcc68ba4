"""The ``git_clone`` pull step: Prefect's arguments and output, without leaking tokens, with a worker cache.

Compared with ``prefect.deployments.steps.git_clone``:

- the token never appears in argv, ``.git/config``, the stored remote URL, logs or errors (see
  :mod:`flowdeck.gitauth`), and git never waits for a password prompt;
- ``commit_sha`` fetches just that commit (``--depth 1``), falling back to a full fetch only when the
  server refuses;
- re-running updates the clone in place, and a pinned commit already present needs no network;
- a worker-wide cache of bare mirrors (:mod:`flowdeck.gitcache`) makes repeated clones local, and
  never serves a caller what the server would refuse them;
- only the https, http, ssh, git and file transports run (never ``fd::``/``ext::``), and no git child
  outlives the step (:mod:`flowdeck.gitrun`);
- transient network failures are retried with bounded backoff, and errors carry a hint.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flowdeck.errors import GitError
from flowdeck.gitauth import (
    credentials_from_inputs,
    format_credentials,
    git_env,
    transport,
)
from flowdeck.gitcache import fetch_from_mirror, has_commit, locked_mirror, update_mirror
from flowdeck.gitrun import GitCommandError, git, git_output, retrying
from flowdeck.locks import held
from flowdeck.paths import cache_enabled
from flowdeck.redact import register_secret
from flowdeck.steps.gitargs import check_args, destination_name, url_credentials
from flowdeck.steps.gitmirror import clone_while_updating, local_clone, point_origin

__all__ = ["destination_name", "git_clone", "transport"]

log = logging.getLogger("flowdeck.steps.git")

@dataclass
class _Job:
    """Everything one clone needs, resolved once."""

    url: str
    env: dict[str, str]
    branch: str | None
    commit_sha: str | None
    directories: list[str]
    submodules: bool
    cache: bool
    failure: str


def git_clone(
    repository: str,
    branch: str | None = None,
    commit_sha: str | None = None,
    include_submodules: bool = False,
    access_token: str | None = None,
    credentials: Mapping[str, Any] | None = None,
    directories: Sequence[str] | str | None = None,
    clone_directory_name: str | None = None,
    cache: bool = True,
) -> dict[str, str]:
    """Clone ``repository`` into the working directory and return ``{"directory": <relative path>}``.

    Args:
        repository: the URL (https, http, ssh, ``git@host:path``, git:// or a local path).
        branch: a branch (or tag) to check out; the directory gets a ``-<branch>`` suffix.
        commit_sha: a full commit sha to check out exactly (detached HEAD).
        include_submodules: also check out submodules (credentials apply on the same host only).
        access_token: a token (not together with ``credentials``).
        credentials: a mapping with ``token`` / ``access_token`` / ``password`` and optional ``username``.
        directories: sparse checkout of only these directories.
        clone_directory_name: the directory name to use instead of the derived one.
        cache: use the worker's mirror cache (also off with ``FLOWDECK_NO_CACHE=1`` / ``--no-cache``).
    """
    if access_token:
        register_secret(access_token)
    if isinstance(credentials, Mapping):
        for key in ("token", "access_token", "password"):
            if credentials.get(key):
                register_secret(credentials[key])
    creds = credentials_from_inputs(access_token, credentials)
    dirs = [directories] if isinstance(directories, str) else list(directories or [])
    check_args(repository, branch, commit_sha, dirs)
    url, from_url = url_credentials(repository.strip())
    formatted = format_credentials(url, creds) if creds else from_url
    if creds and formatted is None and urlsplit(url).scheme != "https":
        log.warning("credentials are only sent over https; %s is cloned without them", url)
    job = _Job(
        url=url,
        env=git_env(url, formatted),
        branch=branch or None,
        commit_sha=commit_sha.lower() if commit_sha else None,
        directories=dirs,
        submodules=bool(include_submodules),
        cache=bool(cache) and cache_enabled(),
        failure=f"Failed to clone repository '{url}'",
    )
    cwd = Path.cwd()
    dest = cwd / destination_name(url, job.branch, clone_directory_name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Concurrent pulls into the same place take turns (Prefect uses the same sibling lock file).
    try:
        with held(str(dest) + ".lock", wait=float("inf")):
            # Holding the lock, any temporary clone for this destination belongs to a killed run.
            for leftover in dest.parent.glob(f".{dest.name}.flowdeck-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            if (dest / ".git").exists():
                _update_or_reclone(dest, job)
            else:
                if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
                    raise GitError(
                        f"{job.failure}: {dest} exists and is not a git clone",
                        hint="remove it, or set `clone_directory_name` to clone elsewhere",
                    )
                _fresh_clone(dest, job)
    except GitCommandError as exc:
        if exc.kind == "auth":
            # git's own words ("could not read Username") hide what happened; say it plainly.
            exc.hint = (
                "authentication failed: the server refused the credentials given; check the token, that it "
                "can read this repository, and its form for the host (see `username`)"
                if formatted is not None
                else "authentication failed: this repository needs credentials; set `access_token` or "
                "`credentials`"
            )
        raise
    return {"directory": os.path.relpath(dest, cwd)}


def _what(job: _Job) -> str:
    return job.commit_sha or (f"branch {job.branch}" if job.branch else "the default branch")


def _fresh_clone(dest: Path, job: _Job) -> None:
    log.info(
        "Cloning %s (%s) into %s%s", job.url, _what(job), dest.name, " using the cache" if job.cache else ""
    )
    tmp = dest.parent / f".{dest.name}.flowdeck-{uuid.uuid4().hex[:8]}"
    try:
        if job.cache:
            _clone_via_cache(tmp, job)
        elif job.commit_sha:
            git(["init", "--quiet", str(tmp)])
            git(["remote", "add", "origin", job.url], cwd=tmp)
            _sparse(tmp, job)
            _fetch_sha(tmp, job)
            git(["checkout", "--quiet", "--force", "--detach", job.commit_sha], cwd=tmp)
        else:
            args = ["clone", "--quiet", "--depth", "1"]
            if job.branch:
                args += ["--branch", job.branch]
            if job.directories:
                args.append("--sparse")

            def clone() -> None:
                shutil.rmtree(tmp, ignore_errors=True)
                git([*args, "--", job.url, str(tmp)], env=job.env, what=job.failure)

            retrying(clone, what=job.failure)
            _sparse(tmp, job)
        _submodules(tmp, job)
        if dest.is_dir():
            dest.rmdir()  # an empty directory was there; rename cannot replace it on every platform
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _clone_via_cache(tmp: Path, job: _Job) -> None:
    with locked_mirror(job.url) as mirror:

        def update() -> None:
            update_mirror(
                mirror, job.url, job.env, branch=job.branch, commit_sha=job.commit_sha, failure=job.failure
            )

        # A warm cache: write the files while the server is asked what changed (sparse checkouts, rare,
        # keep the plain order). When the server had something new, the updated mirror is cloned.
        if mirror.exists() and not job.directories:
            if clone_while_updating(mirror, tmp, update, lambda: _clone_mirror(mirror, tmp, job)):
                return
        else:
            update()
        local_clone(mirror, tmp)
    _check_out_clone(tmp, job)


def _clone_mirror(mirror: Path, tmp: Path, job: _Job) -> None:
    """Clone the mirror into ``tmp`` and check out what ``job`` asks for (never a sparse checkout: those
    clone after the update, through :func:`_check_out_clone`)."""
    if job.commit_sha or job.branch:
        local_clone(mirror, tmp)
        _check_out_clone(tmp, job)
        return
    local_clone(mirror, tmp, checkout=True)  # the default branch: the clone checks it out
    point_origin(tmp, job.url)


def _check_out_clone(tmp: Path, job: _Job) -> None:
    """Point a new clone of the mirror at the real repository and check out what ``job`` asks for."""
    # The clone must point at the real repository, never at the cache.
    point_origin(tmp, job.url)
    if job.directories:  # a new clone of the cache is never sparse: nothing to turn off otherwise
        _sparse(tmp, job)
    if job.commit_sha:
        git(["checkout", "--quiet", "--force", "--detach", job.commit_sha], cwd=tmp)
    elif job.branch:
        if git_output(["rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{job.branch}"], cwd=tmp):
            git(
                ["checkout", "--quiet", "--force", "-B", job.branch, f"refs/remotes/origin/{job.branch}"],
                cwd=tmp,
            )
        elif git_output(["rev-parse", "--verify", "--quiet", f"refs/tags/{job.branch}"], cwd=tmp):
            git(["checkout", "--quiet", "--force", "--detach", f"refs/tags/{job.branch}"], cwd=tmp)
        else:
            raise GitError(
                f"{job.failure}: branch {job.branch!r} was not found on the remote", hint="check `branch`"
            )
    else:
        git(["checkout", "--quiet", "--force"], cwd=tmp)


def _sparse(repo: Path, job: _Job) -> None:
    if job.directories:
        git(["sparse-checkout", "set", "--", *job.directories], cwd=repo)
    elif git_output(["config", "--get", "core.sparseCheckout"], cwd=repo) == "true":
        git(["sparse-checkout", "disable"], cwd=repo)


def _submodules(repo: Path, job: _Job) -> None:
    if not job.submodules:
        return
    retrying(
        lambda: git(
            ["submodule", "update", "--quiet", "--init", "--recursive", "--force"],
            cwd=repo,
            env=job.env,
            what=f"{job.failure} (submodules)",
        ),
        what=f"{job.failure} (submodules)",
    )


def _fetch_sha(repo: Path, job: _Job) -> None:
    """Fetch just ``commit_sha`` (depth 1); if the server refuses a sha request, fetch the branches."""
    assert job.commit_sha is not None
    sha = job.commit_sha
    try:
        retrying(
            lambda: git(
                ["fetch", "--quiet", "--depth", "1", "origin", sha], cwd=repo, env=job.env, what=job.failure
            ),
            what=job.failure,
        )
        return
    except GitCommandError as exc:
        if exc.is_network:
            raise
        log.info("the server refused to send %s alone (%s); fetching the branches instead", sha, exc.message)
    shallow = git_output(["rev-parse", "--is-shallow-repository"], cwd=repo) == "true"
    args = ["fetch", "--quiet", *(["--unshallow"] if shallow else []), "origin"]
    retrying(lambda: git(args, cwd=repo, env=job.env, what=job.failure), what=job.failure)
    if not has_commit(repo / ".git", sha):
        raise GitError(
            f"{job.failure}: commit {sha} was not found on the remote",
            hint="check `commit_sha`: it must be a full sha of a commit that was pushed",
        )


def _update_or_reclone(dest: Path, job: _Job) -> None:
    origin = git_output(["config", "--get", "remote.origin.url"], cwd=dest)
    existing, leaked = url_credentials(origin) if origin else ("", None)
    if existing.rstrip("/") != job.url.rstrip("/"):
        raise GitError(
            f"The existing repository at {dest} does not match the configured repository {job.url}"
            + (f" (its origin is {existing})" if existing else ""),
            hint="remove that directory, or set `clone_directory_name` to clone elsewhere",
        )
    if leaked is not None:
        # A clone made by Prefect stores the token in its origin URL; take it out.
        git(["remote", "set-url", "origin", job.url], cwd=dest)
    try:
        _update(dest, job)
    except GitCommandError as exc:
        if exc.is_network:
            raise
        log.warning("updating %s failed (%s); cloning it again", dest.name, exc.message)
        shutil.rmtree(dest)
        _fresh_clone(dest, job)


def _update(dest: Path, job: _Job) -> None:
    log.info("Updating the existing clone %s (%s)", dest.name, _what(job))
    _sparse(dest, job)
    if job.commit_sha:
        if has_commit(dest / ".git", job.commit_sha):
            log.info("%s is already in %s; no fetch needed", job.commit_sha, dest.name)
        elif job.cache:
            with locked_mirror(job.url) as mirror:
                update_mirror(mirror, job.url, job.env, commit_sha=job.commit_sha, failure=job.failure)
                fetch_from_mirror(dest, mirror, [job.commit_sha])
        else:
            _fetch_sha(dest, job)
        git(["checkout", "--quiet", "--force", "--detach", job.commit_sha], cwd=dest)
    else:
        wanted = job.branch or "HEAD"
        if job.cache:
            with locked_mirror(job.url) as mirror:
                update_mirror(mirror, job.url, job.env, branch=job.branch, failure=job.failure)
                fetch_from_mirror(dest, mirror, [wanted])
        else:
            retrying(
                lambda: git(
                    ["fetch", "--quiet", "--no-tags", "--depth", "1", "origin", wanted],
                    cwd=dest,
                    env=job.env,
                    what=job.failure,
                ),
                what=job.failure,
            )
        _checkout_fetched(dest, job.branch)
    _submodules(dest, job)


def _checkout_fetched(dest: Path, branch: str | None) -> None:
    """Check out FETCH_HEAD: as ``branch`` if it is a branch, detached if it is a tag."""
    first = (dest / ".git" / "FETCH_HEAD").read_text(errors="replace").split("\n", 1)[0]
    if branch is None:
        current = git_output(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd=dest)
        if current:
            git(["checkout", "--quiet", "--force", "-B", current, "FETCH_HEAD"], cwd=dest)
        else:
            git(["checkout", "--quiet", "--force", "--detach", "FETCH_HEAD"], cwd=dest)
    elif f"\tbranch '{branch}' of " in first:
        git(["update-ref", f"refs/remotes/origin/{branch}", "FETCH_HEAD"], cwd=dest)
        git(["checkout", "--quiet", "--force", "-B", branch, "FETCH_HEAD"], cwd=dest)
    else:
        git(["checkout", "--quiet", "--force", "--detach", "FETCH_HEAD"], cwd=dest)
