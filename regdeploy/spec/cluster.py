"""Clusters: replicas of one registry on several hosts, behind load balancers. Pure.

``registry.cluster: NAME`` makes a host a replica of cluster NAME; ``registry_lb: {cluster: NAME}``
makes a host run a load balancer in front of that cluster's replicas. Each host's spec is parsed on
its own; :func:`resolve` then looks at the whole inventory (never only ``--limit``'s hosts: a
balancer must know every replica) and gives each spec what it needs of the others: the names the
certificate must hold, the redis address, the balancer's backends. Whatever makes replicas
disagree (storage, cache, auth, TLS mode) is bad input here, before any host is touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from regdeploy.errors import SpecError
from regdeploy.materials.secrets import SecretRef
from regdeploy.spec import validate as v
from regdeploy.spec.run import SIDECAR_RUN, RunSpec, parse_run
from regdeploy.spec.storage import RedisSpec
from regdeploy.transport.address import client_address, host_port

LB_IMAGE = "haproxy:2.8"
LB_KEYS = ("cluster", "port", "bind", "name", "image", "config_dir", "check_interval", "balance", "run")
BALANCE = ("roundrobin", "leastconn")
REGISTRY_CONTAINER_PORT = 5000  # config.yml's http.addr: where a registry listens in its container
LB_RISE = 2  # health checks a replica passes before the balancer sends it clients (haproxy.cfg)


@dataclass(frozen=True)
class Backend:
    """A replica as a balancer reaches it."""

    host: str  # inventory name
    address: str  # how other hosts reach it
    port: int
    # A replica on the balancer's own host is reached on the private network its units share:
    # its container's name (re-resolved by the balancer: a replaced container changes address)
    # and its container port. No loopback trap, no published-port hairpin.
    local: bool = False


@dataclass(frozen=True)
class BalancerAccess:
    """How `up` reaches a balancer's admin socket to drain a replica before replacing it."""

    host: str
    vars: Mapping[str, Any] = field(compare=False, repr=False)  # its connection variables
    socket: str = ""  # the admin socket's path on that host


@dataclass(frozen=True)
class LbSpec:
    cluster: str
    port: int = 443
    bind: str = "0.0.0.0"
    name: str = "registry-lb"
    image: str = LB_IMAGE
    config_dir: str = "/etc/regdeploy-lb"
    check_interval: str = "1s"
    balance: str = "roundrobin"
    run: RunSpec = SIDECAR_RUN
    backends: tuple[Backend, ...] = ()  # set by resolve()


@dataclass(frozen=True)
class ClusterView:
    """What a replica (or a balancer) knows of its cluster."""

    name: str
    members: tuple[Backend, ...]
    balancers: tuple[Backend, ...]
    sans: tuple[str, ...]  # every member's and balancer's names: the certificate holds them all
    settle: float = 0.0  # seconds a balancer needs to take a replaced replica back (rise x inter)
    access: tuple[BalancerAccess, ...] = ()

    def describe(self) -> str:
        lbs = ", ".join(host_port(b.address, b.port) for b in self.balancers) or "no balancer"
        hosts = ", ".join(m.host for m in self.members)
        return f"cluster {self.name}: {len(self.members)} replicas ({hosts}); {lbs}"


def standby_server(host: str) -> str:
    """The balancer's server name of the standby beside *host*'s lone replica (never another host's
    name: the cluster has that one replica)."""
    return f"{host}.standby"


def lone_local_replica(spec: Any) -> Backend | None:
    """The replica a balancer fronts alone on its own host: the one a standby can stand in for."""
    lb: LbSpec | None = spec.lb
    if lb is None or len(lb.backends) != 1 or not lb.backends[0].local:
        return None
    return lb.backends[0]


def lb_admin_dir(config_dir: str) -> str:
    """The host directory of a balancer's admin socket (haproxy's runtime API), mounted read-write."""
    return f"{config_dir}/lb-admin"


def lb_admin_socket(config_dir: str) -> str:
    return f"{lb_admin_dir(config_dir)}/admin.sock"


def parse_lb(raw: Any, where: v.Where) -> LbSpec:
    data = v.mapping(raw, where, LB_KEYS)
    if data.get("cluster") is None:
        where.child("cluster").fail("is required: the registry.cluster this balancer fronts")
    d = LbSpec(cluster="")
    return LbSpec(
        cluster=v.string(
            data["cluster"], where.child("cluster"), v.CONTAINER_NAME_RE, "letters, digits, _ . -"
        ),
        port=v.port(data.get("port", d.port), where.child("port")),
        bind=v.ip_address(data.get("bind", d.bind), where.child("bind")),
        name=v.string(
            data.get("name", d.name), where.child("name"), v.CONTAINER_NAME_RE, "letters, digits, _ . -"
        ),
        image=v.string(
            data.get("image", d.image), where.child("image"), v.IMAGE_RE, "expected an image reference"
        ),
        config_dir=v.absolute_path(data.get("config_dir", d.config_dir), where.child("config_dir")),
        check_interval=v.duration(
            data.get("check_interval", d.check_interval), where.child("check_interval")
        ),
        balance=v.choice(data.get("balance", d.balance), where.child("balance"), BALANCE),
        run=parse_run(data.get("run"), where.child("run"), SIDECAR_RUN),
    )


Entry = tuple[str, Mapping[str, Any], Any]  # (host, vars, RegistrySpec)


def _fail(source: str, host: str, key: str, message: str) -> SpecError:
    return SpecError(f"{source}: host '{host}': {key}: {message}")


def resolve(entries: Sequence[Entry], source: str) -> dict[str, Any]:
    """Every host's spec with its cluster resolved (host -> RegistrySpec). SpecError on bad input."""
    specs: dict[str, Any] = {host: spec for host, _, spec in entries}
    host_vars = {host: hv for host, hv, _ in entries}
    clusters: dict[str, list[str]] = {}
    for host, _, spec in entries:
        if spec.cluster is not None and spec.serves:
            clusters.setdefault(spec.cluster, []).append(host)
    for host, _, spec in entries:
        if spec.lb is not None and spec.lb.cluster not in clusters:
            known = (
                f" (clusters: {', '.join(sorted(clusters))})"
                if clusters
                else " (no host sets registry.cluster)"
            )
            raise _fail(source, host, "registry_lb.cluster", f"names no cluster {spec.lb.cluster!r}{known}")
    out = dict(specs)
    for host, spec in specs.items():  # a registry of its own with its own redis
        if spec.cluster is None and spec.cache is not None and spec.cache.deployed:
            out[host] = dataclasses.replace(spec, cache=_settled(spec.cache, host_vars, f"redis/{host}"))
    for name, hosts in clusters.items():
        members = [specs[h] for h in hosts]
        _check_members(name, members, source)
        first = members[0]
        lb_hosts = [h for h, s in specs.items() if s.lb is not None and s.lb.cluster == name]
        backends = tuple(Backend(h, client_address(h, host_vars[h]), specs[h].port) for h in hosts)
        balancers = tuple(Backend(h, client_address(h, host_vars[h]), specs[h].lb.port) for h in lb_hosts)
        sans: list[str] = []
        for b in (*backends, *balancers):
            for n in (b.host, b.address):
                if n not in sans:
                    sans.append(n)
        intervals = [v.duration_seconds(specs[h].lb.check_interval) for h in lb_hosts]
        settle = LB_RISE * max(intervals) + 0.5 if intervals else 0.0
        access = tuple(
            BalancerAccess(h, host_vars[h], lb_admin_socket(specs[h].config_dir)) for h in lb_hosts
        )
        view = ClusterView(name, backends, balancers, tuple(sans), settle, access)
        cache = first.cache
        if cache is not None and cache.deployed:
            if cache.deploy_on not in hosts:
                raise _fail(
                    source,
                    hosts[0],
                    "registry.cache.redis.deploy_on",
                    f"{cache.deploy_on!r} is not a replica of cluster {name!r} ({', '.join(hosts)})",
                )
            cache = _settled(cache, host_vars, f"redis/{name}")
        if len({*hosts, *lb_hosts}) > 1:  # one host alone routes nothing between hosts
            _check_routable(name, [*hosts, *lb_hosts], host_vars, source)
        for h in hosts:  # out[h]: a balancer of another cluster resolved before stays set
            out[h] = dataclasses.replace(out[h], cluster_view=view, cache=cache)
        for h in lb_hosts:
            lb = specs[h].lb
            assert lb is not None
            lb_spec = dataclasses.replace(lb, backends=_seen_from(h, backends, specs[h]))
            base = out[h]
            if base.serves:
                out[h] = dataclasses.replace(base, lb=lb_spec)
            else:  # a balancer-only host speaks for the cluster: its TLS and users are the replicas'
                out[h] = dataclasses.replace(
                    base,
                    lb=lb_spec,
                    cluster_view=view,
                    tls=first.tls,
                    auth=first.auth,
                    image=first.image,
                    version=first.version,
                )
    return out


def _seen_from(lb_host: str, backends: tuple[Backend, ...], spec: Any) -> tuple[Backend, ...]:
    """The replicas as the balancer on *lb_host* reaches them: the one on its own host (if any)
    by container name on the private network both units are on."""
    return tuple(
        Backend(b.host, spec.name, REGISTRY_CONTAINER_PORT, local=True) if b.host == lb_host else b
        for b in backends
    )


def _settled(cache: RedisSpec, host_vars: Mapping[str, Mapping[str, Any]], key: str) -> RedisSpec:
    """A deployed redis with the address replicas reach it at and its password (generated under
    *key* in the state dir when the inventory gives none)."""
    host = cache.deploy_on
    assert host is not None
    address = client_address(host, host_vars[host])
    addr = f"[{address}]:{cache.port}" if ":" in address else f"{address}:{cache.port}"
    password = cache.password or SecretRef("generated", key)
    return dataclasses.replace(cache, addr=addr, password=password)


def _check_routable(
    name: str, hosts: Sequence[str], host_vars: Mapping[str, Mapping[str, Any]], source: str
) -> None:
    """Replicas and balancers reach each other by address: the control machine's "localhost" is,
    inside any container, that container."""
    from regdeploy.transport.address import is_local, is_loopback

    for h in hosts:
        address = client_address(h, host_vars[h])
        if is_local(h, host_vars[h]) or is_loopback(address):
            raise _fail(source, h, "registry.cluster",
                        f"cluster {name!r}: {h} is reached as {address}, which the other replicas and the "
                        "balancers cannot use (inside a container it is the container itself): give it "
                        "an ansible_host they reach, over SSH (ansible_connection: ssh)")  # fmt: skip


def _check_members(name: str, members: Sequence[Any], source: str) -> None:
    first = members[0]
    for spec in members[1:]:

        def differ(key: str, what: str, mine: str, theirs: str, host: str = spec.host) -> SpecError:
            why = f"differs from {first.host}'s in cluster {name!r} ({mine} vs {theirs})"
            return _fail(source, host, key, f"{why}: replicas must share {what}")

        if spec.storage != first.storage:
            raise differ(
                "registry.storage",
                "one storage",
                spec.storage.describe(spec.data_dir),
                first.storage.describe(first.data_dir),
            )
        if spec.cache != first.cache:
            raise differ("registry.cache", "one cache (or none)", _cache(spec), _cache(first))
        if spec.auth != first.auth:
            raise differ("registry.auth", "their users and auth mode", spec.auth.mode, first.auth.mode)
        same = (("storage.readonly", "readonly"), ("storage.delete", "delete_enabled"), ("serial", "serial"))
        for key, attr in (("registry." + k, a) for k, a in same):
            if getattr(spec, attr) != getattr(first, attr):
                raise differ(key, "one setting", str(getattr(spec, attr)), str(getattr(first, attr)))
        if spec.tls.mode != first.tls.mode:
            raise differ("registry.tls.mode", "one TLS mode", spec.tls.mode, first.tls.mode)
        if spec.http_secret != first.http_secret:
            raise differ(
                "registry.http_secret",
                "one http.secret (it signs upload state)",
                spec.http_secret.describe(),
                first.http_secret.describe(),
            )
    if len(members) > 1 and not first.storage.shared:
        raise _fail(
            source,
            first.host,
            "registry.storage",
            f"cluster {name!r} has {len(members)} replicas on filesystem storage: they would not "
            "share blobs; set registry.storage.s3",
        )
    if first.auth.builtin_token is not None and len(members) > 1:
        raise _fail(
            source,
            first.host,
            "registry.auth.token",
            f"the built-in token server is not supported in a cluster of {len(members)} replicas yet "
            "(each replica's would name itself as the service): use auth.token.server: external, or htpasswd",
        )


def _cache(spec: Any) -> str:
    redis = spec.cache
    if redis is None:
        return "none"
    return f"redis on {redis.deploy_on}" if redis.deployed else f"redis at {redis.addr}"
