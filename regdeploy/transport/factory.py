"""Choose a transport from a host's Ansible connection variables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regdeploy.errors import InputError
from regdeploy.transport.base import Transport
from regdeploy.transport.local import LocalTransport


def open_transport(host: str, host_vars: Mapping[str, Any]) -> Transport:
    connection = host_vars.get(
        "ansible_connection", "ssh" if host not in ("localhost", "127.0.0.1") else "local"
    )
    if connection == "local":
        return LocalTransport(host, host_vars.get("regdeploy_docker_host"))
    if connection in ("ssh", "paramiko", "smart"):
        raise InputError(
            f"host '{host}': ansible_connection {connection!r}: remote hosts over SSH are not supported yet"
        )
    raise InputError(f"host '{host}': ansible_connection {connection!r} is not supported (use local or ssh)")
