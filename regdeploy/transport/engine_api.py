"""Read-only Docker Engine API probes: inspect a container, inspect an image.

Gathering facts needs only these two calls, and importing docker-py (with requests, urllib3,
paramiko and invoke behind it) costs more than everything else an idempotent run does. So the
probes speak the Engine API directly over the unix socket; the Docker SDK is loaded only when
something must change. Engines not on a local socket get the same interface over docker-py.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from typing import Any, Protocol

from regdeploy.errors import TransportError
from regdeploy.transport.engine import API_VERSION


class Engine(Protocol):
    def inspect_container(self, name: str) -> dict[str, Any] | None: ...

    def inspect_image(self, ref: str) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class HttpEngine:
    """The probes over one kept-alive HTTP connection to the Engine API, JSON in and out. Subclasses
    say how a request travels (``_fetch``) and what losing the engine means to the user."""

    def __init__(self, host: str, conn: http.client.HTTPConnection) -> None:
        self._host = host
        self._conn = conn

    def request(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """GET *path* (unversioned); errors of the connection propagate unchanged."""
        try:
            self._conn.request("GET", path)
            resp = self._conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        except BaseException:
            self._conn.close()  # a half-read response must not be reused
            raise

    def _fetch(self, path: str) -> tuple[int, bytes]:
        status, _, body = self.request(path)
        return status, body

    def _get(self, path: str) -> dict[str, Any] | None:
        status, body = self._fetch(f"/v{API_VERSION}{path}")
        if status == 404:
            return None
        if status != 200:
            try:
                message = str(json.loads(body or b"{}").get("message"))
            except ValueError:
                message = body[:200].decode(errors="replace")
            raise TransportError(f"{self._host}: Docker engine: GET {path}: {message}")
        value = json.loads(body)
        return value if isinstance(value, dict) else {"value": value}

    def inspect_container(self, name: str) -> dict[str, Any] | None:
        return self._get(f"/containers/{urllib.parse.quote(name, safe='')}/json")

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        return self._get(f"/images/{urllib.parse.quote(ref, safe='')}/json")

    def close(self) -> None:
        self._conn.close()


class SocketEngine(HttpEngine):
    """The Engine API on a unix socket."""

    def __init__(self, host: str, socket_path: str, timeout: float = 30.0) -> None:
        super().__init__(host, _UnixConnection(socket_path, timeout))
        self._path = socket_path

    def _fetch(self, path: str) -> tuple[int, bytes]:
        try:
            return super()._fetch(path)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise TransportError(
                f"{self._host}: cannot reach the Docker engine at unix://{self._path}: {reason}; "
                "is dockerd running?"
            ) from None


class SdkEngine:
    """The same probes through a docker-py client (remote engines, tcp:// hosts)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def inspect_container(self, name: str) -> dict[str, Any] | None:
        import docker.errors

        try:
            return dict(self._client.api.inspect_container(name))
        except docker.errors.NotFound:
            return None

    def close(self) -> None:
        pass  # the client belongs to the transport, which closes it

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        import docker.errors

        try:
            return dict(self._client.api.inspect_image(ref))
        except docker.errors.NotFound:
            return None
