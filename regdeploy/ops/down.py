"""Stop and remove a host's units and their network; keep data and config unless asked to purge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regdeploy.deploy.definition import OLD_SUFFIX
from regdeploy.deploy.facts import inspect_container, registry_containers
from regdeploy.deploy.units import unit_names
from regdeploy.errors import HostError
from regdeploy.spec.registry import RegistrySpec
from regdeploy.transport import open_transport
from regdeploy.transport.base import Transport


def down_host(
    name: str, host_vars: Mapping[str, Any], spec: RegistrySpec, purge_data: bool
) -> list[dict[str, str]]:
    """The changes made, as ``{"resource", "action", "reason"}``; empty when there was nothing to do."""
    from regdeploy.ops.drain import drained

    transport = open_transport(name, host_vars)
    try:
        # A replica behind balancers gets no new clients while it goes (its checks then keep it out).
        view = spec.cluster_view if spec.serves else None
        with drained(name, view, lambda message: None):
            return take_down(transport, spec, purge_data)
    finally:
        transport.close()


def take_down(transport: Transport, spec: RegistrySpec, purge_data: bool) -> list[dict[str, str]]:
    """Remove every unit of *spec*'s registry (the registry last: it sends to the others), the
    leftovers of interrupted runs and the network. Refuses, before removing anything, when a
    container by a unit's name was not made by regdeploy."""
    engine = transport.engine()
    names = [n for n, _ in unit_names(spec)]
    found = {}
    for cname in [*names, *(n + OLD_SUFFIX for n in names)]:
        facts = inspect_container(engine, cname)
        if facts is None:
            continue
        if not facts.managed:
            raise HostError(
                f"{transport.host}: container {cname!r} was not created by regdeploy; not removing it"
            )
        found[cname] = facts
    for facts in registry_containers(engine, spec):
        found.setdefault(facts.name, facts)
    order = sorted(found, key=lambda n: (n.removesuffix(OLD_SUFFIX) == spec.name, n))
    changes: list[dict[str, str]] = []
    for cname in order:
        # Never volumes: anonymous volumes of an adopted container may hold someone's data.
        engine.remove_container(found[cname].id, force=True)
        changes.append({"resource": f"container:{cname}", "action": "remove", "reason": "down"})
    if engine.inspect_network(spec.network) is not None:
        engine.remove_network(spec.network)
        changes.append({"resource": f"network:{spec.network}", "action": "remove", "reason": "down"})
    if spec.gc is not None:  # a schedule would keep restarting a registry that is down
        from regdeploy.deploy.render_gc import cron_file

        entry = cron_file(spec)
        if transport.stat_many([entry])[entry] is not None:
            transport.remove_file(entry)
            changes.append({"resource": f"file:{entry}", "action": "remove", "reason": "down"})
    if purge_data:  # the relay's queue lives in data_dir: kept or purged with it
        for path in (spec.data_dir, spec.config_dir):
            if transport.stat_many([path])[path] is not None:
                transport.remove_tree(path)
                changes.append({"resource": f"dir:{path}", "action": "remove", "reason": "--purge-data"})
    return changes
