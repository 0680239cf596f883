"""The client machines ``certs trust`` and ``clients mirror`` work on: which they are (the group
`clients`, --limit, --local), reaching each one's files, and which runtimes to work on there."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from regdeploy.errors import InputError, RegdeployError

if TYPE_CHECKING:
    from regdeploy.certs.trust import ClientFiles
    from regdeploy.inventory import Inventory

CONTROL_MACHINE = "(control machine)"
NO_RUNTIME = (
    "no container runtime found (docker, containerd, podman, k3s): nothing to do; choose with --runtime"
)

Client = tuple[str, Mapping[str, Any] | None]  # host vars None: the control machine


def client_machines(
    inventory: Inventory, limit: str | None, include_local: bool, connect: Mapping[str, Any]
) -> list[Client]:
    """(name, host vars) of each client machine; vars None for the control machine.

    Clients that are this machine (transport/address.py) appear once, so the same files are never
    written by two workers at once.
    """
    from regdeploy.transport.address import is_local

    group = set(inventory.groups.get("clients", ()))
    chosen: list[Client] = []
    if limit is not None or group:
        candidates = inventory.select(limit) if limit is not None else list(inventory.hosts.values())
        chosen += [(h.name, {**h.vars, **connect}) for h in candidates if h.name in group]
    if include_local:
        chosen.append((CONTROL_MACHINE, None))
    here = [c for c in chosen if c[1] is None or is_local(c[0], c[1])]
    chosen = [c for c in chosen if c not in here[1:]]
    if not chosen:
        where = f" matching --limit {limit!r}" if limit else ""
        raise InputError(
            f"{inventory.source}: no client machine{where}: add hosts to an inventory group `clients`, "
            "or pass --local for this machine"
        )
    return chosen


def is_here(client: Client) -> bool:
    from regdeploy.transport.address import is_local

    name, host_vars = client
    return host_vars is None or is_local(name, host_vars)


@contextlib.contextmanager
def client_files(client: Client, root: str | None = None) -> Iterator[ClientFiles]:
    """The client's files (under *root* when given): this machine's, or over its transport."""
    from regdeploy.certs.trust import LocalFiles, TransportFiles
    from regdeploy.clients.files import rooted
    from regdeploy.transport import open_transport

    name, host_vars = client
    if is_here(client):
        yield rooted(LocalFiles(), root)
        return
    assert host_vars is not None
    transport = open_transport(name, host_vars)
    try:
        yield rooted(TransportFiles(transport), root)
    finally:
        transport.close()


def runtimes_on(files: ClientFiles, chosen: tuple[str, ...] | None, remove: bool) -> tuple[str, ...]:
    """The runtimes to work on: *chosen* (``--runtime``), else every one for a removal (files of a
    runtime removed since are taken away too), else those detected on the client."""
    from regdeploy.clients.runtimes import RUNTIMES, detect

    if chosen is not None:
        return chosen
    return RUNTIMES if remove else detect(files)


def failed(masker_mask: Any, exc: RegdeployError) -> dict[str, Any]:
    return {"ok": False, "changed": False, "runtimes": [], "changes": [], "notes": [], "warnings": [],
            "reload": [], "error": masker_mask(str(exc))}  # fmt: skip
