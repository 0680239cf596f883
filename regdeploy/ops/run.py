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
from regdeploy.spec.registry import RegistrySpec, parse_spec

if TYPE_CHECKING:
    from regdeploy.deploy.apply import PreviousFiles
    from regdeploy.deploy.definition import Definition
    from regdeploy.deploy.facts import HostFacts
    from regdeploy.deploy.generation import Generation

Progress = Callable[[str, str], None]  # (host, message)
_WARNED: set[str] = set()


@dataclass(frozen=True)
class HostJob:
    name: str
    vars: Mapping[str, Any]
    spec: RegistrySpec
    materials: HostMaterials

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
        if run == spec.run and relay == spec.relay and token == spec.auth.token:
            return self
        auth = dataclasses.replace(spec.auth, token=token)
        return dataclasses.replace(self, spec=dataclasses.replace(spec, run=run, relay=relay, auth=auth))

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
    hosts = [h for h in inventory.select(limit) if "registry" in h.vars]
    if not hosts:
        where = f" matching --limit {limit!r}" if limit else ""
        raise InputError(f"{inventory.source}: no host{where} has a `registry:` mapping")
    specs: list[tuple[str, Mapping[str, Any], RegistrySpec]] = [
        (h.name, {**h.vars, **(connect or {})},
         parse_spec(h.name, h.vars.get("registry"), h.origins, inventory.source))
        for h in hosts
    ]  # fmt: skip
    for name, host_vars, _ in specs:
        check_connection(name, host_vars)  # bad connection variables are bad input: before any host
    return inventory, specs


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
    from regdeploy.deploy.apply import apply_plan
    from regdeploy.deploy.facts import gather, preflight
    from regdeploy.deploy.plan import make_plan
    from regdeploy.image.ship import image_provider
    from regdeploy.transport import open_transport

    def say(message: str) -> None:
        progress(job.name, message)

    transport = open_transport(job.name, job.vars, say)
    try:
        job = job.on_host(transport.identity())
        facts = gather(transport, job.spec, job.rendered, job.units, want_contents=with_diff)
        wanted = job.wanted(facts.images)
        tls_reason = job.materials.tls.reason if job.materials.tls else None
        plan = make_plan(job.spec, job.rendered, facts, wanted, with_diff, tls_reason)
        if plan.changed:
            preflight(transport, job.spec, job.units, facts, adopt)
        if not check:
            ca = job.materials.tls.ca_cert if job.materials.tls else None
            previous = apply_plan(
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
            if generations is not None and plan.changed:
                keep_generation(generations, job.name, replaced(plan, facts, previous))
        return plan
    except RegdeployError as exc:
        raise host_error(job.name, exc, masker) from None
    finally:
        transport.close()


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
