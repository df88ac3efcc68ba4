"""Proxies on 127.0.0.1 that inject faults no healthy server produces.

:class:`FlakyProxy` is a TCP proxy that can refuse connections for a while; :class:`FaultyHttpProxy` is an
HTTP proxy that answers chosen requests with 429/502/503 itself (a busy server, a load balancer in between).

For :class:`FlakyProxy`: while ``refusing`` is set, every accepted connection is closed at once (the client
sees a reset or an empty reply), and open connections are cut. Clearing it lets traffic through to the real
server again.
"""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import threading
import time
from collections.abc import Callable

__all__ = ["FaultyHttpProxy", "FlakyProxy", "pipe"]


class FlakyProxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<target_port>."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refusing = threading.Event()
        self.refused = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def refuse(self) -> None:
        """Start refusing, and cut every open connection."""
        self.refusing.set()
        with self._lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def allow(self) -> None:
        """Let connections through again."""
        self.refusing.clear()

    def close(self) -> None:
        """Stop listening."""
        self._stopped = True
        self.refuse()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                self.refused += 1
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        def forget(sock: socket.socket) -> None:
            with self._lock:
                self._open.discard(sock)

        pipe(src, dst, forget)


def pipe(src: socket.socket, dst: socket.socket, closing: Callable[[socket.socket], None] | None = None) -> None:
    """Copy ``src`` to ``dst`` until either side ends, then shut both down and close them (``closing`` is
    told of each first)."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if closing is not None:
                closing(sock)
            sock.close()


class FaultyHttpProxy:
    """An HTTP proxy on 127.0.0.1 in front of a real server that answers some requests with an error itself.

    ``fail_every(n, statuses)`` makes every n-th request (counted over all requests) answer the next status
    of ``statuses`` in turn (a 429 carries ``Retry-After: 1``) without reaching the server; ``fail_all(status,
    after=k)`` answers every request after the first k so. Everything else is forwarded as is. ``log`` holds
    ``(method, path, status, injected)`` for every request, in the order they were answered. ``delay``, when
    set, is called with each request's method, path and body and holds that request for the seconds it returns
    before forwarding it (to widen a race between clients). ``drop``, when set, is called with each request's
    method and path; when it returns true the connection is closed without an answer (logged as status 0), as a
    server does when it drops an idle keep-alive connection just as a request arrives.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.log: list[tuple[str, str, int, bool]] = []
        self._lock = threading.Lock()
        self._every = 0
        self._statuses: list[int] = []
        self._count = 0
        self._after = 0
        self.delay: Callable[[str, str, bytes], float] | None = None
        self.drop: Callable[[str, str], bool] | None = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._fault()
                if fault is not None:
                    payload = json.dumps({"detail": f"injected {fault}"}).encode()
                    self.send_response(fault)
                    if fault == 429:
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    proxy._record(self.command, self.path, fault, True)
                    return
                if proxy.drop is not None and proxy.drop(self.command, self.path):
                    proxy._record(self.command, self.path, 0, True)
                    self.close_connection = True
                    return
                hold = proxy.delay(self.command, self.path, body) if proxy.delay else 0.0
                if hold > 0:
                    time.sleep(hold)
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                except OSError:
                    # The real server failed (not an injected fault): logged as status -1, the client sees
                    # the connection dropped.
                    proxy._record(self.command, self.path, -1, False)
                    raise
                finally:
                    upstream.close()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in _HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                proxy._record(self.command, self.path, answer.status, False)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

            def log_message(self, *args: object) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str = "/api") -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.port}{path}"

    def fail_every(self, n: int, statuses: list[int], *, after: int = 0) -> None:
        """Answer every n-th request (after the first ``after``) with the next of ``statuses`` (cycling)."""
        with self._lock:
            self._every, self._statuses, self._count, self._after = n, list(statuses), 0, after
            self.log.clear()

    def fail_all(self, status: int, *, after: int = 0) -> None:
        """Answer every request (after the first ``after``) with ``status``."""
        self.fail_every(1, [status], after=after)

    def healthy(self) -> None:
        """Forward everything."""
        self.fail_every(0, [])

    @property
    def injected(self) -> list[tuple[str, str, int, bool]]:
        """The requests answered by the proxy itself."""
        return [entry for entry in self.log if entry[3]]

    @property
    def forwarded(self) -> list[tuple[str, str, int, bool]]:
        """The requests that reached the server."""
        return [entry for entry in self.log if not entry[3]]

    def _fault(self) -> int | None:
        with self._lock:
            self._count += 1
            index = self._count - self._after
            if not self._every or index <= 0 or index % self._every:
                return None
            return self._statuses[(index // self._every - 1) % len(self._statuses)]

    def _record(self, method: str, path: str, status: int, injected: bool) -> None:
        with self._lock:
            self.log.append((method, path, status, injected))

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer",
                  "host", "content-length"})
