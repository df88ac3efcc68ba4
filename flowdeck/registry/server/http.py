"""The HTTP/1.1 transport under :class:`~flowdeck.registry.server.client.PrefectClient`: the standard library's
``http.client`` with a small pool of kept-alive connections.

Why not httpx: importing it and sending its first request costs ~100 ms against ~30 ms for ``http.client``
(measured with ``python -X importtime`` and a first request). `flowdeck flow-run execute` starts on a worker
before every flow run and talks to the server first, so that time is on the path to the flow's first line.
The client needs little of what httpx offers: no HTTP/2, no async, no cookies; an http proxy named by the
environment, as Prefect's client honours it (:mod:`.proxy`), is a ``CONNECT`` tunnel or a forwarded request.

Failures come out as two exceptions, because the caller's retry policy depends on the difference:
:class:`NotSent` (the connection was never made: refused, unknown host, TLS handshake) is always safe to
retry; :class:`Interrupted` (the request may have reached the server) only for idempotent requests.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import select
import ssl
import threading
import time
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from flowdeck.registry.server.proxy import proxy_for

__all__ = ["HttpTransport", "Interrupted", "NotSent", "ProxyRefused", "Response", "UntrustedCertificate",
           "header_safe"]


_PATH_SAFE = "/:@!$&'()*+,;="  # kept as they are in a path, besides letters, digits and -._~ (RFC 3986)
#: Idle connections older than this are closed, not reused (httpx's default, and uvicorn's keep-alive): a NAT
#: or load balancer between a worker and the server may forget a quiet connection without telling either
#: end, and a flow run's client is quiet for the whole flow before it sends the final state.
KEEPALIVE = 5.0


class NotSent(Exception):
    """The connection could not be made: the server never saw the request."""


class UntrustedCertificate(NotSent):
    """The TLS handshake failed on the server's certificate (unknown CA, wrong host name, expired)."""


class ProxyRefused(NotSent):
    """The proxy in between answered the tunnel request with an error (407: it wants other credentials)."""


class Interrupted(Exception):
    """The exchange broke after the request may have been sent (dropped connection, timeout, bad answer)."""


class Response:
    """One answer: status, headers (case-insensitive ``get``) and the whole body, read and decoded."""

    def __init__(self, status_code: int, headers: http.client.HTTPMessage, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        """The body as text (UTF-8, as the Prefect API answers)."""
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` when it is not)."""
        return json.loads(self.content)


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """True when an idle kept-alive connection was closed by the server (it is readable: EOF or junk).

    Reusing such a connection would fail the next request after it was written, which for a request that is
    not idempotent is a failure the caller must report; checking first avoids that (as urllib3 does).
    """
    sock = conn.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):  # not select() where poll exists: it fails on descriptors past 1024
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])  # Windows
    except (OSError, ValueError):
        return True


class HttpTransport:
    """Send requests to one base URL; thread-safe (each request takes an idle connection or opens one)."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: float,
                 context: ssl.SSLContext | None) -> None:
        parts = urlsplit(base_url)  # ValueError for a malformed URL or port, as below for a wrong scheme
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("it must start with http:// or https:// and name a host")
        self._https = parts.scheme == "https"
        # The ASCII form (IDNA) of a host name in any script, as http.client, proxies and TLS need it;
        # UnicodeError (a ValueError) here for one that has none, not at the first request.
        self._host = parts.hostname.encode("idna").decode("ascii")
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/") + "/"  # as written: an escape in it is already one
        #: The proxy in between, if the environment names one (:mod:`.proxy`).
        self.proxy = proxy_for(parts.scheme, self._host, self._port)
        # Through a proxy, a plain-http request names the whole URL (the proxy forwards it); https tunnels.
        self._origin = ""
        if self.proxy is not None and not self._https:
            bracketed = f"[{self._host}]" if ":" in self._host else self._host
            self._origin = f"http://{bracketed}" + (f":{parts.port}" if parts.port else "")
        self._timeout = timeout
        self._context = context
        self._headers = _merged({"Accept-Encoding": "gzip", "User-Agent": "flowdeck"}, headers)
        if parts.username is not None and "authorization" not in {name.lower() for name in self._headers}:
            # user:password in the URL is HTTP Basic authentication, as httpx and browsers treat it.
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        for name, value in self._headers.items():
            if not header_safe(value):
                raise ValueError(f"the {name} header would hold a line break, a control character or a "
                                 "character outside Latin-1")
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Close every idle connection; requests in flight close theirs when they end."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def request(self, method: str, path: str, *, json_body: Any = None,
                params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Response:
        """Send ``method`` to ``path`` (relative to the base URL) and read the whole answer."""
        # Names in paths (`deployments/name/my flow/nightly`) go out percent-encoded (callers pass them
        # raw): http.client refuses a space and cannot send a non-ASCII character; `%`, `?` and `#` are
        # part of the name, not an escape, a query or a fragment.
        target = self._origin + self._prefix + quote(path.lstrip("/"), safe=_PATH_SAFE)
        if params:
            target += "?" + urlencode({k: _param(v) for k, v in params.items() if v is not None}, doseq=True)
        sent = _merged(self._headers, headers or {})
        if self._origin and self.proxy is not None:
            sent.update(self.proxy.headers())
        body: bytes | None = None
        if json_body is not None:
            # "replace": a lone surrogate (a file name that is not UTF-8, decoded by os.fsdecode, in a log
            # line) becomes "?" instead of failing the whole request.
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"),
                              allow_nan=False).encode("utf-8", "replace")
            sent["Content-Type"] = "application/json"
        conn = self._connection()
        try:
            conn.request(method, target, body=body, headers=sent)
            answer = conn.getresponse()
            content = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise Interrupted(str(exc) or type(exc).__name__) from None
        except BaseException:
            conn.close()  # never back in the pool half-used
            raise
        if answer.status < 200:
            # http.client skips only 100 Continue; another informational answer (103 Early Hints) would be
            # taken for the final one, with the real answer left unread on the connection.
            conn.close()
            raise Interrupted(f"an unexpected informational answer (HTTP {answer.status})")
        if answer.getheader("Content-Encoding", "").lower() == "gzip":
            try:
                content = gzip.decompress(content)
            except (OSError, EOFError, zlib.error) as exc:
                conn.close()
                raise Interrupted(f"a compressed answer does not decompress ({exc})") from None
        if answer.will_close:
            conn.close()
        else:
            self._release(conn)
        return Response(answer.status, answer.headers, content)

    def _connection(self) -> http.client.HTTPConnection:
        with self._lock:
            while self._idle:
                idle, since = self._idle.pop()
                if time.monotonic() - since < KEEPALIVE and not _dropped(idle):
                    return idle
                idle.close()
        conn: http.client.HTTPConnection
        proxy = self.proxy
        host, port = (proxy.host, proxy.port) if proxy else (self._host, self._port)
        if self._https:
            conn = http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._context)
            if proxy is not None:
                conn.set_tunnel(self._host, self._port, headers=proxy.headers())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._timeout)
        try:
            conn.connect()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise UntrustedCertificate(str(exc)) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            why = str(exc) or type(exc).__name__
            if proxy is not None and why.startswith("Tunnel connection failed"):
                # The proxy answered the CONNECT with an error (407: its credentials): the same every time.
                raise ProxyRefused(f"{proxy.where} refused the tunnel: {why.split(':', 1)[1].strip()}") from None
            raise NotSent(f"{proxy.where}: {why}" if proxy is not None else why) from None
        return conn

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < 8:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()


def header_safe(value: str) -> bool:
    """Whether ``value`` can go in an HTTP header as it is: Latin-1 (what http.client encodes headers in)
    without control characters (a line break would end the header, or smuggle another)."""
    return all(31 < ord(c) < 127 or 159 < ord(c) < 256 for c in value)


def _param(value: Any) -> Any:
    # Query values as Prefect's clients send them: JSON's spelling of booleans.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [_param(v) for v in value]
    return value


def _merged(*layers: Mapping[str, str]) -> dict[str, str]:
    """Headers of later layers replace earlier ones whatever their case (``authorization`` replaces
    ``Authorization``), as httpx merges them: a header is never sent twice."""
    merged: dict[str, str] = {}
    for layer in layers:
        for name, value in layer.items():
            for existing in [k for k in merged if k.lower() == name.lower()]:
                del merged[existing]
            merged[name] = value
    return merged
