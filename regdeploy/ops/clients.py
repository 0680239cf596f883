"""``clients mirror``: configure each client's runtimes to pull through the registries' caches.

Everything that can be refused (an unknown runtime, nothing to mirror, an upstream no cache serves,
no client) is refused before any client is touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regdeploy.errors import HostError, InputError, RegdeployError
from regdeploy.ops.client_machines import (
    NO_RUNTIME,
    Client,
    client_files,
    client_machines,
    failed,
    is_here,
    runtimes_on,
)

if TYPE_CHECKING:
    from regdeploy.clients.mirror import MirrorTarget
    from regdeploy.ops.certs import CertHosts, HostSpec
    from regdeploy.spec.registry import RegistrySpec

# --- clients mirror ---------------------------------------------------------------------------------


def mirror(
    inventory: Path | None,
    limit: str | None,
    connect: Mapping[str, Any],
    include_local: bool,
    remove: bool,
    registry_pattern: str | None,
    runtime: str | None,
    upstream: str | None,
    root: str | None,
    forks: int,
) -> dict[str, Any]:
    """Configure (or *remove*) the caches of the registries (*registry_pattern*) as mirrors on each
    client machine; the ``clients mirror --json`` object."""
    from regdeploy.clients.runtimes import ClientPaths, parse_runtimes
    from regdeploy.ops.certs import load_hosts
    from regdeploy.ops.fanout import fan_out

    chosen = parse_runtimes(runtime)
    ctx = load_hosts(inventory, registry_pattern, connect)
    with_proxies = [h for h in ctx.hosts if h[2].proxies]
    if not with_proxies:
        names = ", ".join(name for name, _, _ in ctx.hosts)
        raise InputError(
            f"{ctx.inventory.source}: no registry.proxies on {names}: nothing to mirror "
            "(add pull-through caches under registry.proxies)"
        )
    private = _private_ca(ctx, with_proxies)
    picked = _pick_upstream(with_proxies, upstream)
    clients = client_machines(ctx.inventory, limit, include_local, connect)
    paths = ClientPaths()

    def one(client: Client) -> dict[str, Any]:
        from regdeploy.clients.mirror import apply_mirrors

        targets = mirror_targets(picked, private, is_here(client))
        with client_files(client, root) as files:
            runtimes = runtimes_on(files, chosen, remove)
            outcome = apply_mirrors(files, runtimes, targets, remove, paths)
        if not runtimes:
            outcome.notes.append(NO_RUNTIME)
        return outcome.as_json()

    results = fan_out(clients, lambda c: c[0], one, forks)
    hosts = {name: r if not isinstance(r, RegdeployError) else failed(ctx.masker.mask, r)
             for name, r in results.items()}  # fmt: skip
    from regdeploy.clients.mirror import upstream_name

    mirrors = [
        {"registry": name, "proxy": p.name, "unit": proxy_unit(spec, p.name), "remoteurl": p.remoteurl,
         "upstream": upstream_name(p.remoteurl), "port": p.port}
        for name, _, spec in picked for p in spec.proxies
    ]  # fmt: skip
    return {
        "ok": all(h["ok"] for h in hosts.values()),
        "changed": any(h["changed"] for h in hosts.values()),
        "mirrors": mirrors,
        "hosts": hosts,
    }


def _private_ca(ctx: CertHosts, hosts: Sequence[HostSpec]) -> set[str]:
    """The registries whose caches clients verify with a CA regdeploy installs (certs trust)."""
    from regdeploy.certs.lookup import trusted_ca

    out = set()
    for name, _, spec in hosts:
        if spec.tls.mode == "selfsigned" or trusted_ca(spec, ctx.state, ctx.resolver).pem is not None:
            out.add(name)
    return out


def _pick_upstream(hosts: Sequence[HostSpec], upstream: str | None) -> list[HostSpec]:
    """*hosts* with only the proxies of *upstream* (``--upstream``: a name, host or URL)."""
    from dataclasses import replace

    from regdeploy.clients.mirror import upstream_name

    if upstream is None:
        return list(hosts)
    wanted = upstream_name(upstream.strip())
    picked = []
    for name, host_vars, spec in hosts:
        proxies = tuple(p for p in spec.proxies if upstream_name(p.remoteurl) == wanted)
        if proxies:
            picked.append((name, host_vars, replace(spec, proxies=proxies)))
    if not picked:
        served = sorted({f"{upstream_name(p.remoteurl)} ({proxy_unit(spec, p.name)})" for _, _, spec in hosts
                         for p in spec.proxies})  # fmt: skip
        raise InputError(f"--upstream {upstream}: no proxy serves it (served: {', '.join(served)})")
    return picked


def proxy_host(name: str, host_vars: Mapping[str, Any], sans: Sequence[str], same_machine: bool) -> str:
    """The host part of the address clients reach *name*'s caches by: its client address, or, for a
    client elsewhere when that is loopback, its first SAN that is not."""
    from regdeploy.transport.address import client_address, is_loopback

    host = client_address(name, host_vars)
    if same_machine or not is_loopback(host):
        return host
    other = next((s for s in sans if not s.startswith("*.") and not is_loopback(s)), None)
    if other is None:
        raise HostError(
            f"registry {name} is this machine's and names no other address: clients elsewhere cannot "
            "reach its caches (set tls.sans, or ansible_host)"
        )
    return other


def proxy_unit(spec: RegistrySpec, proxy: str) -> str:
    return f"{spec.name}-proxy-{proxy}"


def mirror_targets(hosts: Sequence[HostSpec], private: set[str], client_here: bool) -> list[MirrorTarget]:
    from regdeploy.clients.mirror import MirrorTarget
    from regdeploy.materials.host import host_sans
    from regdeploy.transport.address import host_port, is_local

    targets = []
    for name, host_vars, spec in hosts:
        same = client_here and is_local(name, host_vars)
        host = proxy_host(name, host_vars, host_sans(name, host_vars, spec), same)
        for p in spec.proxies:
            targets.append(MirrorTarget(name, p.name, p.remoteurl, host_port(host, p.port),
                                        tls=spec.tls.mode != "none", private_ca=name in private,
                                        unit=proxy_unit(spec, p.name)))  # fmt: skip
    return targets
