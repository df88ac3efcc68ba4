"""A forward HTTP proxy on 127.0.0.1, as a corporate proxy in front of Prefect Cloud would be.

It tunnels ``CONNECT host:port`` and forwards absolute-form requests (``GET http://host:port/path``), but only
to the host names it is given, each mapped to a port on 127.0.0.1: the client never resolves those names
itself (the proxy does), so no traffic leaves loopback. With ``credentials`` set, it answers 407 to a request
without the matching ``Proxy-Authorization``.
"""

from __future__ import annotations

import base64
import socket
import socketserver
import threading
from typing import BinaryIO
from urllib.parse import urlsplit

from tests.servers.flaky_proxy import pipe

__all__ = ["ForwardProxy"]


class ForwardProxy:
    """``routes``: host name -> port on 127.0.0.1. ``log``: (method, target, Proxy-Authorization or None)."""

    def __init__(self, routes: dict[str, int], credentials: str | None = None) -> None:
        self.routes = routes
        self.credentials = credentials
        self.log: list[tuple[str, str, str | None]] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request, self.rfile)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop accepting; open tunnels end with their connections."""
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, client: socket.socket, reader: BinaryIO) -> None:
        line = reader.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            return
        method, target, _ = line.split(" ", 2)
        headers: list[tuple[str, str]] = []
        while True:
            raw = reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, value = raw.decode("latin-1").split(":", 1)
            headers.append((name.strip(), value.strip()))
        auth = next((v for k, v in headers if k.lower() == "proxy-authorization"), None)
        self.log.append((method, target, auth))
        if self.credentials and auth != "Basic " + base64.b64encode(self.credentials.encode()).decode():
            client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\n"
                           b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            return
        if method == "CONNECT":
            host = target.rsplit(":", 1)[0]
            upstream = socket.create_connection(("127.0.0.1", self.routes[host]))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            other = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
            other.start()
            pipe(client, upstream)
            other.join()
            return
        url = urlsplit(target)
        length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
        body = reader.read(length) if length else b""
        path = url.path + (f"?{url.query}" if url.query else "")
        kept = [(k, v) for k, v in headers if k.lower() not in {"proxy-authorization", "connection"}]
        request = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept)
        request += "Connection: close\r\n\r\n"
        with socket.create_connection(("127.0.0.1", self.routes[url.hostname or ""])) as upstream:
            upstream.sendall(request.encode("latin-1") + body)
            answer = b""
            while chunk := upstream.recv(65536):
                answer += chunk
        # One request per connection: say so first, so the client does not keep it.
        status, rest = answer.split(b"\r\n", 1)
        client.sendall(status + b"\r\nConnection: close\r\n" + rest)
