"""A small client for the registry's HTTP API (distribution v2), trusting the inventory's CA."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any

_LINK_RE = re.compile(r'<([^>]+)>;\s*rel="?next"?')


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class NamedHTTPSConnection(http.client.HTTPSConnection):
    """Connect to an address, but check the certificate against the name clients use."""

    def __init__(self, address: str, port: int, server_hostname: str, context: ssl.SSLContext,
                 timeout: float) -> None:  # fmt: skip
        super().__init__(address, port, timeout=timeout, context=context)
        self._name = server_hostname
        self._ctx = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._name)


class RegistryClient:
    def __init__(
        self,
        address: str,
        port: int,
        ca_pem: bytes | None,
        user: str | None = None,
        password: str | None = None,
        server_hostname: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.address = address
        self.port = port
        self._ca = ca_pem
        self._auth = None
        if user is not None and password is not None:
            self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._server_hostname = server_hostname
        self._timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self._ca is None:
            return http.client.HTTPConnection(self.address, self.port, timeout=self._timeout)
        ctx = ssl.create_default_context(cadata=self._ca.decode())
        if self._server_hostname is None:
            ctx.check_hostname = False
        if self._server_hostname is not None:
            return NamedHTTPSConnection(self.address, self.port, self._server_hostname, ctx, self._timeout)
        return http.client.HTTPSConnection(self.address, self.port, timeout=self._timeout, context=ctx)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, auth: bool = True) -> Response:  # fmt: skip
        conn = self._connection()
        try:
            hdrs = dict(headers or {})
            if auth and self._auth:
                hdrs["Authorization"] = self._auth
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def catalog(self, page_size: int = 100, limit: int = 10000) -> list[str]:
        """Every repository, following ``Link: <...>; rel="next"`` pages."""
        repos: list[str] = []
        path: str | None = f"/v2/_catalog?n={page_size}"
        while path and len(repos) < limit:
            resp = self.request("GET", path)
            if resp.status != 200:
                raise OSError(f"GET {path} answered {resp.status}")
            repos += resp.json().get("repositories") or []
            match = _LINK_RE.search(resp.headers.get("link", ""))
            path = match.group(1) if match else None
        return repos
