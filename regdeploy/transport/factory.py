"""Choose a transport from a host's Ansible connection variables."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from regdeploy.errors import InputError
from regdeploy.transport.address import connection as ansible_connection
from regdeploy.transport.base import Transport
from regdeploy.transport.hostvars import CONNECTION_VARS
from regdeploy.transport.local import LocalTransport


def connection_kind(host: str, host_vars: Mapping[str, Any]) -> str:
    """``local`` or ``ssh``, as Ansible decides it (localhost is implicitly local)."""
    connection = ansible_connection(host, host_vars)
    if connection == "local":
        return "local"
    if connection in ("ssh", "paramiko", "smart"):
        return "ssh"
    raise InputError(f"host '{host}': ansible_connection {connection!r} is not supported (use local or ssh)")


def open_transport(
    host: str, host_vars: Mapping[str, Any], notify: Callable[[str], None] | None = None
) -> Transport:
    """A transport for *host*. Nothing is contacted yet: an SSH transport connects on first use.

    Raises InputError for connection variables that cannot work (checked before any host is touched
    when called from the prepare step).
    """
    if connection_kind(host, host_vars) == "local":
        return LocalTransport(host, host_vars.get("regdeploy_docker_host"))
    from regdeploy.transport.sshconfig import import_paramiko, resolve_target

    import_paramiko()  # before the SSH modules import it the slow way
    from regdeploy.transport.ssh import SSHTransport

    return SSHTransport(resolve_target(host, host_vars), notify)


def check_connection(host: str, host_vars: Mapping[str, Any]) -> None:
    """Raise InputError now for connection variables that cannot work; contacts nothing."""
    from regdeploy.inventory.unevaluated import problem

    for name in CONNECTION_VARS:
        reason = problem(host_vars.get(name))
        if reason is not None:
            raise InputError(f"host '{host}': {name} {reason}")
    if connection_kind(host, host_vars) == "ssh":
        from regdeploy.transport.sshconfig import resolve_target

        resolve_target(host, host_vars, check_files=False)
