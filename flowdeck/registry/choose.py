"""The one place that decides which registry flowdeck talks to.

In order, the first that is set wins:

1. ``--api URL`` on the command line (:func:`use_api`);
2. ``FLOWDECK_API_URL`` (with ``FLOWDECK_API_AUTH_STRING`` / ``FLOWDECK_API_KEY``);
3. ``PREFECT_API_URL`` (with ``PREFECT_API_AUTH_STRING`` / ``PREFECT_API_KEY``), as Prefect's own client;
4. otherwise flowdeck's embedded store under ``FLOWDECK_HOME``, exactly as without a server.

Credentials follow the URL's family: flowdeck's own variables override Prefect's one by one, so a CI job
can point flowdeck elsewhere without touching what ``prefect`` uses. So do Prefect's TLS settings,
``PREFECT_API_SSL_CERT_FILE`` (default ``SSL_CERT_FILE``; else certifi's bundle) and
``PREFECT_API_TLS_INSECURE_SKIP_VERIFY``, and ``PREFECT_CLIENT_CUSTOM_HEADERS``,
``PREFECT_API_REQUEST_TIMEOUT`` and ``PREFECT_CLIENT_RETRY_EXTRA_CODES``.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

from flowdeck.errors import RegistryError, SettingWarning

if TYPE_CHECKING:
    from flowdeck.registry.base import Registry

__all__ = ["current", "reset", "server_config", "use_api"]

_api_override: str | None = None
_cached: tuple[tuple[object, str | None], Registry] | None = None


def use_api(url: str | None) -> None:
    """Use the server at ``url`` for the rest of this process (``--api URL``); None undoes it."""
    global _api_override
    _api_override = url or None


def reset() -> None:
    """Forget the ``--api`` override and the cached registry (tests)."""
    global _api_override, _cached
    _api_override = None
    _cached = None


def server_config(environ: Mapping[str, str] | None = None) -> object | None:
    """The :class:`~flowdeck.registry.server.client.ServerConfig` chosen, or None for the embedded store."""
    env = os.environ if environ is None else environ

    def pick(name: str) -> str | None:
        return env.get(f"FLOWDECK_{name}") or env.get(f"PREFECT_{name}") or None

    if _api_override:
        url, source = _api_override, "--api"
    elif env.get("FLOWDECK_API_URL"):
        url, source = env["FLOWDECK_API_URL"], "FLOWDECK_API_URL"
    elif env.get("PREFECT_API_URL"):
        url, source = env["PREFECT_API_URL"], "PREFECT_API_URL"
    else:
        return None
    from flowdeck.registry.server.client import ServerConfig

    retries = pick("CLIENT_MAX_RETRIES")
    if retries is not None and not retries.strip().isdigit():
        name = _which(env, "CLIENT_MAX_RETRIES")
        raise RegistryError(f"{name} must be a whole number of retries, not {retries!r}",
                            hint=f"set {name}=5 (or unset it for the default, 10)")
    skip = pick("API_TLS_INSECURE_SKIP_VERIFY")
    if skip is not None and skip.strip().lower() not in _TRUE | _FALSE:
        name = _which(env, "API_TLS_INSECURE_SKIP_VERIFY")
        raise RegistryError(f"{name} must be true or false, not {skip!r}", hint=f"set {name}=true, or unset it")
    auth, key = pick("API_AUTH_STRING"), pick("API_KEY")
    return ServerConfig(
        url=url,
        # A value read from a file (a Kubernetes secret, say) often ends in a newline that is not part of it.
        auth_string=auth.strip("\r\n") if auth else None,
        api_key=key.strip() if key else None,
        source=source,
        max_retries=10 if retries is None else int(retries),
        ssl_cert_file=pick("API_SSL_CERT_FILE") or env.get("SSL_CERT_FILE") or None,
        tls_insecure_skip_verify=skip is not None and skip.strip().lower() in _TRUE,
        custom_headers=_custom_headers(pick("CLIENT_CUSTOM_HEADERS"), _which(env, "CLIENT_CUSTOM_HEADERS")),
        request_timeout=_timeout(pick("API_REQUEST_TIMEOUT"), _which(env, "API_REQUEST_TIMEOUT")),
        retry_extra_codes=_codes(pick("CLIENT_RETRY_EXTRA_CODES"), _which(env, "CLIENT_RETRY_EXTRA_CODES")),
    )


def _codes(raw: str | None, name: str) -> frozenset[int]:
    """``PREFECT_CLIENT_RETRY_EXTRA_CODES``: HTTP statuses, comma-separated (``500,504``)."""
    if raw is None or not raw.strip():
        return frozenset()
    codes = set()
    for part in raw.replace(" ", "").split(","):
        if not part.isdigit() or not 400 <= int(part) <= 599:
            raise RegistryError(f"{name} must list HTTP error statuses (400 to 599), comma-separated, not {raw!r}",
                                hint=f"set {name}=500,504, or unset it")
        codes.add(int(part))
    return frozenset(codes)


#: Headers the client sets itself, which Prefect's client also refuses to take from its custom headers.
_PROTECTED = frozenset({"user-agent", "prefect-csrf-token", "prefect-csrf-client"})
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_warned: set[str] = set()  # settings warnings already given in this process


def _custom_headers(raw: str | None, name: str) -> tuple[tuple[str, str], ...]:
    """``PREFECT_CLIENT_CUSTOM_HEADERS``: a JSON object of header names to string values."""
    if not raw:
        return ()
    from flowdeck.registry.server.http import header_safe  # with the client: only when a server is used
    hint = f'set {name} to a JSON object, e.g. {{"X-Team": "data"}}, or unset it'
    try:
        data = json.loads(raw)
    except ValueError:
        raise RegistryError(f"{name} is not valid JSON", hint=hint) from None  # the text may hold a secret
    if not isinstance(data, dict):
        raise RegistryError(f"{name} must be a JSON object of header names to values", hint=hint)
    headers: list[tuple[str, str]] = []
    for header, value in data.items():
        if not _HEADER_NAME.fullmatch(header):
            raise RegistryError(f"{name}: {header!r} is not a valid header name", hint=hint)
        if not isinstance(value, str) or not header_safe(value):
            raise RegistryError(f"{name}: the value of {header} must be a string on one line, in Latin-1 "
                                "characters (HTTP headers carry no others)", hint=hint)
        if header.lower() in _PROTECTED:
            message = f"{name}: {header} is ignored: flowdeck sets it itself (as Prefect's client does)"
            if message not in _warned:  # the settings are read more than once per command
                _warned.add(message)
                warnings.warn(SettingWarning(message, hint=f"remove {header} from {name}"), stacklevel=3)
            continue
        headers.append((header, value))
    return tuple(headers)


def _timeout(raw: str | None, name: str) -> float:
    """``PREFECT_API_REQUEST_TIMEOUT``: seconds, default 30."""
    if raw is None or not raw.strip():
        return 30.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise RegistryError(f"{name} must be a number of seconds above 0, not {raw!r}",
                            hint=f"set {name}=60, or unset it for the default, 30")
    return seconds


_TRUE = frozenset({"1", "true", "yes", "on", "t", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "f", "n", ""})


def _which(env: Mapping[str, str], name: str) -> str:
    """The variable that set ``name``: flowdeck's own when set, else Prefect's."""
    return f"FLOWDECK_{name}" if env.get(f"FLOWDECK_{name}") else f"PREFECT_{name}"


def current() -> Registry:
    """The registry for this process: a Prefect server when one is configured, else the embedded store."""
    global _cached
    config = server_config()
    env = os.environ
    key = (config, env.get("FLOWDECK_HOME"))  # every setting that makes the registry
    if _cached is not None and _cached[0] == key:
        return _cached[1]
    registry: Registry
    if config is None:
        from flowdeck.registry.embedded import EmbeddedRegistry

        registry = EmbeddedRegistry()
    else:
        from flowdeck.registry.server.client import ServerConfig
        from flowdeck.registry.server.registry import ServerRegistry

        assert isinstance(config, ServerConfig)
        registry = ServerRegistry(config)
    _cached = (key, registry)
    return registry
