"""Git credentials: format them by host kind as Prefect does, and hand them to git without leaking them.

Prefect embeds the token in the clone URL (``https://oauth2:TOKEN@gitlab.com/...``), so it shows in ``ps``,
in ``.git/config`` and in error messages. flowdeck computes the same ``user:password`` pair, but gives it to
git as an ``Authorization: Basic`` header through ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/
``GIT_CONFIG_VALUE_n`` environment variables, scoped with ``http.<scheme>://<host>/.extraHeader`` to the
repository's own host. Submodules on that host authenticate; any other host never sees the token. Nothing
is written to disk and nothing reaches argv.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from flowdeck.errors import StepInputError
from flowdeck.redact import register_secret

__all__ = [
    "GitCredentials",
    "append_config",
    "clean_url",
    "credentials_from_inputs",
    "format_credentials",
    "git_env",
    "host_base",
    "local_path",
    "split_userinfo",
    "transport",
]


@dataclass(frozen=True)
class GitCredentials:
    """A ``user:password`` pair for HTTP Basic auth, already URL-encoded as Prefect would embed it."""

    userinfo: str

    def header(self) -> str:
        """The ``Authorization`` header value git sends (the userinfo decoded, then base64)."""
        user, _, password = self.userinfo.partition(":")
        raw = f"{unquote(user)}:{unquote(password)}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:  # never show the secret, even in a debugger or a traceback
        return "GitCredentials(********)"


def _unwrap(value: Any) -> Any:
    """Accept ``SecretStr``-like objects and ``{"value": ...}`` wrappers from secret blocks."""
    getter = getattr(value, "get_secret_value", None)
    if callable(getter):
        return getter()
    if isinstance(value, Mapping) and set(value) == {"value"}:
        return value["value"]
    return value


def split_userinfo(url: str) -> tuple[str, str | None]:
    """Remove ``user[:password]@`` from a URL; returns the clean URL and the raw userinfo (or None)."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    return urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment)), userinfo


# git's ``<transport>::<address>`` form and ``<scheme>://`` URLs.
_HELPER = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)::")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def transport(repository: str) -> str:
    """The git transport ``repository`` would use, by git's names (``file`` for a local path)."""
    helper = _HELPER.match(repository)
    if helper:
        return helper.group(1).lower()
    scheme = _SCHEME.match(repository)
    if scheme:
        name = scheme.group(1).lower()
        return "ssh" if name in {"git+ssh", "ssh+git"} else name
    head, colon, _ = repository.partition(":")
    # git's rule: a colon before any slash makes it scp-like ssh (``git@host:org/repo``).
    return "ssh" if colon and "/" not in head else "file"


def local_path(repository: str) -> str | None:
    """The directory of a ``file``-transport repository (``file://`` URL or path); None for other ones."""
    if transport(repository) != "file":
        return None
    if repository.lower().startswith("file://"):
        return unquote(urlsplit(repository).path)
    return repository


def clean_url(url: str) -> str:
    """The URL without credentials (what is stored, logged and compared)."""
    return split_userinfo(url)[0]


def host_base(url: str) -> str | None:
    """``scheme://host[:port]/`` of an http(s) URL, the scope of the auth header; None for other URLs."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}/"


def credentials_from_inputs(
    access_token: str | None, credentials: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Prefect's rule: a token becomes ``{"access_token": token}``; both together are an error."""
    if access_token is not None and credentials is not None:
        raise StepInputError(
            "Please provide either an access token or credentials but not both.",
            hint="keep `access_token` or `credentials`, not both",
        )
    if access_token is not None:
        return {"access_token": access_token}
    if credentials is None:
        return None
    if not isinstance(credentials, Mapping):
        raise StepInputError(
            f"`credentials` must be a mapping, got {type(credentials).__name__}",
            hint='use `credentials: "{{ prefect.blocks.github-credentials.<name> }}"` or a mapping '
            "with `token` (and optionally `username`)",
        )
    creds = {k: _unwrap(v) for k, v in credentials.items()}
    if creds.get("username") and not (
        creds.get("access_token") or creds.get("password") or creds.get("token")
    ):
        raise StepInputError(
            "If a username is provided, an access token or password must also be provided.",
            hint="add `token` or `password` next to `username` in the credentials",
        )
    return creds


def _require_token(creds: Mapping[str, Any]) -> str:
    token = creds.get("access_token") or creds.get("token") or creds.get("password")
    if not token:
        raise StepInputError(
            "Please provide a `token` or `password` in your Credentials block to clone a repo.",
            hint="set `token` (or `password`) in the credentials block",
        )
    return str(token)


def _user_pass(token: str) -> str:
    user, _, password = token.partition(":")
    return f"{quote(user, safe='')}:{quote(password, safe='')}"


def format_credentials(url: str, creds: Mapping[str, Any] | None) -> GitCredentials | None:
    """Prefect's credential formatting for ``url``; None when there is nothing to send.

    With ``username``: ``user:token``. Otherwise by host: ``bitbucketserver`` needs ``user:token``;
    ``bitbucket`` uses ``x-token-auth:<token>`` (or a ``user:password`` token as is); ``gitlab`` uses
    ``oauth2:<token>`` (or a ``user:token`` deploy token as is); anything else sends the plain token as the
    user name. Every part is URL-encoded. Credentials are only ever used for ``https`` URLs, like Prefect.
    """
    if not creds:
        return None
    token = _require_token(creds)
    register_secret(token)
    if creds.get("password"):
        register_secret(creds["password"])
    if urlsplit(url).scheme != "https":
        return None
    netloc = urlsplit(url).netloc.rpartition("@")[2].lower()
    username = creds.get("username")
    if username:
        userinfo = f"{quote(str(username), safe='')}:{quote(token, safe='')}"
    elif "bitbucketserver" in netloc:
        if ":" not in token:
            raise StepInputError(
                "Please prefix your BitBucket Server access token with a username, e.g. 'username:token'.",
                hint="set `username` in the credentials or give the token as `username:token`",
            )
        userinfo = _user_pass(token)
    elif "bitbucket" in netloc:
        if token.startswith("x-token-auth:"):
            userinfo = "x-token-auth:" + quote(token.removeprefix("x-token-auth:"), safe="")
        elif ":" in token:
            userinfo = _user_pass(token)
        else:
            userinfo = "x-token-auth:" + quote(token, safe="")
    elif "gitlab" in netloc:
        if token.startswith("oauth2:"):
            userinfo = "oauth2:" + quote(token.removeprefix("oauth2:"), safe="")
        elif ":" in token:
            userinfo = _user_pass(token)
        else:
            userinfo = "oauth2:" + quote(token, safe="")
    else:
        userinfo = quote(token, safe="")
    result = GitCredentials(userinfo)
    register_secret(userinfo)
    register_secret(result.header())
    register_secret(result.header().removeprefix("Basic "))
    return result


# Variables that could make git print or store what we give it, or wait for a human.
_DROPPED_ENV = ("GIT_ASKPASS", "SSH_ASKPASS", "GIT_TRACE_REDACT")


def git_env(
    url: str | None = None,
    credentials: GitCredentials | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a git subprocess: never prompts, and carries ``credentials`` for ``url``'s host.

    Existing ``GIT_CONFIG_COUNT`` entries are kept and ours are appended.
    """
    env = dict(os.environ if base is None else base)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GCM_INTERACTIVE", "never")
    if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
        # ssh asks for passphrases and host keys on the terminal; a worker has nobody to answer.
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    entries: list[tuple[str, str]] = []
    scope = host_base(url) if url else None
    if credentials is not None and scope is not None:
        for name in _DROPPED_ENV:
            env.pop(name, None)
        # An empty value resets the list of helpers, so no helper stores or overrides our token.
        entries.append(("credential.helper", ""))
        entries.append(("core.askPass", ""))
        entries.append((f"http.{scope}.extraHeader", f"Authorization: {credentials.header()}"))
    append_config(env, entries)
    return env


def append_config(env: dict[str, str], entries: Sequence[tuple[str, str]]) -> None:
    """Add git config ``entries`` to ``env`` through ``GIT_CONFIG_COUNT``, after any already there."""
    if not entries:
        return
    try:
        count = int(env.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        count = 0
    for offset, (key, value) in enumerate(entries):
        env[f"GIT_CONFIG_KEY_{count + offset}"] = key
        env[f"GIT_CONFIG_VALUE_{count + offset}"] = value
    env["GIT_CONFIG_COUNT"] = str(count + len(entries))
