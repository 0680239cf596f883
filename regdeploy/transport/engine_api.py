"""The one seam to a host's Docker engine: reads and writes, one error translator.

Everything regdeploy does to containers and networks goes through :class:`Engine`: inspect, list,
create, start, stop, restart, rename, remove, logs, networks. The calls speak the Engine API
directly over one kept-alive HTTP connection (the unix socket, or SSH channels in
:mod:`.dockerssh`), so an idempotent run never imports docker-py (with requests, urllib3 and
friends behind it, that import costs more than everything else such a run does). docker-py is kept
for the streaming image work only (pull, build, load, save: :mod:`regdeploy.image`).

Every engine refusal becomes an :class:`EngineError` in :meth:`HttpEngine._call`, carrying the
daemon's own explanation (docker-py's ``errors.py`` is the model); a lost connection becomes a
``TransportError`` in the subclass that knows what the connection was.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import urllib.parse
from collections.abc import Mapping
from typing import Any, Protocol

from regdeploy.errors import TransportError
from regdeploy.transport.engine import API_VERSION


class EngineError(TransportError):
    """The engine answered, and refused: ``str()`` is the daemon's explanation with the host."""

    def __init__(self, message: str, status: int, explanation: str) -> None:
        super().__init__(message)
        self.status = status
        self.explanation = explanation


class Engine(Protocol):
    """What regdeploy asks of a Docker engine. ``ref`` is a name or an id."""

    def inspect_container(self, ref: str) -> dict[str, Any] | None: ...

    def inspect_image(self, ref: str) -> dict[str, Any] | None: ...

    def list_containers(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every container (running or not) carrying all of *labels*."""
        ...

    def inspect_network(self, name: str) -> dict[str, Any] | None: ...

    def create_network(self, name: str, labels: Mapping[str, str]) -> str: ...

    def remove_network(self, name: str) -> None: ...

    def create_container(self, name: str, body: Mapping[str, Any]) -> str:
        """Create from an Engine API ``ContainerCreate`` body; returns the id."""
        ...

    def start_container(self, ref: str) -> None: ...

    def stop_container(self, ref: str, timeout: int = 10) -> None: ...

    def restart_container(self, ref: str, timeout: int = 10) -> None: ...

    def rename_container(self, ref: str, new_name: str) -> None: ...

    def remove_container(self, ref: str, force: bool = False) -> None:
        """Never removes volumes: anonymous volumes of an adopted container may hold data."""
        ...

    def container_logs(self, ref: str, tail: int = 200, since: str = "") -> bytes:
        """The last *tail* lines (of those since *since*, "SECONDS.NANOS" since the epoch, if given)."""
        ...

    def exec_run(self, ref: str, argv: list[str]) -> tuple[int, bytes]:
        """Run *argv* in the running container (its own user); (exit code, stdout and stderr).
        argv is visible to the host's processes: never put a secret there."""
        ...

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


def demux_logs(raw: bytes) -> bytes:
    """The text of a non-TTY container's log stream: frames of (stream, 0, 0, 0, size32, payload)."""
    out = bytearray()
    i = 0
    while i + 8 <= len(raw):
        kind = raw[i]
        size = struct.unpack(">I", raw[i + 4 : i + 8])[0]
        if kind not in (0, 1, 2) or raw[i + 1 : i + 4] != b"\0\0\0":
            return raw  # not multiplexed (a TTY container): the bytes are the text
        out += raw[i + 8 : i + 8 + size]
        i += 8 + size
    return bytes(out)


def _message(body: bytes) -> str:
    try:
        value = json.loads(body or b"{}")
        if isinstance(value, dict) and value.get("message"):
            return " ".join(str(value["message"]).split())
    except ValueError:
        pass
    return " ".join(body[:300].decode(errors="replace").split()) or "no explanation"


class HttpEngine:
    """The Engine API over one kept-alive HTTP connection, JSON in and out. Subclasses say what
    losing the connection means to the user (``_fetch``)."""

    def __init__(self, host: str, conn: http.client.HTTPConnection) -> None:
        self._host = host
        self._conn = conn

    def request(
        self, path: str, method: str = "GET", body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on *path* (unversioned); errors of the connection propagate unchanged."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            self._conn.request(method, path, body=body, headers=headers)
            resp = self._conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        except BaseException:
            self._conn.close()  # a half-read response must not be reused
            raise

    def _fetch(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        status, _, data = self.request(path, method, body)
        return status, data

    def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        missing_ok: bool = False,
    ) -> bytes | None:
        """The one translator: an answer >= 400 becomes an EngineError naming the call and the
        daemon's explanation; with *missing_ok* a 404 is None instead."""
        url = f"/v{API_VERSION}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        payload = None if body is None else json.dumps(body).encode()
        status, data = self._fetch(method, url, payload)
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            explanation = _message(data)
            what = path.split("?")[0]
            raise EngineError(
                f"{self._host}: Docker engine: {method} {what}: {explanation}", status, explanation
            )
        return data

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        data = self._call(method, path, **kwargs)
        return None if data is None else json.loads(data or b"null")

    @staticmethod
    def _q(ref: str) -> str:
        return urllib.parse.quote(ref, safe="")

    def inspect_container(self, ref: str) -> dict[str, Any] | None:
        value = self._json("GET", f"/containers/{self._q(ref)}/json", missing_ok=True)
        return value if isinstance(value, dict) else None

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        value = self._json("GET", f"/images/{self._q(ref)}/json", missing_ok=True)
        return value if isinstance(value, dict) else None

    def list_containers(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        filters = json.dumps({"label": [f"{k}={v}" for k, v in labels.items()]})
        value = self._json("GET", "/containers/json", query={"all": "1", "filters": filters})
        return [c for c in value or [] if isinstance(c, dict)]

    def inspect_network(self, name: str) -> dict[str, Any] | None:
        value = self._json("GET", f"/networks/{self._q(name)}", missing_ok=True)
        return value if isinstance(value, dict) else None

    def create_network(self, name: str, labels: Mapping[str, str]) -> str:
        body = {"Name": name, "Driver": "bridge", "CheckDuplicate": True, "Labels": dict(labels)}
        return str(self._json("POST", "/networks/create", body=body)["Id"])

    def remove_network(self, name: str) -> None:
        self._call("DELETE", f"/networks/{self._q(name)}", missing_ok=True)

    def create_container(self, name: str, body: Mapping[str, Any]) -> str:
        value = self._json("POST", "/containers/create", query={"name": name}, body=dict(body))
        return str(value["Id"])

    def start_container(self, ref: str) -> None:
        self._call("POST", f"/containers/{self._q(ref)}/start")

    def stop_container(self, ref: str, timeout: int = 10) -> None:
        self._call("POST", f"/containers/{self._q(ref)}/stop", query={"t": str(timeout)})

    def restart_container(self, ref: str, timeout: int = 10) -> None:
        self._call("POST", f"/containers/{self._q(ref)}/restart", query={"t": str(timeout)})

    def rename_container(self, ref: str, new_name: str) -> None:
        self._call("POST", f"/containers/{self._q(ref)}/rename", query={"name": new_name})

    def remove_container(self, ref: str, force: bool = False) -> None:
        query = {"force": "1" if force else "0", "v": "0"}
        self._call("DELETE", f"/containers/{self._q(ref)}", query=query, missing_ok=True)

    def container_logs(self, ref: str, tail: int = 200, since: str = "") -> bytes:
        query = {"stdout": "1", "stderr": "1", "tail": str(tail)}
        if since:
            query["since"] = since
        raw = self._call("GET", f"/containers/{self._q(ref)}/logs", query=query, missing_ok=True)
        return demux_logs(raw or b"")

    def exec_run(self, ref: str, argv: list[str]) -> tuple[int, bytes]:
        body = {"AttachStdout": True, "AttachStderr": True, "Cmd": list(argv)}
        exec_id = str(self._json("POST", f"/containers/{self._q(ref)}/exec", body=body)["Id"])
        # The answer is the output stream until the command ends (the engine then closes it).
        raw = self._call("POST", f"/exec/{exec_id}/start", body={"Detach": False, "Tty": False})
        self._conn.close()  # a hijacked connection is not reused
        info = self._json("GET", f"/exec/{exec_id}/json")
        return int(info.get("ExitCode") or 0), demux_logs(raw or b"")

    def close(self) -> None:
        self._conn.close()


class SocketEngine(HttpEngine):
    """The Engine API on a unix socket."""

    def __init__(self, host: str, socket_path: str, timeout: float = 60.0) -> None:
        super().__init__(host, _UnixConnection(socket_path, timeout))
        self._path = socket_path

    def _fetch(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        try:
            return super()._fetch(method, path, body)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise TransportError(
                f"{self._host}: cannot reach the Docker engine at unix://{self._path}: {reason}; "
                "is dockerd running?"
            ) from None


class SdkEngine(HttpEngine):
    """The same calls through a docker-py client's HTTP session (tcp:// engines)."""

    def __init__(self, host: str, client: Any) -> None:
        super().__init__(host, http.client.HTTPConnection("localhost"))
        self._client = client

    def _fetch(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        api = self._client.api
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            resp = api.request(method, api.base_url + path, data=body, headers=headers)
        except OSError as exc:
            raise TransportError(f"{self._host}: cannot reach the Docker engine: {exc}") from None
        return int(resp.status_code), bytes(resp.content)

    def close(self) -> None:
        pass  # the client belongs to the transport, which closes it
