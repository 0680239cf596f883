"""Read-only probes of what a host has now: files, directories, each unit's container, images,
the registry's network, ports."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from regdeploy.deploy.definition import (
    LABEL_MANAGED,
    LABEL_REGISTRY,
    LABEL_ROLE,
    OLD_SUFFIX,
    Definition,
    recorded_definition,
)
from regdeploy.deploy.files import Rendered
from regdeploy.deploy.units import Unit
from regdeploy.errors import HostError
from regdeploy.spec.registry import RegistrySpec
from regdeploy.transport.base import FileState, Transport
from regdeploy.transport.engine_api import Engine

# Below this the registry fails its first push; refusing up front beats a half-working deployment.
MIN_FREE_BYTES = 64 << 20


@dataclass(frozen=True)
class ContainerFacts:
    id: str
    name: str
    image_id: str
    status: str  # created, running, restarting, exited, paused, dead
    started_at: str
    managed: bool
    definition: Definition | None
    host_ports: frozenset[tuple[str, int]]
    registry: str = ""  # the io.regdeploy.registry label ("" on containers of older versions)
    role: str = "registry"  # the io.regdeploy.role label (older versions: the registry only)

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting")


@dataclass(frozen=True)
class UnitFacts:
    container: ContainerFacts | None
    leftover: ContainerFacts | None  # a "<name>-regdeploy-old" container from an interrupted run


@dataclass(frozen=True)
class HostFacts:
    paths: Mapping[str, FileState | None]
    units: Mapping[str, UnitFacts]  # by unit (container) name
    images: Mapping[str, str | None]  # image ref -> id on the host (None: absent)
    network: bool = True  # the registry's network exists
    strays: tuple[ContainerFacts, ...] = ()  # this registry's units the inventory no longer wants
    contents: Mapping[str, bytes] = field(default_factory=dict)  # old contents of changed files (--diff)

    def container(self, name: str) -> ContainerFacts | None:
        unit = self.units.get(name)
        return unit.container if unit else None


def gather(
    transport: Transport,
    spec: RegistrySpec,
    rendered: Rendered,
    units: Sequence[Unit],
    want_contents: bool = False,
) -> HostFacts:
    paths = [d.path for d in rendered.dirs] + [f.path for f in rendered.files] + list(rendered.absent)
    states = transport.stat_many(paths)
    engine = transport.engine()
    unit_facts = {
        u.name: UnitFacts(inspect_container(engine, u.name), inspect_container(engine, u.name + OLD_SUFFIX))
        for u in units
    }
    wanted_names = {u.name for u in units} | {u.name + OLD_SUFFIX for u in units}
    strays = tuple(registry_containers(engine, spec, skip=wanted_names))
    contents: dict[str, bytes] = {}
    if want_contents:
        for f in rendered.files:
            state = states.get(f.path)
            if state is not None and state.kind == "file" and state.sha256 != f.sha256:
                data = transport.read_file(f.path)
                if data is not None:
                    contents[f.path] = data
    images: dict[str, str | None] = {}
    for u in units:
        if u.image not in images:
            image = engine.inspect_image(u.image)
            images[u.image] = str(image["Id"]) if image else None
    network = engine.inspect_network(spec.network) is not None
    return HostFacts(states, unit_facts, images, network, strays, contents)


def registry_containers(
    engine: Engine, spec: RegistrySpec, skip: Collection[str] = ()
) -> list[ContainerFacts]:
    """Every container regdeploy made for this registry on the host (units and leftovers), but
    those named in *skip* (already inspected by the caller: the listing names them, no second look)."""
    found = []
    for summary in engine.list_containers({LABEL_MANAGED: "true", LABEL_REGISTRY: spec.name}):
        names = {str(n).lstrip("/") for n in summary.get("Names") or ()}
        if names & set(skip):
            continue
        facts = inspect_container(engine, str(summary.get("Id", "")))
        if facts is not None:
            found.append(facts)
    return sorted(found, key=lambda c: c.name)


def preflight(
    transport: Transport, spec: RegistrySpec, units: Sequence[Unit], facts: HostFacts, adopt: bool
) -> None:
    """Problems that must stop this host before anything is changed on it."""
    for unit in units:
        current = facts.container(unit.name)
        if current is not None and not current.managed and not adopt:
            raise HostError(
                f"{spec.host}: a container named {unit.name!r} exists and was not created by regdeploy; "
                "choose another registry.name, or pass --adopt to replace it (its volumes are kept)"
            )
        held = current.host_ports if current else frozenset()
        for bind, port in unit.published:
            if _held_by_us(held, bind, port):
                continue
            if transport.port_in_use(bind, port):
                raise HostError(
                    f"{spec.host}: port {port} on {bind} is already in use by another process or container"
                )
    for d in (spec.config_dir, spec.data_dir):
        state = facts.paths.get(d)
        if state is not None and state.kind != "dir":
            raise HostError(f"{spec.host}: {d} exists and is not a directory")
        if state is None:
            problem = transport.creatable_problem(d)
            if problem:
                raise HostError(f"{spec.host}: cannot create {d}: {problem}")
    free = transport.free_space(spec.data_dir)
    if free is not None and free < MIN_FREE_BYTES:
        raise HostError(
            f"{spec.host}: disk full: {free / 2**20:.1f} MiB free on the filesystem of {spec.data_dir} "
            f"(the registry needs room for uploads: at least {MIN_FREE_BYTES >> 20} MiB)"
        )


def _held_by_us(held: frozenset[tuple[str, int]], bind: str, port: int) -> bool:
    return any(p == port and (ip == bind or ip in ("", "0.0.0.0", "::")) for ip, p in held)


def inspect_container(engine: Engine, name: str) -> ContainerFacts | None:
    info = engine.inspect_container(name)
    if info is None:
        return None
    return container_facts(info)


def container_facts(info: Mapping[str, object]) -> ContainerFacts:
    """ContainerFacts from an Engine API container inspect document (pure)."""
    config = info.get("Config")
    labels = (config.get("Labels") if isinstance(config, dict) else None) or {}
    host_config = info.get("HostConfig")
    bindings_map = (host_config.get("PortBindings") if isinstance(host_config, dict) else None) or {}
    ports: set[tuple[str, int]] = set()
    for bindings in bindings_map.values():
        for b in bindings or []:
            if b.get("HostPort"):
                ports.add((b.get("HostIp") or "0.0.0.0", int(b["HostPort"])))
    state = info.get("State")
    state = state if isinstance(state, dict) else {}
    return ContainerFacts(
        id=str(info["Id"]),
        name=str(info["Name"]).lstrip("/"),
        image_id=str(info.get("Image", "")),
        status=str(state.get("Status", "unknown")),
        started_at=str(state.get("StartedAt", "")),
        managed=labels.get(LABEL_MANAGED) == "true",
        definition=recorded_definition(labels),
        host_ports=frozenset(ports),
        registry=str(labels.get(LABEL_REGISTRY, "")),
        role=str(labels.get(LABEL_ROLE, "registry")),
    )
