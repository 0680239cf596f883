"""diff(wanted, facts) -> Plan: the changes a host needs, each with its reason. Pure.

An empty plan means the host already matches, and apply then touches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from regdeploy.deploy.definition import OLD_SUFFIX, Definition, differences
from regdeploy.deploy.diffs import file_diff
from regdeploy.deploy.facts import HostFacts
from regdeploy.deploy.render import Rendered
from regdeploy.spec.registry import RegistrySpec


@dataclass(frozen=True)
class Change:
    kind: str  # image | dir | file | container
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


def make_plan(
    spec: RegistrySpec,
    rendered: Rendered,
    facts: HostFacts,
    wanted: Definition,
    with_diff: bool = False,
    tls_reason: str | None = None,
) -> Plan:
    """``tls_reason``: why the wanted server certificate was issued (TlsMaterial.reason); the plan
    names it when the host's certificate differs, and with it the restart it causes."""
    changes: list[Change] = []
    server_crt = f"{spec.config_dir}/certs/server.crt"
    cert_news = None
    reread: list[str] = []  # files the registry reads only at start, that the host has differently
    if facts.image_id is None:
        changes.append(Change("image", spec.image, "pull", "image is not on the host"))
    for d in rendered.dirs:
        state = facts.paths.get(d.path)
        if state is None:
            changes.append(Change("dir", d.path, "create", f"missing (mode {d.mode:o})"))
        elif state.mode != d.mode and d.path != spec.data_dir:
            # data_dir's mode is the registry's business once it exists: never fight it.
            changes.append(Change("dir", d.path, "chmod", f"mode {state.mode:o} -> {d.mode:o}"))
    for f in rendered.files:
        state = facts.paths.get(f.path)
        if state is None or state.kind != "file":
            diff = file_diff(f, None) if with_diff else None
            changes.append(Change("file", f.path, "create", "missing", diff))
        elif state.sha256 != f.sha256:
            how = (
                "re-read by the registry, no restart" if not f.restart else "the registry restarts to read it"
            )
            diff = file_diff(f, facts.contents.get(f.path)) if with_diff else None
            what = "content changed"
            if f.path == server_crt and tls_reason:
                what = cert_news = f"new certificate: {tls_reason}"
            changes.append(Change("file", f.path, "update", f"{what} ({how})", diff))
            if f.restart:
                reread.append(f.path.rsplit("/", 1)[-1])
        elif state.mode != f.mode:
            changes.append(Change("file", f.path, "chmod", f"mode {state.mode:o} -> {f.mode:o}"))
    for c in _container_changes(spec, facts, wanted, reread):
        if cert_news and c.action == "recreate":
            c = Change(c.kind, c.target, c.action, f"{c.reason}; {cert_news}")
        changes.append(c)
    return Plan(spec.host, tuple(changes))


def _container_changes(
    spec: RegistrySpec, facts: HostFacts, wanted: Definition, reread: list[str]
) -> list[Change]:
    """*reread*: names of start-time files being rewritten. When nothing else replaces or starts
    the container, it is restarted for them: the running registry may have read the host's copy."""
    current = facts.container
    out: list[Change] = []
    if current is None:
        out.append(Change("container", spec.name, "create", "no container yet"))
    elif not current.managed:
        out.append(Change("container", spec.name, "adopt", "replace a container regdeploy did not create"))
    else:
        reasons = differences(wanted, current.definition)
        if wanted.get("image_id") and current.image_id != wanted["image_id"] and not reasons:
            reasons.append("the container runs another image than the one recorded")
        if reasons:
            out.append(Change("container", spec.name, "recreate", "; ".join(reasons)))
        elif not current.running:
            out.append(Change("container", spec.name, "start", f"container is {current.status}"))
        elif reread:
            reason = f"to read the rewritten {', '.join(reread)}"
            out.append(Change("container", spec.name, "restart", reason))
    if facts.leftover is not None:
        out.append(
            Change(
                "container",
                spec.name + OLD_SUFFIX,
                "remove",
                "left over from an interrupted run (data is kept)",
            )
        )
    return out
