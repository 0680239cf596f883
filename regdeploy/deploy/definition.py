"""A unit's container definition: what it must look like, and how it differs from what runs.

The definition is plain data stored in a label on the container, so a later run compares the
wanted definition with the recorded one and names each difference (community.docker's idea: the
diff is data, and the same data decides recreation and what the plan prints). The Engine API body
that creates the container is built from the same data (:func:`create_body`), by a pure function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from regdeploy.deploy.units import Unit
from regdeploy.spec.run import human_size

LABEL_MANAGED = "io.regdeploy.managed"
LABEL_HOST = "io.regdeploy.host"
LABEL_DEFINITION = "io.regdeploy.definition"
LABEL_REGISTRY = "io.regdeploy.registry"  # the registry (spec.name) a unit or network belongs to
LABEL_ROLE = "io.regdeploy.role"
OLD_SUFFIX = "-regdeploy-old"
NO_NEW_PRIVILEGES = "no-new-privileges:true"
LOG_CONFIG = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}

Definition = dict[str, Any]


def definition(unit: Unit, image_id: str | None, start_digest: str) -> Definition:
    return {
        "image": unit.image,
        "image_id": image_id,
        "command": list(unit.command),
        "ports": [
            {"container": p.container, "host_ip": p.host_ip, "host_port": p.host_port} for p in unit.ports
        ],
        "mounts": [{"source": m.source, "target": m.target, "read_only": m.read_only} for m in unit.mounts],
        "env": dict(unit.env),
        "restart": unit.restart,
        "files": start_digest,
        "network": unit.network,
        "aliases": list(unit.aliases),
        "run": {
            "user": unit.run.effective_user,
            "read_only": unit.run.read_only,
            "cap_add": list(unit.run.cap_add),
            "memory": unit.run.memory,
            "pids": unit.run.pids,
            "tmpfs": dict(unit.tmpfs),
        },
    }


def labels(host: str, registry: str, unit: Unit, wanted: Definition) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_HOST: host,
        LABEL_REGISTRY: registry,
        LABEL_ROLE: unit.role,
        LABEL_DEFINITION: json.dumps(wanted, sort_keys=True, separators=(",", ":")),
    }


def create_body(unit: Unit, wanted: Definition, unit_labels: Mapping[str, str]) -> dict[str, Any]:
    """The Engine API ``ContainerCreate`` body for *unit* (pure): hardened as its run options say."""
    restart: dict[str, Any] = {"Name": unit.restart}
    if unit.restart == "on-failure":
        restart["MaximumRetryCount"] = 5
    run = unit.run
    host_config: dict[str, Any] = {
        "Binds": [f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in unit.mounts],
        "PortBindings": _bindings(unit),
        "RestartPolicy": restart,
        "LogConfig": LOG_CONFIG,
        "ReadonlyRootfs": run.read_only,
        "CapDrop": ["ALL"],
        "CapAdd": list(run.cap_add) or None,
        "SecurityOpt": [NO_NEW_PRIVILEGES],
        "Memory": run.memory,
        "MemorySwap": run.memory,  # no swap beyond the limit
        "PidsLimit": run.pids,
        "Tmpfs": dict(unit.tmpfs) or None,
        "NetworkMode": unit.network or "default",
    }
    body: dict[str, Any] = {
        "Image": wanted["image_id"] or unit.image,
        "Cmd": list(unit.command),
        "Env": [f"{k}={v}" for k, v in sorted(unit.env.items())],
        "User": run.effective_user,
        "Labels": dict(unit_labels),
        "ExposedPorts": {p.container: {} for p in unit.ports},
        "HostConfig": host_config,
    }
    if unit.network:
        body["NetworkingConfig"] = {"EndpointsConfig": {unit.network: {"Aliases": list(unit.aliases)}}}
    return body


def _bindings(unit: Unit) -> dict[str, list[dict[str, str]]]:
    """One container port may be published on several host addresses (debug and metrics)."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in unit.ports:
        out.setdefault(p.container, []).append({"HostIp": p.host_ip, "HostPort": str(p.host_port)})
    return out


def recorded_definition(container_labels: Mapping[str, str]) -> Definition | None:
    raw = container_labels.get(LABEL_DEFINITION)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def differences(wanted: Definition, recorded: Definition | None) -> list[str]:
    """Human reasons, one per changed aspect; empty when the running container already fits."""
    if recorded is None:
        return ["the container carries no regdeploy definition"]
    reasons = []
    if wanted.get("image") != recorded.get("image"):
        reasons.append(f"image {recorded.get('image')} -> {wanted.get('image')}")
    elif wanted.get("image_id") != recorded.get("image_id"):
        after = _short(wanted.get("image_id")) if wanted.get("image_id") else "to be pulled"
        reasons.append(f"image {wanted.get('image')} changed ({_short(recorded.get('image_id'))} -> {after})")
    if wanted.get("ports") != recorded.get("ports"):
        reasons.append(f"ports {_ports(recorded.get('ports'))} -> {_ports(wanted.get('ports'))}")
    if wanted.get("mounts") != recorded.get("mounts"):
        reasons.append(f"mounts {_mounts(recorded.get('mounts'))} -> {_mounts(wanted.get('mounts'))}")
    if wanted.get("env") != recorded.get("env"):
        reasons.append("environment changed")
    if wanted.get("restart") != recorded.get("restart"):
        reasons.append(f"restart policy {recorded.get('restart')} -> {wanted.get('restart')}")
    if wanted.get("command") != recorded.get("command"):
        reasons.append("command changed")
    if wanted.get("files") != recorded.get("files"):
        reasons.append("config.yml or TLS files changed (the registry reads them only at start)")
    if (wanted.get("network"), wanted.get("aliases")) != (recorded.get("network"), recorded.get("aliases")):
        before = recorded.get("network") or "the default bridge"
        reasons.append(f"network {before} -> {wanted.get('network') or 'the default bridge'}")
    if wanted.get("run") != recorded.get("run"):
        reasons.append(_run_reason(recorded.get("run"), wanted.get("run")))
    return reasons


def _run_reason(before: Any, after: Any) -> str:
    if not isinstance(before, dict):
        return "hardening: run as a non-root user with a read-only root, no capabilities, limits"
    changed = []
    for key in ("user", "read_only", "cap_add", "memory", "pids", "tmpfs"):
        old, new = before.get(key), (after or {}).get(key)
        if old != new:
            if key == "memory" and isinstance(old, int) and isinstance(new, int):
                old, new = human_size(old), human_size(new)
            changed.append(f"{key} {old} -> {new}")
    return "run options: " + ", ".join(changed)


def _short(image_id: Any) -> str:
    text = str(image_id or "none")
    return text.removeprefix("sha256:")[:12]


def _ports(ports: Any) -> str:
    if not isinstance(ports, list):
        return "?"
    return (
        ",".join(f"{p.get('host_ip')}:{p.get('host_port')}" for p in ports if isinstance(p, dict)) or "none"
    )


def _mounts(mounts: Any) -> str:
    if not isinstance(mounts, list):
        return "?"
    return ",".join(f"{m.get('source')}:{m.get('target')}" for m in mounts if isinstance(m, dict))
