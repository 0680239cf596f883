"""Units: what a host runs, one container each, as plain data. Pure.

A registry's host runs the registry and, as the inventory asks, the services around it (today the
webhook relay; the token server, redis, a load balancer and pull-through caches are each one more
unit definition here, not a branch in apply). :func:`host_units` turns a spec into that list in
dependency order: a unit comes after the units it talks to, so apply starts the relay before the
registry that sends to it, and removes leftovers last.

Every unit is hardened by its :class:`~regdeploy.spec.run.RunSpec`: a non-root user, a read-only
root filesystem with tmpfs only where the unit writes scratch files, every capability dropped (plus
only what ``run.cap_add`` names), no-new-privileges, memory and pids limits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from regdeploy.deploy.files import Rendered
from regdeploy.deploy.layout import (
    CONTAINER_CONFIG_DIR,
    CONTAINER_DATA_DIR,
    LB_ADMIN_CONTAINER_DIR,
    LB_CONTAINER_DIR,
    LB_CONTAINER_PORT,
    REDIS_CONTAINER_DIR,
    REDIS_CONTAINER_PORT,
    RELAY_CONTAINER_DIR,
    RELAY_PORT,
    RELAY_QUEUE_DIR,
    TOKEN_CONTAINER_DIR,
    TOKEN_CONTAINER_PORT,
    lb_config_dir,
    proxy_config_dir,
    proxy_data_dir,
    proxy_unit_name,
    redis_config_dir,
    relay_config_dir,
    relay_queue_dir,
    standby_name,
    token_config_dir,
)
from regdeploy.spec.cluster import REGISTRY_CONTAINER_PORT, lb_admin_dir
from regdeploy.spec.registry import RegistrySpec
from regdeploy.spec.run import RunSpec

REGISTRY_PORT = f"{REGISTRY_CONTAINER_PORT}/tcp"
DEBUG_CONTAINER_PORT = "5001/tcp"
# Scratch space for Python's tempfile in the sidecar; nothing the unit keeps lives there.
SIDECAR_TMPFS = {"/tmp": "rw,noexec,nosuid,nodev,size=16m"}


@dataclass(frozen=True)
class Port:
    container: str  # "5000/tcp"
    host_ip: str
    host_port: int


@dataclass(frozen=True)
class Mount:
    source: str  # a host path
    target: str
    read_only: bool


@dataclass(frozen=True)
class Probe:
    """How apply tells a started unit serves.

    ``http``: ``GET /`` on the published *port* answers 200 (over TLS when the registry has it);
    ``log``: the container keeps running and its log shows *marker*."""

    kind: str  # http | log
    port: int = 0
    marker: str = ""


@dataclass(frozen=True)
class Unit:
    name: str  # the container's name
    role: str  # registry | relay
    image: str
    command: tuple[str, ...]
    run: RunSpec
    restart: str
    probe: Probe
    ports: tuple[Port, ...] = ()
    mounts: tuple[Mount, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # never a secret: secrets are files
    network: str = ""
    aliases: tuple[str, ...] = ()
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    start_files: tuple[str, ...] = ()  # host paths read only at start: a change needs a restart
    owned_dirs: tuple[str, ...] = ()  # host dirs the unit writes: chowned to its user

    @property
    def published(self) -> list[tuple[str, int]]:
        return [(p.host_ip, p.host_port) for p in self.ports]


def relay_name(spec: RegistrySpec) -> str:
    return f"{spec.name}-relay"


def token_name(spec: RegistrySpec) -> str:
    return f"{spec.name}-token"


def _own_dirs(spec: RegistrySpec) -> tuple[str, ...]:
    """Config dirs of the units other than the registry: their files restart them, not it."""
    proxies = [proxy_config_dir(spec, p.name) for p in spec.proxies]
    others = (relay_config_dir(spec), token_config_dir(spec), redis_config_dir(spec), lb_config_dir(spec))
    return tuple(d + "/" for d in (*others, *proxies))


def _registry_reads(spec: RegistrySpec, rendered: Rendered) -> list[Mount]:
    """What of the config dir a registry (or proxy) reads: auth/ and certs/, each a directory so a
    file replaced by rename is seen. Never the whole config dir: the token server's signing key, the
    relay's and the proxies' secrets live there too, and must not be readable by every unit."""
    dirs = {d.path for d in rendered.dirs}
    return [
        Mount(f"{spec.config_dir}/{sub}", f"{CONTAINER_CONFIG_DIR}/{sub}", True)
        for sub in ("auth", "certs")
        if f"{spec.config_dir}/{sub}" in dirs
    ]


def registry_unit(spec: RegistrySpec, rendered: Rendered) -> Unit:
    ports = [Port(REGISTRY_PORT, spec.bind, spec.port)]
    if spec.debug_port is not None:
        # The debug server lists webhook headers (tokens): never publish it beyond loopback.
        ports.append(Port(DEBUG_CONTAINER_PORT, "127.0.0.1", spec.debug_port))
    if spec.metrics is not None and spec.metrics.port != spec.debug_port:
        ports.append(Port(DEBUG_CONTAINER_PORT, spec.metrics.bind, spec.metrics.port))
    return Unit(
        name=spec.name,
        role="registry",
        image=spec.image,
        command=("serve", f"{CONTAINER_CONFIG_DIR}/config.yml"),
        run=spec.run,
        restart=spec.restart,
        probe=Probe("http", port=spec.port),
        ports=tuple(ports),
        mounts=(
            # config.yml alone: it is read only at start, and a start mounts the file anew.
            Mount(f"{spec.config_dir}/config.yml", f"{CONTAINER_CONFIG_DIR}/config.yml", True),
            *_registry_reads(spec, rendered),
            Mount(spec.data_dir, CONTAINER_DATA_DIR, False),
        ),
        env={"OTEL_TRACES_EXPORTER": "none"} if spec.version >= 3 else {},
        network=spec.network,
        aliases=("registry",),
        start_files=tuple(
            f.path for f in rendered.files if f.restart and not f.path.startswith(_own_dirs(spec))
        ),
        owned_dirs=(spec.data_dir,),
    )


# distribution reads environment overrides of config.yml as YAML (tried on 2.8.2): these turn
# read-only on (a push gets 405) and the upload purger off (no "Starting upload purge" logged),
# leaving the file's other settings as they are. A standby of a few seconds purges nothing.
STANDBY_ENV = {
    "REGISTRY_STORAGE_MAINTENANCE_READONLY": "{enabled: true}",
    "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING": "{enabled: false}",
}


def standby_unit(spec: RegistrySpec, rendered: Rendered) -> Unit:
    """The registry as the inventory has it, as the standby (:func:`as_standby`)."""
    return as_standby(spec, registry_unit(spec, rendered))


def as_standby(spec: RegistrySpec, registry: Unit) -> Unit:
    """*registry* once more, read-only, on the same files and storage, publishing nothing: the
    local balancer's standby while the registry itself restarts (ops/standby.py). Not a unit of the
    host: `gc`, `backup`, `up` and `rollback` start and remove it, and `up` removes one an
    interrupted run left."""
    return dataclasses.replace(
        registry, name=standby_name(spec), role="standby", ports=(), aliases=(), restart="no",
        env={**registry.env, **STANDBY_ENV}, owned_dirs=(),
    )  # fmt: skip


def relay_unit(spec: RegistrySpec, rendered: Rendered, sidecar_image: str) -> Unit | None:
    if spec.relay is None:
        return None
    config = relay_config_dir(spec)
    return Unit(
        name=relay_name(spec),
        role="relay",
        image=sidecar_image,
        command=("webhooks", "relay", "--config", f"{RELAY_CONTAINER_DIR}/relay.yml"),
        run=spec.relay.run,
        restart=spec.restart,
        probe=Probe("log", marker=f"listening on http://0.0.0.0:{RELAY_PORT}"),
        mounts=(
            Mount(config, RELAY_CONTAINER_DIR, True),
            Mount(relay_queue_dir(spec), RELAY_QUEUE_DIR, False),
        ),
        network=spec.network,
        aliases=("relay",),
        tmpfs=SIDECAR_TMPFS,
        start_files=tuple(f.path for f in rendered.files if f.path.startswith(config + "/")),
        owned_dirs=(relay_queue_dir(spec),),
    )


def token_unit(spec: RegistrySpec, rendered: Rendered, sidecar_image: str) -> Unit | None:
    """The built-in token server: where clients get the tokens the registry trusts."""
    token = spec.auth.builtin_token
    if token is None:
        return None
    config = token_config_dir(spec)
    return Unit(
        name=token_name(spec),
        role="token",
        image=sidecar_image,
        command=("auth", "serve", "--config", f"{TOKEN_CONTAINER_DIR}/token.yml"),
        run=token.run,
        restart=spec.restart,
        probe=Probe("log", marker="token server: listening on"),
        ports=(Port(f"{TOKEN_CONTAINER_PORT}/tcp", spec.bind, token.port),),
        mounts=(Mount(config, TOKEN_CONTAINER_DIR, True),),
        network=spec.network,
        aliases=("token",),
        tmpfs=SIDECAR_TMPFS,
        start_files=tuple(f.path for f in rendered.files if f.restart and f.path.startswith(config + "/")),
    )


def proxy_units(spec: RegistrySpec, rendered: Rendered) -> list[Unit]:
    """One registry in proxy mode per upstream: its own config and storage, the registry's TLS and
    auth (its auth/ and certs/ mounted read-only), and the CAs it trusts upstreams with in SSL_CERT_DIR."""
    units = []
    registry_reads = {f"{spec.config_dir}/certs/server.crt", f"{spec.config_dir}/certs/server.key",
                      f"{spec.config_dir}/auth/token-bundle.crt"}  # fmt: skip
    for p in spec.proxies:
        inside = f"{CONTAINER_CONFIG_DIR}/proxy-{p.name}"
        own = proxy_config_dir(spec, p.name) + "/"
        env = {"SSL_CERT_DIR": f"{inside}/ca"}
        if spec.version >= 3:
            env["OTEL_TRACES_EXPORTER"] = "none"
        units.append(
            Unit(
                name=proxy_unit_name(spec, p.name),
                role="proxy",
                image=spec.image,
                command=("serve", f"{inside}/config.yml"),
                run=spec.run,
                restart=spec.restart,
                probe=Probe("http", port=p.port),
                ports=(Port(REGISTRY_PORT, spec.bind, p.port),),
                mounts=(
                    Mount(own.rstrip("/"), inside, True),
                    *_registry_reads(spec, rendered),
                    Mount(proxy_data_dir(spec, p.name), CONTAINER_DATA_DIR, False),
                ),
                env=env,
                network=spec.network,
                aliases=(f"proxy-{p.name}",),
                start_files=tuple(
                    f.path
                    for f in rendered.files
                    if f.restart and (f.path.startswith(own) or f.path in registry_reads)
                ),
                owned_dirs=(proxy_data_dir(spec, p.name),),
            )
        )
    return units


def redis_name(spec: RegistrySpec) -> str:
    return f"{spec.name}-redis"


def lb_name(spec: RegistrySpec) -> str:
    assert spec.lb is not None
    return spec.lb.name


def _own_files(rendered: Rendered, config: str) -> tuple[str, ...]:
    return tuple(f.path for f in rendered.files if f.restart and f.path.startswith(config + "/"))


def redis_unit(spec: RegistrySpec, rendered: Rendered) -> Unit | None:
    """The cluster's shared blob-descriptor cache, on the host ``cache.redis.deploy_on`` names:
    published for the other replicas (password in its 0600 config, nothing persisted)."""
    if not spec.redis_here:
        return None
    assert spec.cache is not None
    config = redis_config_dir(spec)
    return Unit(
        name=redis_name(spec),
        role="redis",
        image=spec.cache.image,
        command=("redis-server", f"{REDIS_CONTAINER_DIR}/redis.conf"),
        run=spec.cache.run,
        restart=spec.restart,
        probe=Probe("log", marker="Ready to accept connections"),
        ports=(Port(f"{REDIS_CONTAINER_PORT}/tcp", spec.bind, spec.cache.port),),
        mounts=(Mount(config, REDIS_CONTAINER_DIR, True),),
        network=spec.network,
        aliases=("redis",),
        tmpfs=SIDECAR_TMPFS,
        start_files=_own_files(rendered, config),
    )


def lb_unit(spec: RegistrySpec, rendered: Rendered) -> Unit | None:
    """The balancer in front of a cluster (registry_lb): haproxy passing TLS through to every
    replica that passes its health check. Ready when GET / answers through it."""
    if spec.lb is None:
        return None
    config = lb_config_dir(spec)
    return Unit(
        name=lb_name(spec),
        role="lb",
        image=spec.lb.image,
        command=("haproxy", "-db", "-f", f"{LB_CONTAINER_DIR}/haproxy.cfg"),
        run=spec.lb.run,
        restart=spec.restart,
        probe=Probe("http", port=spec.lb.port),
        ports=(Port(f"{LB_CONTAINER_PORT}/tcp", spec.lb.bind, spec.lb.port),),
        mounts=(
            Mount(config, LB_CONTAINER_DIR, True),
            Mount(lb_admin_dir(spec.config_dir), LB_ADMIN_CONTAINER_DIR, False),
        ),
        network=spec.network,
        aliases=("lb",),
        owned_dirs=(lb_admin_dir(spec.config_dir),),
        start_files=_own_files(rendered, config),
    )


def host_units(spec: RegistrySpec, rendered: Rendered, sidecar_image: str) -> list[Unit]:
    """The host's units in dependency order (a unit after those it sends to or that serve its
    clients first: redis, the token server and the relay before the registry; the balancer last)."""
    if not spec.serves:
        return [u for u in (lb_unit(spec, rendered),) if u is not None]
    units = [
        redis_unit(spec, rendered),
        token_unit(spec, rendered, sidecar_image),
        relay_unit(spec, rendered, sidecar_image),
        registry_unit(spec, rendered),
        *proxy_units(spec, rendered),
        lb_unit(spec, rendered),
    ]
    return [u for u in units if u is not None]


def unit_names(spec: RegistrySpec) -> list[tuple[str, str]]:
    """(name, role) of the units the spec asks for, without rendering anything (status, down)."""
    if not spec.serves:
        return [(lb_name(spec), "lb")]
    names = [(redis_name(spec), "redis")] if spec.redis_here else []
    names += [(token_name(spec), "token")] if spec.auth.builtin_token is not None else []
    names += [(relay_name(spec), "relay")] if spec.relay is not None else []
    return [
        *names,
        (spec.name, "registry"),
        *((proxy_unit_name(spec, p.name), "proxy") for p in spec.proxies),
        *([(lb_name(spec), "lb")] if spec.lb is not None else []),
    ]


def sidecar_wanted(spec: RegistrySpec) -> bool:
    """Whether any unit of this registry runs regdeploy's own sidecar image."""
    return spec.relay is not None or spec.auth.builtin_token is not None
