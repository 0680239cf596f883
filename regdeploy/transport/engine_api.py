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


class SocketEngine:
    """The Engine API on a unix socket, one kept-alive connection, JSON in and out."""

    def __init__(self, host: str, socket_path: str, timeout: float = 30.0) -> None:
        self._host = host
        self._path = socket_path
        self._conn = _UnixConnection(socket_path, timeout)

    def _get(self, path: str) -> dict[str, Any] | None:
        try:
            self._conn.request("GET", f"/v{API_VERSION}{path}")
            resp = self._conn.getresponse()
            body = resp.read()
        except OSError as exc:
            self._conn.close()
            reason = exc.strerror or str(exc) or type(exc).__name__
            where = f"unix://{self._path}"
            raise TransportError(
                f"{self._host}: cannot reach the Docker engine at {where}: {reason}; is dockerd running?"
            ) from None
        if resp.status == 404:
            return None
        if resp.status != 200:
            message = json.loads(body or b"{}").get("message", body[:200].decode(errors="replace"))
            raise TransportError(f"{self._host}: Docker engine: GET {path}: {message}")
        value = json.loads(body)
        return value if isinstance(value, dict) else {"value": value}

    def inspect_container(self, name: str) -> dict[str, Any] | None:
        return self._get(f"/containers/{urllib.parse.quote(name, safe='')}/json")

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        return self._get(f"/images/{urllib.parse.quote(ref, safe='')}/json")

    def close(self) -> None:
        self._conn.close()


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
