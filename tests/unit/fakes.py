"""A fake Docker engine and a fake host behind regdeploy's seams, for unit tests of apply and down.

The engine keeps containers and networks in memory and answers as the Engine API does: a name
taken is a 409, a missing container a 404 (None for inspect). A container whose image is listed in
``broken_images`` exits at start, as a registry with a bad config does.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from regdeploy.errors import TransportError
from regdeploy.transport.base import FileState
from regdeploy.transport.engine_api import EngineError


class FakeEngine:
    def __init__(self, log_line: str = "") -> None:
        self.containers: dict[str, dict[str, Any]] = {}  # id -> inspect document
        self.networks: dict[str, dict[str, Any]] = {}
        self.images: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.broken_images: set[str] = set()
        self.log_line = log_line
        self._ids = itertools.count(1)

    # --- helpers for tests -------------------------------------------------------------------------
    def by_name(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.containers.values() if c["Name"] == "/" + name), None)

    def running(self) -> list[str]:
        return sorted(c["Name"][1:] for c in self.containers.values() if c["State"]["Status"] == "running")

    def _find(self, ref: str) -> dict[str, Any]:
        found = self.containers.get(ref) or self.by_name(ref)
        if found is None:
            raise EngineError(f"fake: no such container: {ref}", 404, f"No such container: {ref}")
        return found

    # --- the Engine protocol -----------------------------------------------------------------------
    def inspect_container(self, ref: str) -> dict[str, Any] | None:
        try:
            return self._find(ref)
        except EngineError:
            return None

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        return {"Id": self.images[ref]} if ref in self.images else None

    def list_containers(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return [
            {"Id": c["Id"], "Names": [c["Name"]]}
            for c in self.containers.values()
            if all(c["Config"]["Labels"].get(k) == v for k, v in labels.items())
        ]

    def inspect_network(self, name: str) -> dict[str, Any] | None:
        return self.networks.get(name)

    def create_network(self, name: str, labels: Mapping[str, str]) -> str:
        self.calls.append(("create_network", name))
        self.networks[name] = {"Name": name, "Labels": dict(labels)}
        return name

    def remove_network(self, name: str) -> None:
        self.calls.append(("remove_network", name))
        self.networks.pop(name, None)

    def create_container(self, name: str, body: Mapping[str, Any]) -> str:
        self.calls.append(("create", name))
        if self.by_name(name) is not None:
            raise EngineError(f"fake: name {name} in use", 409, f"Conflict. The name {name} is in use")
        cid = f"id{next(self._ids)}"
        self.containers[cid] = {
            "Id": cid,
            "Name": "/" + name,
            "Image": body["Image"],
            "State": {"Status": "created", "ExitCode": 0, "StartedAt": ""},
            "Config": {"Labels": dict(body.get("Labels") or {}), "User": body.get("User")},
            "HostConfig": dict(body.get("HostConfig") or {}),
            "RestartCount": 0,
        }
        return cid

    def start_container(self, ref: str) -> None:
        c = self._find(ref)
        self.calls.append(("start", c["Name"][1:]))
        broken = c["Image"] in self.broken_images
        c["State"] = {"Status": "exited" if broken else "running", "ExitCode": 1 if broken else 0,
                      "StartedAt": "now"}  # fmt: skip

    def stop_container(self, ref: str, timeout: int = 10) -> None:
        c = self._find(ref)
        self.calls.append(("stop", c["Name"][1:]))
        c["State"]["Status"] = "exited"

    def restart_container(self, ref: str, timeout: int = 10) -> None:
        self.stop_container(ref, timeout)
        self.start_container(ref)

    def rename_container(self, ref: str, new_name: str) -> None:
        c = self._find(ref)
        self.calls.append(("rename", f"{c['Name'][1:]}->{new_name}"))
        c["Name"] = "/" + new_name

    def remove_container(self, ref: str, force: bool = False) -> None:
        c = self.inspect_container(ref)
        if c is None:
            return
        self.calls.append(("remove", c["Name"][1:]))
        del self.containers[c["Id"]]

    def container_logs(self, ref: str, tail: int = 200, since: str = "") -> bytes:
        c = self.inspect_container(ref)
        if c is None:
            return b""
        if c["State"]["Status"] == "exited" and c["State"]["ExitCode"]:
            return b"level=fatal msg=\"configuration error\"\n"
        return (self.log_line + "\n").encode()

    def exec_run(self, ref: str, argv: list[str]) -> tuple[int, bytes]:
        self.calls.append(("exec", self._find(ref)["Name"][1:]))
        return 0, b""

    def close(self) -> None:
        pass


class FakeHost:
    """A host's files and its engine, as the Transport protocol has them."""

    def __init__(self, engine: FakeEngine, host: str = "fake") -> None:
        self.host = host
        self.files: dict[str, tuple[bytes, int, tuple[int, int] | None]] = {}
        self.dirs: dict[str, int] = {}
        self.owners: dict[str, tuple[int, int]] = {}
        self._engine = engine

    @property
    def address(self) -> str:
        return "127.0.0.1"

    def stat_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        import hashlib

        out: dict[str, FileState | None] = {}
        for p in paths:
            if p in self.dirs:
                out[p] = FileState("dir", self.dirs[p], None, *self.owners.get(p, (0, 0)))
            elif p in self.files:
                data, mode, owner = self.files[p]
                out[p] = FileState("file", mode, hashlib.sha256(data).hexdigest(), *(owner or (0, 0)))
            else:
                out[p] = None
        return out

    def read_file(self, path: str) -> bytes | None:
        return self.files[path][0] if path in self.files else None

    def put_file(self, path: str, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
        self.files[path] = (data, mode, owner)

    def chown(self, path: str, uid: int, gid: int, recursive: bool = False) -> None:
        self.owners[path] = (uid, gid)

    def identity(self) -> tuple[int, int]:
        return 0, 0

    def makedirs(self, path: str, mode: int) -> None:
        self.dirs[path] = mode

    def chmod(self, path: str, mode: int) -> None:
        if path in self.dirs:
            self.dirs[path] = mode
        else:
            data, _, owner = self.files[path]
            self.files[path] = (data, mode, owner)

    def remove_tree(self, path: str) -> None:
        for p in [p for p in self.files if p.startswith(path + "/")]:
            del self.files[p]
        for p in [p for p in self.dirs if p == path or p.startswith(path + "/")]:
            del self.dirs[p]

    def remove_file(self, path: str) -> None:
        self.files.pop(path, None)

    def remove_empty_dir(self, path: str) -> bool:
        return False

    def creatable_problem(self, path: str) -> str | None:
        return None

    def port_in_use(self, bind: str, port: int) -> bool:
        return False

    def dir_size(self, path: str) -> int | None:
        return 0

    def free_space(self, path: str) -> int | None:
        return 1 << 40

    def engine(self) -> FakeEngine:
        return self._engine

    def docker(self) -> Any:
        raise TransportError("the fake host has no docker-py client")

    def close(self) -> None:
        pass
