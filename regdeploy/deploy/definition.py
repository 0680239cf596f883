"""The registry container's definition: what it must look like, and how it differs from what runs.

The definition is plain data stored in a label on the container, so a later run compares the
wanted definition with the recorded one and names each difference (community.docker's idea: the
diff is data, and the same data decides recreation and what the plan prints).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from regdeploy.deploy.render import CONTAINER_CONFIG_DIR, CONTAINER_DATA_DIR
from regdeploy.spec.registry import RegistrySpec

LABEL_MANAGED = "io.regdeploy.managed"
LABEL_HOST = "io.regdeploy.host"
LABEL_DEFINITION = "io.regdeploy.definition"
DEBUG_CONTAINER_PORT = "5001/tcp"
OLD_SUFFIX = "-regdeploy-old"

Definition = dict[str, Any]


def definition(spec: RegistrySpec, image_id: str | None, restart_digest: str) -> Definition:
    ports = [{"container": "5000/tcp", "host_ip": spec.bind, "host_port": spec.port}]
    if spec.debug_port is not None:
        # The debug server lists webhook headers (tokens): never publish it beyond loopback.
        ports.append(
            {"container": DEBUG_CONTAINER_PORT, "host_ip": "127.0.0.1", "host_port": spec.debug_port}
        )
    env = {"OTEL_TRACES_EXPORTER": "none"} if spec.version >= 3 else {}
    return {
        "image": spec.image,
        "image_id": image_id,
        "command": ["serve", f"{CONTAINER_CONFIG_DIR}/config.yml"],
        "ports": ports,
        "mounts": [
            {"source": spec.config_dir, "target": CONTAINER_CONFIG_DIR, "read_only": True},
            {"source": spec.data_dir, "target": CONTAINER_DATA_DIR, "read_only": False},
        ],
        "env": env,
        "restart": spec.restart,
        "files": restart_digest,
    }


def labels(spec: RegistrySpec, wanted: Definition) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_HOST: spec.host,
        LABEL_DEFINITION: json.dumps(wanted, sort_keys=True, separators=(",", ":")),
    }


def create_kwargs(spec: RegistrySpec, wanted: Definition, name: str) -> dict[str, Any]:
    """Arguments for docker-py's ``containers.create``."""
    restart: dict[str, Any] = {"Name": spec.restart}
    if spec.restart == "on-failure":
        restart["MaximumRetryCount"] = 5
    return {
        "image": wanted["image_id"] or spec.image,
        "command": wanted["command"],
        "name": name,
        "detach": True,
        "ports": {p["container"]: (p["host_ip"], p["host_port"]) for p in wanted["ports"]},
        "volumes": {
            m["source"]: {"bind": m["target"], "mode": "ro" if m["read_only"] else "rw"}
            for m in wanted["mounts"]
        },
        "environment": wanted["env"],
        "restart_policy": restart,
        "labels": labels(spec, wanted),
        "log_config": {"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}},
    }


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
    return reasons


def _short(image_id: Any) -> str:
    text = str(image_id or "none")
    return text.removeprefix("sha256:")[:12]


def _ports(ports: Any) -> str:
    if not isinstance(ports, list):
        return "?"
    return ",".join(f"{p.get('host_ip')}:{p.get('host_port')}" for p in ports if isinstance(p, dict))


def _mounts(mounts: Any) -> str:
    if not isinstance(mounts, list):
        return "?"
    return ",".join(f"{m.get('source')}:{m.get('target')}" for m in mounts if isinstance(m, dict))
