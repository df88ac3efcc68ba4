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
    authorization: str | None = None

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


def proxy_for(scheme: str, host: str) -> Proxy | None:
    """The proxy for ``scheme://host`` (None: connect directly); :class:`ProxySettingError` for a bad one."""
    if not any(v and k.lower().endswith("_proxy") and k.lower() != "no_proxy" for k, v in os.environ.items()):
        return None  # the usual case, decided without importing anything
    if _loopback(host):
        return None
    # Imported only when a proxy variable is set: urllib.request costs ~10 ms to import.
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    # proxy_bypass_environment: NO_PROXY's rules (public, documented with getproxies; not in typeshed).
    if not url or urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]
        return None
    name = f"{scheme.upper()}_PROXY" if proxies.get(scheme) else "ALL_PROXY"
    if "://" not in url:
        url = "http://" + url  # `proxy.corp:3128`, as curl and httpx read it
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError:
        raise ProxySettingError(f"{name} is not a usable proxy URL") from None
    if parts.scheme != "http" or not parts.hostname:
        raise ProxySettingError(
            f"{name} must be an http:// proxy (flowdeck does not speak {parts.scheme}:// to proxies)")
    authorization = None
    if parts.username is not None:
        password = unquote(parts.password or "")
        if password:
            register_secret(password)
        pair = f"{unquote(parts.username)}:{password}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode()
        register_secret(authorization.split(" ", 1)[1])
    return Proxy(parts.hostname, port, authorization)
