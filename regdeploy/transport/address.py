"""Is a host this machine, and by which ``host:port`` do clients reach its registry: decided here only.

Locality follows Ansible: a host is local when its ``ansible_connection`` is ``local``, or when it sets
none and is named ``localhost``, ``127.0.0.1`` or ``::1`` (Ansible's implicit localhost). regdeploy then
reaches it without SSH, and clients on this machine reach its registry as ``localhost`` (its certificate
always names it). Any other host is reached as ``ansible_host``, else its inventory name, as Ansible does.

``host:port`` is written as Docker writes a registry in an image reference, which is also the name of
its ``certs.d`` directory and its key in a Docker config's ``auths``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
HTTPS_PORT = 443  # Docker's default: a registry on it is named without a port


def connection(name: str, host_vars: Mapping[str, Any]) -> str:
    """``ansible_connection`` as Ansible reads it: the variable, else ``local`` for the implicit localhost,
    else ``ssh``. Not checked: :func:`regdeploy.transport.factory.connection_kind` refuses what regdeploy
    cannot use."""
    return str(host_vars.get("ansible_connection", "local" if name in LOCAL_NAMES else "ssh"))


def is_local(name: str, host_vars: Mapping[str, Any]) -> bool:
    """Whether inventory host *name* is this machine, reached without SSH."""
    return connection(name, host_vars) == "local"


def is_loopback(address: str) -> bool:
    """Whether *address* names the machine it is used on: a loopback IP, ``localhost`` or a name under
    ``.localhost`` (RFC 6761). On another machine (or in a container) such an address is that one."""
    try:
        return ipaddress.ip_address(address.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return address == "localhost" or address.endswith(".localhost")


def client_address(name: str, host_vars: Mapping[str, Any]) -> str:
    """The name clients use for host *name*'s registry, which its certificate must match: ``localhost``
    for a local host, else ``ansible_host`` when set, else the inventory name."""
    if is_local(name, host_vars):
        return "localhost"
    return str(host_vars.get("ansible_host") or name)


def host_port(host: str, port: int | None) -> str:
    """``host:port`` as Docker writes a registry: IPv6 in brackets; no port for 443 (None: 443, as a URL
    without one), unless the bare host would not read as a registry. Docker takes a first component
    without "." or ":" that is not ``localhost`` for a Docker Hub namespace, so ``reg1`` stays ``reg1:443``.
    """
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    port = HTTPS_PORT if port is None else port
    if port == HTTPS_PORT and ("." in shown or ":" in shown or shown == "localhost"):
        return shown
    return f"{shown}:{port}"


def registry_hostport(name: str, host_vars: Mapping[str, Any], port: int) -> str:
    """``host:port`` of host *name*'s registry published on *port*, as clients write it."""
    return host_port(client_address(name, host_vars), port)
