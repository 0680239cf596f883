"""One run over the targeted hosts: load -> materials -> render (all hosts, before any change),
then per host in parallel: gather facts -> plan -> apply.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regdeploy.deploy.files import Rendered
from regdeploy.deploy.plan import Plan, Wanted, wanted_units
from regdeploy.deploy.render import render
from regdeploy.deploy.units import Unit, host_units, sidecar_wanted
from regdeploy.errors import HostError, InputError, RegdeployError
from regdeploy.inventory import Inventory, load_inventory
from regdeploy.materials.host import HostMaterials, MaterialsBuilder
from regdeploy.materials.secrets import Masker, SecretResolver
from regdeploy.materials.state import StateStore
from regdeploy.materials.users import state_user_names, with_state_users
from regdeploy.spec.cluster import resolve
from regdeploy.spec.registry import RegistrySpec, parse_host

if TYPE_CHECKING:
    from regdeploy.deploy.apply import PreviousFiles
    from regdeploy.deploy.definition import Definition
    from regdeploy.deploy.facts import HostFacts
    from regdeploy.deploy.generation import Generation
    from regdeploy.transport import Transport

Progress = Callable[[str, str], None]  # (host, message)
_WARNED: set[str] = set()


@dataclass(frozen=True)
class HostJob:
    name: str
    vars: Mapping[str, Any]
    spec: RegistrySpec
    materials: HostMaterials
    keeps_standby: bool = False  # a read-only window's standby runs: `up` must not remove it

    @cached_property
    def rendered(self) -> Rendered:
        """The host's files, rendered on first use: commands that only read (verify, status) never
        pay for the Jinja templates."""
        return render(self.spec, self.materials)

    def on_host(self, identity: tuple[int, int]) -> HostJob:
        """This job with its units' users settled for a host where files are written as *identity*:
        a host user that is not root cannot hand files to another uid, so its units run as it."""
        import dataclasses

        spec = self.spec
        run = spec.run.on_host(identity)
        relay = spec.relay and dataclasses.replace(spec.relay, run=spec.relay.run.on_host(identity))
        token = spec.auth.token
        if token is not None:
            token = dataclasses.replace(token, run=token.run.on_host(identity))
        cache = spec.cache and dataclasses.replace(spec.cache, run=spec.cache.run.on_host(identity))
        lb = spec.lb and dataclasses.replace(spec.lb, run=spec.lb.run.on_host(identity))
        if (run, relay, token, cache, lb) == (spec.run, spec.relay, spec.auth.token, spec.cache, spec.lb):
            return self
        auth = dataclasses.replace(spec.auth, token=token)
        settled = dataclasses.replace(spec, run=run, relay=relay, auth=auth, cache=cache, lb=lb)
        return dataclasses.replace(self, spec=settled)

    @cached_property
    def sidecar_image(self) -> str:
        """The image of regdeploy's own units: the inventory's, or the one regdeploy builds."""
        if self.spec.sidecar_image is not None:
            return self.spec.sidecar_image
        if not sidecar_wanted(self.spec):
            return ""
        from regdeploy.image.sidecar_ref import default_sidecar_ref

        return default_sidecar_ref()

    @cached_property
    def units(self) -> tuple[Unit, ...]:
        return tuple(host_units(self.spec, self.rendered, self.sidecar_image))

    def wanted(self, images: Mapping[str, str | None]) -> Wanted:
        """The units with their definitions, given the ids the host has for their images."""
        return wanted_units(self.units, self.rendered, images)


@dataclass
class Run:
    inventory: Inventory
    state: StateStore
    masker: Masker
    jobs: list[HostJob] = field(default_factory=list)


@dataclass(frozen=True)
class HostOutcome:
    plan: Plan | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def changed(self) -> bool:
        return self.plan is not None and self.plan.changed


def load_specs(
    inventory_path: Path | None, limit: str | None, connect: Mapping[str, Any] | None = None
) -> tuple[Inventory, list[tuple[str, Mapping[str, Any], RegistrySpec]]]:
    """*connect*: connection settings from the command line (``--timeout``,
    ``--accept-new-host-keys``), added to every host's variables."""
    from regdeploy.transport.factory import check_connection

    inventory = load_inventory(inventory_path)
    for warning in inventory.warnings:  # stderr: never mixed into --json output
        if warning not in _WARNED:  # commands that load the inventory twice say it once
            _WARNED.add(warning)
            print(f"warning: {warning}", file=sys.stderr, flush=True)
    # Hosts without a `registry:` mapping (docker clients, CI runners) are in the inventory for
    # other commands (certs trust) and for Ansible itself: they run no registry.
    # registry_lb hosts run a cluster's balancer. Clusters are resolved over the whole inventory,
    # never only --limit's hosts: a balancer must know every replica, a replica every name.
    every = [h for h in inventory.select(None) if _runs_something(h.vars)]
    selected = {h.name for h in inventory.select(limit) if _runs_something(h.vars)}
    if not selected:
        where = f" matching --limit {limit!r}" if limit else ""
        raise InputError(f"{inventory.source}: no host{where} has a `registry:` mapping")
    entries = [
        (h.name, {**h.vars, **(connect or {})}, parse_host(h.name, h.vars, h.origins, inventory.source))
        for h in every
    ]
    resolved = resolve(entries, inventory.source)
    specs: list[tuple[str, Mapping[str, Any], RegistrySpec]] = [
        (name, host_vars, resolved[name]) for name, host_vars, _ in entries if name in selected
    ]
    for name, host_vars, _ in specs:
        check_connection(name, host_vars)  # bad connection variables are bad input: before any host
    return inventory, specs


def _runs_something(host_vars: Mapping[str, Any]) -> bool:
    return "registry" in host_vars or host_vars.get("registry_lb") is not None


def prepare(
    inventory_path: Path | None,
    limit: str | None,
    connect: Mapping[str, Any] | None = None,
    render_files: bool = True,
) -> Run:
    """Everything that can be checked without touching a host. Raises InputError on bad input.

    *render_files*: render every host's files now, so a broken template stops the run before any
    host is touched; commands that never write files pass False."""
    inventory, specs = load_specs(inventory_path, limit, connect)
    masker = Masker()
    state = StateStore.beside(inventory.base_dir)
    builder = MaterialsBuilder(state, SecretResolver(state, masker))
    run = Run(inventory, state, masker)
    extra_users = state_user_names(state)
    for name, host_vars, inventory_spec in specs:
        spec = with_state_users(inventory_spec, extra_users)
        materials = builder.build(spec, host_vars)
        job = HostJob(name, host_vars, spec, materials)
        if render_files:
            _ = job.rendered
        run.jobs.append(job)
    return run


def up_host(
    job: HostJob,
    check: bool,
    with_diff: bool,
    adopt: bool,
    progress: Progress,
    masker: Masker,
    generations: Path | None = None,
) -> Plan:
    """Converge one host. *generations*: the state dir's folder where a changing run keeps what it
    replaced (``HOST.json``), for ``regdeploy rollback``."""
    from regdeploy.deploy.facts import gather, preflight
    from regdeploy.deploy.plan import make_plan
    from regdeploy.transport import open_transport

    def say(message: str) -> None:
        progress(job.name, message)

    transport = open_transport(job.name, job.vars, say)
    try:
        job = job.on_host(transport.identity())
        facts = gather(transport, job.spec, job.rendered, job.units, want_contents=with_diff)
        if job.keeps_standby:
            facts = _without_standby(facts)
        wanted = job.wanted(facts.images)
        tls_reason = job.materials.tls.reason if job.materials.tls else None
        plan = make_plan(job.spec, job.rendered, facts, wanted, with_diff, tls_reason)
        if with_diff:  # every diff masks what it knows; every secret this run resolved, too
            plan = _masked(plan, masker)
        if plan.changed:
            preflight(transport, job.spec, job.units, facts, adopt)
            if not check and _registry_action(plan, job.spec) in STARTS:
                _storage_ready(job, say)
        if not check:
            from regdeploy.ops.drain import drained
            from regdeploy.ops.standby import (
                covering,
                covering_unit,
                retire_leftover,
                without_standby_removal,
            )

            ca = job.materials.tls.ca_cert if job.materials.tls else None
            view = job.spec.cluster_view if _registry_action(plan, job.spec) in GOES else None
            # A lone replica behind its own host's balancer: a standby serves while it is replaced
            # (not inside a window: the window's standby serves already).
            standby = None
            if view is not None and not job.keeps_standby:
                current = facts.container(job.spec.name)
                standby = covering_unit(job.spec, current, plan, wanted.definitions.get(job.spec.name))
            trimmed = without_standby_removal(plan)
            applied = trimmed if standby is not None else plan
            if standby is None and trimmed.changes != plan.changes:
                retire_leftover(job.spec, transport, say)  # apply removes it: no client cut off
            with (
                covering(job.spec, transport, standby, masker, say) as covered,
                # Where a standby serves, its retirement brings the registry back, checked first.
                drained(job.name, view, say, ready_after=not (covered or job.keeps_standby)),
            ):
                previous = _apply(job, transport, applied, wanted, ca, say, masker)
            if generations is not None and plan.changed:
                keep_generation(generations, job.name, replaced(plan, facts, previous))
        return plan
    except RegdeployError as exc:
        raise host_error(job.name, exc, masker) from None
    finally:
        transport.close()


def _without_standby(facts: HostFacts) -> HostFacts:
    import dataclasses

    return dataclasses.replace(facts, strays=tuple(s for s in facts.strays if s.role != "standby"))


def _apply(job: HostJob, transport: Transport, plan: Plan, wanted: Wanted, ca: bytes | None,
           say: Callable[[str], None], masker: Masker) -> PreviousFiles:  # fmt: skip
    from regdeploy.deploy.apply import apply_plan
    from regdeploy.image.ship import image_provider

    return apply_plan(
        transport,
        job.spec,
        job.rendered,
        plan,
        wanted,
        ca,
        say,
        masker.mask,
        obtain_image=image_provider(transport, job.vars, say, job.sidecar_image),
    )


def _masked(plan: Plan, masker: Masker) -> Plan:
    import dataclasses

    changes = tuple(dataclasses.replace(c, diff=masker.mask(c.diff)) if c.diff else c for c in plan.changes)
    return dataclasses.replace(plan, changes=changes)


# What the registry container's change means: it goes away (a balancer drains it first), or a
# container starts on the storage (the storage must be writable first).
GOES = ("recreate", "adopt", "remove", "restart")
STARTS = ("create", "recreate", "adopt")


def _registry_action(plan: Plan, spec: RegistrySpec) -> str | None:
    change = plan.unit_change(spec.name)
    return change.action if change else None


def _storage_ready(job: HostJob, say: Callable[[str], None]) -> None:
    """Refuse to switch a registry to S3 storage this machine cannot write (nothing changed yet)."""
    from regdeploy.storage.s3probe import StorageError
    from regdeploy.storage.target import check_writable

    s3 = job.spec.storage.s3
    if s3 is None:
        return
    try:
        seconds = check_writable(job.spec, job.materials)
    except StorageError as exc:
        raise HostError(f"storage: {exc}; the registry was not switched (nothing changed)") from None
    say(f"storage {s3.describe}: writable ({(seconds or 0) * 1000:.0f} ms to write, read, delete a probe)")


def host_error(host: str, exc: RegdeployError, masker: Masker) -> HostError:
    """*exc* as this host's one line: masked, and named after the host once."""
    text = masker.mask(str(exc))
    return HostError(text if text.startswith(f"{host}:") else f"{host}: {text}")


def replaced(plan: Plan, facts: HostFacts, previous: PreviousFiles) -> Generation:
    """What *plan* replaced on the host: the files before, each changed unit's definition before."""
    from regdeploy.deploy.generation import Generation

    units: dict[str, tuple[str, Definition | None]] = {}
    strays = {c.name: c for c in facts.strays}
    for change in plan.of_kind("container"):
        current = facts.container(change.target) or strays.get(change.target)
        if current is not None and current.role == "standby":
            continue  # a window's standby left behind: never a definition to put back
        if change.action == "create":
            units[change.target] = (_role(plan, change.target), None)
        elif change.action in ("recreate", "adopt", "remove") and current is not None and current.definition:
            units[change.target] = (current.role, current.definition)
    return Generation(previous, units)


def _role(plan: Plan, name: str) -> str:
    return "registry" if name == plan.host else name.rsplit("-", 1)[-1]


def keep_generation(folder: Path, host: str, generation: Generation) -> None:
    from regdeploy.fileio import atomic_write

    if generation.empty:
        return
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(folder / f"{host}.json", generation.to_json(), 0o600)


def outcomes(results: Mapping[str, Plan | RegdeployError]) -> dict[str, HostOutcome]:
    return {
        name: HostOutcome(None, str(r).removeprefix(f"{name}: "))
        if isinstance(r, RegdeployError)
        else HostOutcome(r, None)
        for name, r in results.items()
    }
