"""A small client for the registry's HTTP API (distribution v2), trusting the inventory's CA."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any

_LINK_RE = re.compile(r'<([^>]+)>;\s*rel="?next"?')
_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')
_REPO_PATH_RE = re.compile(r"/v2/(.+?)/(?:blobs|manifests|tags)/")


def challenge_params(header: str) -> tuple[str, dict[str, str]]:
    """(scheme, parameters) of a ``WWW-Authenticate`` header: ``Bearer realm="…",service="…"``."""
    scheme, _, params = header.partition(" ")
    return scheme.lower(), dict(_PARAM_RE.findall(params))


class TokenServerError(OSError):
    """The token server a Bearer challenge names could not be reached: ``str()`` says which."""


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
        tokens: dict[str, str] | None = None,
    ) -> None:
        """*tokens*: a cache of Bearer tokens by scope to share between clients of one user."""
        self.address = address
        self.port = port
        self._ca = ca_pem
        self._auth = None
        if user is not None and password is not None:
            self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._tokens: dict[str, str] = {} if tokens is None else tokens  # scope -> Bearer token
        self.token_status: int | None = None  # the token server's last answer to this client
        self._server_hostname = server_hostname
        self._timeout = timeout
        self._ctx: ssl.SSLContext | None = None
        # One kept-alive connection per client (a TLS handshake per request was a third of a
        # verify run), used by one request at a time.
        self._kept: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def at_port(self, port: int) -> RegistryClient:
        """The same client for another registry of the same host (a pull-through cache)."""
        import copy

        other = copy.copy(self)
        other.port = port
        other._tokens = {}
        other._kept = None
        other._lock = threading.Lock()
        return other

    def _context(self) -> ssl.SSLContext:
        if self._ctx is None:
            assert self._ca is not None
            self._ctx = ssl.create_default_context(cadata=self._ca.decode())
            if self._server_hostname is None:
                self._ctx.check_hostname = False
        return self._ctx

    def _connection(self) -> http.client.HTTPConnection:
        if self._ca is None:
            return http.client.HTTPConnection(self.address, self.port, timeout=self._timeout)
        ctx = self._context()
        if self._server_hostname is not None:
            return NamedHTTPSConnection(self.address, self.port, self._server_hostname, ctx, self._timeout)
        return http.client.HTTPSConnection(self.address, self.port, timeout=self._timeout, context=ctx)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, auth: bool = True) -> Response:  # fmt: skip
        """One request; with token auth, a Bearer challenge is answered as docker does: a token for
        the challenge's scope from its realm (with this client's credentials), then once again."""
        hdrs = dict(headers or {})
        scope_key = self._scope_key(method, path)
        if auth and scope_key in self._tokens:
            hdrs["Authorization"] = f"Bearer {self._tokens[scope_key]}"
        elif auth and self._auth:
            hdrs["Authorization"] = self._auth
        resp = self._kept_send(method, path, body, hdrs)
        if resp.status != 401 or not auth:
            return resp
        scheme, params = challenge_params(resp.headers.get("www-authenticate", ""))
        if scheme != "bearer" or "realm" not in params:
            return resp
        token = self.token(params["realm"], params.get("service", ""), params.get("scope", ""))
        if token is None:
            return resp
        self._tokens[scope_key] = token
        hdrs["Authorization"] = f"Bearer {token}"
        return self._kept_send(method, path, body, hdrs)

    def _kept_send(self, method: str, path: str, body: bytes | None, hdrs: dict[str, str]) -> Response:
        """On the kept-alive connection; a connection the server closed meanwhile is made anew once."""
        with self._lock:
            for attempt in (1, 2):
                fresh = self._kept is None
                if self._kept is None:
                    self._kept = self._connection()
                conn = self._kept
                try:
                    conn.request(method, path, body=body, headers=hdrs)
                    resp = conn.getresponse()
                    answer = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    conn.close()
                    self._kept = None
                    if fresh or attempt == 2:
                        raise
                    continue
                except BaseException:
                    conn.close()
                    self._kept = None
                    raise
                if resp.will_close:
                    conn.close()
                    self._kept = None
                return answer
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._kept is not None:
                self._kept.close()
                self._kept = None

    @staticmethod
    def _scope_key(method: str, path: str) -> str:
        """Which cached token fits a request: one per repository, one for reading and one for
        writing (the scopes the registry's challenges name)."""
        match = _REPO_PATH_RE.match(path.split("?")[0])
        where = match.group(1) if match else path.split("?")[0]
        return f"{'read' if method in ('GET', 'HEAD') else 'write'}:{where}"

    @staticmethod
    def _send(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
              hdrs: dict[str, str]) -> Response:  # fmt: skip
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def token_response(self, realm: str, service: str, scope: str) -> Response:
        """GET the token endpoint *realm* (``https://host:port/token``) with this client's
        credentials, reached at this client's address (the realm's host names the certificate)."""
        from urllib.parse import urlencode, urlsplit

        url = urlsplit(realm)
        query = urlencode([("service", service), *([("scope", s) for s in scope.split()])])
        port = url.port or (443 if url.scheme == "https" else 80)
        name = self._server_hostname or url.hostname
        conn: http.client.HTTPConnection
        if url.scheme == "http" or self._ca is None:
            conn = http.client.HTTPConnection(self.address, port, timeout=self._timeout)
        else:
            ctx = ssl.create_default_context(cadata=self._ca.decode())  # names always checked here
            conn = NamedHTTPSConnection(self.address, port, name or self.address, ctx, self._timeout)
        hdrs = {"Authorization": self._auth} if self._auth else {}
        return self._send(conn, "GET", f"{url.path or '/'}?{query}", None, hdrs)

    def token(self, realm: str, service: str, scope: str) -> str | None:
        try:
            resp = self.token_response(realm, service, scope)
        except (OSError, http.client.HTTPException) as exc:
            why = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).lower()
            raise TokenServerError(f"token server {realm}: {why}") from None
        self.token_status = resp.status
        if resp.status != 200:
            return None
        value = resp.json()
        return str(value.get("token") or value.get("access_token") or "") or None

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
