"""A small HTTP/1.1 server on 127.0.0.1 for the server client's transport tests.

It records every request (method, path, body, headers) and answers with JSON naming the path. A few paths
misbehave on purpose: ``/api/hangup`` closes without an answer, ``/api/hints`` sends a 103 first,
``/api/badgzip`` sends a body that does not decompress, ``/api/slow`` waits 2 s, ``/api/fail-once...``
answers 500 the first time; ``.../admin/version``
answers a Prefect 3 version, ``/api/gzip...`` answers compressed. ``close_idle_after`` closes kept-alive
connections idle that long.
"""

from __future__ import annotations

import gzip
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["EchoServer"]


class EchoServer(ThreadingHTTPServer):
    """Records each request and answers it; special paths misbehave (see :class:`_Handler`)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.seen: list[dict[str, Any]] = []
        self.close_idle_after: float | None = None  # close a kept-alive connection idle this long
        self.failed: set[str] = set()  # /api/fail-once... paths already answered 500 once


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EchoServer

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1
        if self.server.close_idle_after is not None:
            self.request.settimeout(self.server.close_idle_after)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append({"method": self.command, "path": self.path, "body": body,
                                 "headers": dict(self.headers)})
        if self.path.startswith("/api/fail-once") and self.path not in self.server.failed:
            self.server.failed.add(self.path)
            self.send_response(500)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            return
        if self.path.startswith("/api/slow"):
            time.sleep(2)
        if self.path.startswith("/api/hangup"):
            self.close_connection = True
            return  # no answer at all
        if self.path.startswith("/api/hints"):
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
        if self.path.endswith("/admin/version"):
            payload = b'"3.1.0"'
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if self.path.startswith("/api/badgzip"):
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"junk")
            return
        payload = json.dumps({"path": self.path, "method": self.command}).encode()
        gzipped = self.path.startswith("/api/gzip")
        if gzipped:
            payload = gzip.compress(payload)
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _answer

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except TimeoutError:
            self.close_connection = True  # the idle keep-alive timeout: close, as uvicorn does
