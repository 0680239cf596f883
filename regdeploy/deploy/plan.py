"""diff(wanted, facts) -> Plan: the changes a host needs, each with its reason. Pure.

An empty plan means the host already matches, and apply then touches nothing. Changes come in the
order apply carries them out: images, the network, directories, files, then each unit's container
in dependency order, then containers no longer wanted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from regdeploy.deploy.definition import OLD_SUFFIX, Definition, differences
from regdeploy.deploy.diffs import file_diff
from regdeploy.deploy.facts import HostFacts
from regdeploy.deploy.files import Rendered
from regdeploy.deploy.units import Unit
from regdeploy.image.sidecar_ref import SIDECAR_REPOSITORY
from regdeploy.spec.registry import RegistrySpec
from regdeploy.transport.base import FileState


@dataclass(frozen=True)
class Change:
    kind: str  # image | network | dir | file | container
    target: str
    action: str
    reason: str
    diff: str | None = None  # masked; only computed when asked for

    @property
    def resource(self) -> str:
        return f"{self.kind}:{self.target}"

    def as_json(self) -> dict[str, str]:
        return {"resource": self.resource, "action": self.action, "reason": self.reason}


@dataclass(frozen=True)
class Wanted:
    """What a host must run: its units in dependency order and each one's definition."""

    units: tuple[Unit, ...]
    definitions: Mapping[str, Definition] = field(default_factory=dict)

    def unit(self, name: str) -> Unit | None:
        return next((u for u in self.units if u.name == name), None)


@dataclass(frozen=True)
class Plan:
    host: str
    changes: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def of_kind(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    @property
    def container_change(self) -> Change | None:
        found = self.of_kind("container")
        return found[0] if found else None

    def unit_change(self, name: str) -> Change | None:
        """What the plan does to container *name*, if anything."""
        return next((c for c in self.of_kind("container") if c.target == name), None)


def wanted_for(
    spec: RegistrySpec, rendered: Rendered, images: Mapping[str, str | None], sidecar_image: str = ""
) -> Wanted:
    """The host's units and their definitions, given the ids the host has for their images."""
    from regdeploy.deploy.units import host_units

    return wanted_units(tuple(host_units(spec, rendered, sidecar_image)), rendered, images)


def wanted_units(units: tuple[Unit, ...], rendered: Rendered, images: Mapping[str, str | None]) -> Wanted:
    """*units* with their definitions, given the ids the host has for their images."""
    from regdeploy.deploy.definition import definition

    return Wanted(
        units,
        {u.name: definition(u, images.get(u.image), rendered.start_digest(u.start_files)) for u in units},
    )


def make_plan(
    spec: RegistrySpec,
    rendered: Rendered,
    facts: HostFacts,
    wanted: Wanted,
    with_diff: bool = False,
    tls_reason: str | None = None,
) -> Plan:
    """``tls_reason``: why the wanted server certificate was issued (TlsMaterial.reason); the plan
    names it when the host's certificate differs, and with it the restart it causes."""
    changes: list[Change] = []
    server_crt = f"{spec.config_dir}/certs/server.crt"
    cert_news = None
    rewritten: list[str] = []  # paths of files being rewritten
    for ref, image_id in facts.images.items():
        if image_id is None and ref.startswith(SIDECAR_REPOSITORY + ":"):
            why = "regdeploy's sidecar image is not on the host (built here, shipped to SSH hosts)"
            changes.append(Change("image", ref, "build", why))
        elif image_id is None:
            changes.append(Change("image", ref, "pull", "image is not on the host"))
    if wanted.units and not facts.network:
        changes.append(Change("network", spec.network, "create", "the units' private network is missing"))
    for d in rendered.dirs:
        state = facts.paths.get(d.path)
        if state is None:
            changes.append(Change("dir", d.path, "create", f"missing (mode {d.mode:o})"))
            continue
        if state.mode != d.mode and d.path != spec.data_dir:
            # data_dir's mode is the registry's business once it exists: never fight it.
            changes.append(Change("dir", d.path, "chmod", f"mode {state.mode:o} -> {d.mode:o}"))
        if _owner_differs(state, d.owner):
            assert d.owner is not None
            how = "with everything in it, data kept" if d.path == spec.data_dir else "the unit's user"
            changes.append(
                Change("dir", d.path, "chown", f"owner {_owner(state)} -> {_ids(d.owner)} ({how})")
            )
    for f in rendered.files:
        state = facts.paths.get(f.path)
        if state is None or state.kind != "file":
            diff = file_diff(f, None) if with_diff else None
            changes.append(Change("file", f.path, "create", "missing", diff))
        elif state.sha256 != f.sha256:
            readers = [u for u in wanted.units if f.path in u.start_files]
            if not readers:
                how = "re-read by the registry, no restart"
            elif all(u.role == "registry" for u in readers):
                how = "the registry restarts to read it"
            else:
                how = f"{_names(readers)} restarts to read it"
            diff = file_diff(f, facts.contents.get(f.path)) if with_diff else None
            what = "content changed"
            if f.path == server_crt and tls_reason:
                what = cert_news = f"new certificate: {tls_reason}"
            changes.append(Change("file", f.path, "update", f"{what} ({how})", diff))
            rewritten.append(f.path)
        else:
            if state.mode != f.mode:
                changes.append(Change("file", f.path, "chmod", f"mode {state.mode:o} -> {f.mode:o}"))
            if _owner_differs(state, f.owner):
                assert f.owner is not None
                changes.append(Change("file", f.path, "chown", f"owner {_owner(state)} -> {_ids(f.owner)}"))
    for path in rendered.absent:
        state = facts.paths.get(path)
        if state is not None and state.kind == "file":
            changes.append(Change("file", path, "remove", "no longer in the inventory"))
    for unit in wanted.units:
        reread = [p.rsplit("/", 1)[-1] for p in rewritten if p in unit.start_files]
        for c in _container_changes(unit, facts, wanted.definitions[unit.name], reread):
            if cert_news and c.action == "recreate" and unit.role == "registry":
                c = Change(c.kind, c.target, c.action, f"{c.reason}; {cert_news}")
            changes.append(c)
    for stray in facts.strays:
        if not stray.name.endswith(OLD_SUFFIX):
            why = STANDBY_LEFT if stray.role == "standby" else "no longer in the inventory (data is kept)"
            changes.append(Change("container", stray.name, "remove", why))
    return Plan(spec.host, tuple(changes))


STANDBY_LEFT = "a read-only standby an interrupted run left (data is kept)"


def _owner_differs(state: FileState, owner: tuple[int, int] | None) -> bool:
    return owner is not None and (state.uid, state.gid) != owner


def _owner(state: FileState) -> str:
    return f"{state.uid}:{state.gid}"


def _ids(owner: tuple[int, int]) -> str:
    return f"{owner[0]}:{owner[1]}"


def _names(units: Sequence[Unit]) -> str:
    return ", ".join(u.name for u in units)


def _container_changes(unit: Unit, facts: HostFacts, wanted: Definition, reread: list[str]) -> list[Change]:
    """*reread*: names of start-time files being rewritten. When nothing else replaces or starts
    the container, it is restarted for them: the running unit may have read the host's copy."""
    unit_facts = facts.units.get(unit.name)
    current = unit_facts.container if unit_facts else None
    out: list[Change] = []
    if current is None:
        out.append(Change("container", unit.name, "create", "no container yet"))
    elif not current.managed:
        out.append(Change("container", unit.name, "adopt", "replace a container regdeploy did not create"))
    else:
        reasons = differences(wanted, current.definition)
        if wanted.get("image_id") and current.image_id != wanted["image_id"] and not reasons:
            reasons.append("the container runs another image than the one recorded")
        if reasons:
            out.append(Change("container", unit.name, "recreate", "; ".join(reasons)))
        elif not current.running:
            out.append(Change("container", unit.name, "start", f"container is {current.status}"))
        elif reread:
            reason = f"to read the rewritten {', '.join(reread)}"
            out.append(Change("container", unit.name, "restart", reason))
    replacing = any(c.action in ("recreate", "adopt") for c in out)
    if unit_facts is not None and unit_facts.leftover is not None and not replacing:
        # (A replace removes the leftover itself before it sets the current container aside.)
        out.append(
            Change(
                "container",
                unit.name + OLD_SUFFIX,
                "remove",
                "left over from an interrupted run (data is kept)",
            )
        )
    return out
