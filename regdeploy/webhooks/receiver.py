"""A small threaded HTTP server for receiving registry notifications (listener and relay).

Bounded on purpose: bodies above ``MAX_BODY`` are refused, sockets time out, and handler threads are
daemons joined on ``close()``, so neither a stuck registry nor a stray client can hold the process.
"""

from __future__ import annotations

import http.server
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 1 << 20  # an envelope holds one event: a few KiB; 1 MiB leaves room for huge reference lists
SOCKET_TIMEOUT = 10.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    client: str


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Reply]


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0 (the base class default): one request per connection, so no idle keep-alive socket
    # can hold close() up. The registry closes its connections after every delivery anyway.
    timeout = SOCKET_TIMEOUT

    def _handle(self) -> None:
        length = self.headers.get("Content-Length")
        try:
            size = int(length) if length else 0
        except ValueError:
            size = -1
        if size < 0 or size > MAX_BODY:
            self._reply(Reply(413 if size > MAX_BODY else 400, b"bad or oversized body\n"))
            return
        body = self.rfile.read(size) if size else b""
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client=f"{self.client_address[0]}:{self.client_address[1]}",
        )
        try:
            reply = self.server.handler(request)
        except Exception as exc:  # a handler bug must not leave the registry hanging on a reset socket
            self.server.errors.append(exc)
            reply = Reply(500, b"internal error\n")
        self._reply(reply)

    # http.server dispatches on these names.
    do_POST = _handle
    do_PUT = _handle
    do_GET = _handle

    def _reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the default writes every request line to stderr, query strings (tokens) included."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # close() joins handler threads: nothing outlives the receiver

    def __init__(self, address: tuple[str, int], handler: Handler) -> None:
        self.handler = handler
        self.errors: deque[Exception] = deque(maxlen=100)  # the latest only: a service runs for months
        super().__init__(address, _RequestHandler)


class Receiver:
    """Serve ``handler`` on ``bind:port`` (port 0 picks a free one) in a background thread."""

    def __init__(self, bind: str, port: int, handler: Handler) -> None:
        self._server = _Server((bind, port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._started = False

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/"

    @property
    def errors(self) -> deque[Exception]:
        """Exceptions raised by the handler (answered with 500); for tests and diagnostics."""
        return self._server.errors

    def start(self) -> Receiver:
        self._thread.start()
        self._started = True
        return self

    def close(self) -> None:
        if self._started:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._started = False
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
