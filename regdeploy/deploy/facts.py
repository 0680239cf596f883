"""Read-only probes of what a host has now: files, directories, the container, the image, ports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from regdeploy.deploy.definition import LABEL_MANAGED, OLD_SUFFIX, Definition, recorded_definition
from regdeploy.deploy.render import Rendered
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

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting")


@dataclass(frozen=True)
class HostFacts:
    paths: Mapping[str, FileState | None]
    container: ContainerFacts | None
    leftover: ContainerFacts | None  # a "<name>-regdeploy-old" container from an interrupted run
    image_id: str | None
    contents: Mapping[str, bytes] = field(default_factory=dict)  # old contents of changed files (--diff)


def gather(
    transport: Transport, spec: RegistrySpec, rendered: Rendered, want_contents: bool = False
) -> HostFacts:
    paths = [d.path for d in rendered.dirs] + [f.path for f in rendered.files]
    states = transport.stat_many(paths)
    engine = transport.engine()
    container = inspect_container(engine, spec.name)
    leftover = inspect_container(engine, spec.name + OLD_SUFFIX)
    contents: dict[str, bytes] = {}
    if want_contents:
        for f in rendered.files:
            state = states.get(f.path)
            if state is not None and state.kind == "file" and state.sha256 != f.sha256:
                data = transport.read_file(f.path)
                if data is not None:
                    contents[f.path] = data
    image = engine.inspect_image(spec.image)
    return HostFacts(states, container, leftover, str(image["Id"]) if image else None, contents)


def preflight(transport: Transport, spec: RegistrySpec, facts: HostFacts, adopt: bool) -> None:
    """Problems that must stop this host before anything is changed on it."""
    held = facts.container.host_ports if facts.container else frozenset()
    if facts.container is not None and not facts.container.managed and not adopt:
        raise HostError(
            f"{spec.host}: a container named {spec.name!r} exists and was not created by regdeploy; "
            "choose another registry.name, or pass --adopt to replace it (its volumes are kept)"
        )
    wanted_ports = [(spec.bind, spec.port)]
    if spec.debug_port is not None:
        wanted_ports.append(("127.0.0.1", spec.debug_port))
    for bind, port in wanted_ports:
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
    labels = info.get("Config", {}).get("Labels") or {}
    ports: set[tuple[str, int]] = set()
    for bindings in (info.get("HostConfig", {}).get("PortBindings") or {}).values():
        for b in bindings or []:
            if b.get("HostPort"):
                ports.add((b.get("HostIp") or "0.0.0.0", int(b["HostPort"])))
    state = info.get("State", {})
    return ContainerFacts(
        id=info["Id"],
        name=info["Name"].lstrip("/"),
        image_id=info.get("Image", ""),
        status=state.get("Status", "unknown"),
        started_at=state.get("StartedAt", ""),
        managed=labels.get(LABEL_MANAGED) == "true",
        definition=recorded_definition(labels),
        host_ports=frozenset(ports),
    )
