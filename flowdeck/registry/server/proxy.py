"""Which HTTP proxy the server client goes through: the one the environment names, as for Prefect's own client.

Prefect's client (httpx) honours ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` and ``NO_PROXY`` (either
case), so a worker behind a corporate proxy reaches Prefect Cloud through it; flowdeck's client reads the
same variables with the standard library's rules. Two differences, both deliberate: a loopback server
(``localhost``, ``127.0.0.0/8``, ``::1``) is always reached directly, since no proxy can reach this
machine's loopback for it; and only ``http://`` proxies are supported (an https server is reached through a
``CONNECT`` tunnel, as usual), anything else is refused with an error naming the variable.
"""

from __future__ import annotations

import base64
import os
import sys
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from flowdeck.redact import register_secret

__all__ = ["Proxy", "ProxySettingError", "proxy_for"]


class ProxySettingError(ValueError):
    """A proxy variable that cannot be used; the message names it (never its credentials)."""


@dataclass(frozen=True)
class Proxy:
    """An http proxy: where it is, and the ``Proxy-Authorization`` header its URL's credentials make."""

    host: str
    port: int
    #: The variable that named it (``HTTPS_PROXY``, ``https_proxy``, ``ALL_PROXY`` ...), for messages.
    variable: str
    authorization: str | None = None

    @property
    def where(self) -> str:
        """``host:port`` and the variable, for messages (never the credentials)."""
        return f"the proxy at {self.host}:{self.port} ({self.variable})"

    def headers(self) -> dict[str, str]:
        """The headers the proxy needs on a ``CONNECT`` or a forwarded request."""
        return {"Proxy-Authorization": self.authorization} if self.authorization else {}


def _loopback(host: str) -> bool:
    import ipaddress  # only once a proxy variable is set

    if host.lower() in {"localhost", "localhost.localdomain"} or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _variable(key: str) -> str:
    """The variable the proxy setting ``key`` (``https``, ``all``) came from: lowercase wins, as urllib reads."""
    lower = f"{key}_proxy"
    return lower if os.environ.get(lower) else lower.upper()


def proxy_for(scheme: str, host: str, port: int) -> Proxy | None:
    """The proxy for ``scheme://host:port`` (None: connect directly); :class:`ProxySettingError` for a bad
    setting. ``host`` is in its ASCII form."""
    if not any(v and k.lower().endswith("_proxy") and k.lower() != "no_proxy" for k, v in os.environ.items()):
        return None  # the usual case, decided without importing anything
    if _loopback(host):
        return None
    # Imported only when a proxy variable is set: urllib.request costs ~10 ms to import.
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    key = scheme if proxies.get(scheme) else "all"
    url = proxies.get(key)
    # proxy_bypass_environment: NO_PROXY's rules (public, documented with getproxies; not in typeshed). An
    # entry may name the port too (`prefect.internal:4200`), as in httpx.
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not url or bypass(host, proxies) or bypass(f"{host}:{port}", proxies):
        return None
    name = _variable(key)
    if "://" not in url:
        url = "http://" + url  # `proxy.corp:3128`, as curl and httpx read it
    try:
        parts = urlsplit(url)
        proxy_port = parts.port or 80
    except ValueError:
        raise ProxySettingError(f"{name} is not a usable proxy URL") from None
    if parts.scheme != "http":
        raise ProxySettingError(
            f"{name} must be an http:// proxy (flowdeck does not speak {parts.scheme}:// to proxies)")
    if not parts.hostname:
        raise ProxySettingError(f"{name} names no proxy host")
    if ":" in host and sys.version_info < (3, 12):
        # Python 3.11's http.client writes `CONNECT fd00::5:443`, without the brackets a proxy needs.
        raise ProxySettingError(f"the server is at an IPv6 address, which Python {sys.version_info.major}."
                                f"{sys.version_info.minor} cannot reach through the proxy in {name}")
    authorization = None
    if parts.username is not None:
        password = unquote(parts.password or "")
        if password:
            register_secret(password)
        pair = f"{unquote(parts.username)}:{password}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode()
        register_secret(authorization.split(" ", 1)[1])
    return Proxy(parts.hostname, proxy_port, name, authorization)
