"""``git_clone``'s inputs: the destination's name (Prefect's rule), the checks made before anything runs, and
credentials written into an http(s) URL (taken out of it and registered as secrets)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from flowdeck.errors import FlowdeckWarning, StepInputError
from flowdeck.gitauth import GitCredentials, split_userinfo, transport
from flowdeck.gitrun import ALLOWED_PROTOCOLS
from flowdeck.redact import register_secret

__all__ = ["check_args", "destination_name", "url_credentials"]

_SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")


def destination_name(repository: str, branch: str | None, clone_directory_name: str | None) -> str:
    """Prefect's naming: ``clone_directory_name``, else the last URL segment without any ``.git``
    (``str.replace``, so ``my.github-repo`` loses it too), plus ``-<branch>`` with ``/`` turned into ``-``."""
    if clone_directory_name:
        return clone_directory_name
    path = urlsplit(repository).path if "://" in repository else repository
    name = path.rstrip("/").split("/")[-1].replace(".git", "")
    if branch:
        name += "-" + branch.replace("/", "-")
    return name


def check_args(
    repository: str, branch: str | None, commit_sha: str | None, directories: Sequence[str] | None
) -> None:
    """Refuse, before anything runs, what Prefect refuses and what flowdeck will not run (option-like
    branches, unsafe git transports, abbreviated shas); warn about option-like directories."""
    for entry in directories or ():
        if not isinstance(entry, str) or not entry:
            raise StepInputError(
                "`directories` must be a list of directory paths", hint="check `directories`"
            )
        if entry.startswith("--"):
            warnings.warn(
                FlowdeckWarning(
                    f"directory {entry!r} in `directories` starts with '--'; it is a path, not an option",
                    hint="remove the leading dashes if they are a typo",
                ),
                stacklevel=3,
            )
    if not isinstance(repository, str) or not repository.strip():
        raise StepInputError("`repository` must be a repository URL", hint="set `repository: https://...`")
    kind = transport(repository.strip())
    if kind not in ALLOWED_PROTOCOLS:
        # Only the transport's name is shown: the rest of such a "URL" may be a command or a secret.
        raise StepInputError(
            f"`repository` uses the git transport '{kind}', which flowdeck does not run: it can wait for "
            "input forever or run commands",
            hint="use an https, http, ssh (git@host:org/repo.git), git:// or file:// URL, or a local path",
        )
    if branch and commit_sha:
        raise StepInputError(
            "Cannot provide both a branch and a commit SHA. Please provide only one.",
            hint="keep `commit_sha` to pin the code, or `branch` to follow a branch",
        )
    if branch is not None and branch.startswith("-"):
        raise StepInputError("Branch names cannot start with '-'.", hint="check `branch`")
    if commit_sha is not None:
        if not _SHA.match(commit_sha):
            raise StepInputError(
                f"Invalid commit SHA {commit_sha!r}: expected 40 (or 64) hexadecimal characters",
                hint="use the full sha printed by `git rev-parse HEAD`",
            )
        if len(commit_sha) not in (40, 64):
            raise StepInputError(
                f"commit SHA {commit_sha!r} is abbreviated: a server can only be asked for a full sha",
                hint=f"use the full sha printed by `git rev-parse {commit_sha}`",
            )


def url_credentials(repository: str) -> tuple[str, GitCredentials | None]:
    """Strip ``user:token@`` from an http(s) URL; those credentials are used as if given separately."""
    if urlsplit(repository).scheme not in {"http", "https"}:
        return repository, None
    url, userinfo = split_userinfo(repository)
    if userinfo is None:
        return url, None
    user, sep, password = userinfo.partition(":")
    if sep:
        register_secret(unquote(password))
        register_secret(password)
    elif len(user) >= 8:  # a bare `TOKEN@`; short names such as `git@` are not secrets
        register_secret(unquote(user))
    register_secret(userinfo)
    return url, GitCredentials(userinfo)
