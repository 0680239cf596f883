"""The previous generation of a host: what the last changing `up` replaced, for `regdeploy rollback`.

A generation is the files that `up` rewrote, as they were before (None: the file did not exist), and
each unit's container definition before it (None: `up` created that unit). Definitions are the
labels the containers carried, so a unit can be recreated from one exactly as it ran. Plain data
with a JSON form; the state directory keeps one per host (0600: config files hold secrets).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regdeploy.deploy.definition import Definition
from regdeploy.deploy.files import Rendered, RenderedFile
from regdeploy.deploy.units import Mount, Port, Probe, Unit
from regdeploy.spec.run import RunSpec

# How a unit of each role tells it serves, for units rebuilt from a definition alone.
_LOG_MARKERS = {"relay": "listening on http://0.0.0.0:", "token": "token server: listening on"}

FileBefore = tuple[bytes | None, int, tuple[int, int] | None]  # data (None: absent), mode, owner


@dataclass(frozen=True)
class Generation:
    files: Mapping[str, FileBefore]
    units: Mapping[str, tuple[str, Definition | None]]  # name -> (role, definition before; None: new)

    @property
    def empty(self) -> bool:
        return not self.files and not self.units

    def to_json(self) -> bytes:
        files = {
            path: {
                "data": None if data is None else base64.b64encode(data).decode(),
                "mode": mode,
                "owner": list(owner) if owner else None,
            }
            for path, (data, mode, owner) in self.files.items()
        }
        units = {name: {"role": role, "definition": d} for name, (role, d) in self.units.items()}
        return json.dumps({"version": 1, "files": files, "units": units}, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Generation:
        doc = json.loads(raw)
        files: dict[str, FileBefore] = {}
        for path, f in doc.get("files", {}).items():
            owner = tuple(f["owner"]) if f.get("owner") else None
            data = None if f.get("data") is None else base64.b64decode(f["data"])
            files[path] = (data, int(f["mode"]), (int(owner[0]), int(owner[1])) if owner else None)
        units = {name: (str(u["role"]), u.get("definition")) for name, u in doc.get("units", {}).items()}
        return cls(files, units)

    def rendered(self) -> Rendered:
        """The files to write back (those that existed before; new ones stay, harmless)."""
        return Rendered(
            (),
            tuple(
                RenderedFile(path, data, mode, restart=True, secret=True, owner=owner)
                for path, (data, mode, owner) in self.files.items()
                if data is not None
            ),
        )


def unit_from_definition(name: str, role: str, d: Definition) -> Unit:
    """The unit a recorded definition describes (what `create_body` needs to make it again)."""
    run = d.get("run") or {}
    ports = tuple(Port(p["container"], p["host_ip"], int(p["host_port"])) for p in d.get("ports", []))
    if role in _LOG_MARKERS:
        probe = Probe("log", marker=_LOG_MARKERS[role])
    else:
        probe = Probe("http", port=ports[0].host_port if ports else 0)
    return Unit(
        name=name,
        role=role,
        image=str(d["image"]),
        command=tuple(d.get("command", ())),
        run=RunSpec(
            user=run.get("user"),
            memory=int(run.get("memory", RunSpec.memory)),
            pids=int(run.get("pids", RunSpec.pids)),
            read_only=bool(run.get("read_only", True)),
            cap_add=tuple(run.get("cap_add", ())),
        ),
        restart=str(d.get("restart", "unless-stopped")),
        probe=probe,
        ports=ports,
        mounts=tuple(Mount(m["source"], m["target"], bool(m["read_only"])) for m in d.get("mounts", [])),
        env=dict(d.get("env", {})),
        network=str(d.get("network", "")),
        aliases=tuple(d.get("aliases", ())),
        tmpfs=dict(run.get("tmpfs", {})),
    )


def describe(generation: Generation) -> dict[str, Any]:
    """What a rollback would put back, for output (no file contents)."""
    return {
        "files": sorted(generation.files),
        "units": {n: ("remove" if d is None else "restore") for n, (_, d) in generation.units.items()},
    }
