"""``regdeploy rollback``: put back what the last changing ``up`` replaced on a host.

``up`` keeps one previous generation per host in the state directory (``generations/HOST.json``,
0600): the files it rewrote as they were, and each changed unit's container definition before.
Rolling back writes those files back and makes those containers again through the same apply as
``up`` (a unit is replaced only when it serves; otherwise everything returns), removes units the
last ``up`` created, and never touches data. The generation is used once; a later ``up`` wants to
re-apply the inventory's newer state and says so.
"""

from __future__ import annotations

from pathlib import Path

from regdeploy.deploy.plan import Change, Plan, Wanted
from regdeploy.errors import HostError, RegdeployError
from regdeploy.materials.secrets import Masker
from regdeploy.ops.run import HostJob, Progress, host_error

GENERATIONS = "generations"


def generation_file(state_root: Path, host: str) -> Path:
    return state_root / GENERATIONS / f"{host}.json"


def rollback_host(job: HostJob, state_root: Path, masker: Masker, progress: Progress) -> Plan:
    from regdeploy.deploy.apply import apply_plan
    from regdeploy.deploy.facts import gather
    from regdeploy.deploy.generation import Generation, unit_from_definition
    from regdeploy.deploy.plan import make_plan
    from regdeploy.image.ship import image_provider
    from regdeploy.transport import open_transport

    path = generation_file(state_root, job.name)
    try:
        generation = Generation.from_json(path.read_bytes())
    except FileNotFoundError:
        raise HostError(f"{job.name}: nothing to roll back: no changing `up` recorded here") from None
    except (ValueError, KeyError) as exc:
        raise HostError(f"{job.name}: {path} cannot be read ({exc}): remove it") from None

    def say(message: str) -> None:
        progress(job.name, message)

    transport = open_transport(job.name, job.vars, say)
    try:
        job = job.on_host(transport.identity())
        spec = job.spec
        restore = [(n, r, d) for n, (r, d) in generation.units.items() if d is not None]
        units = tuple(unit_from_definition(name, role, d) for name, role, d in restore)
        rendered = generation.rendered()
        facts = gather(transport, spec, rendered, units)
        definitions = {name: dict(d) for name, _, d in restore}
        wanted = Wanted(units, definitions)
        plan = make_plan(spec, rendered, facts, wanted)
        # Units the last `up` created did not exist before it: they go.
        created_now = [
            Change("container", name, "remove", "created by the last up (rollback)")
            for name, (_, d) in generation.units.items()
            if d is None
        ]
        # Only what the generation names changes: the host's other units are not strays here.
        kept = tuple(c for c in plan.changes if not (c.kind == "container" and c.action == "remove"))
        plan = Plan(plan.host, (*kept, *created_now))
        ca = job.materials.tls.ca_cert if job.materials.tls else None
        from regdeploy.ops.drain import drained
        from regdeploy.ops.standby import covering, covering_unit

        # A replica behind balancers is drained while its registry goes, as `up` does (and a lone
        # one behind its own host's balancer has a standby meanwhile).
        goes = plan.unit_change(spec.name) is not None
        standby = None
        if goes:
            standby = covering_unit(spec, facts.container(spec.name), plan, definitions.get(spec.name))
        with (
            covering(spec, transport, standby, masker, say) as covered,
            drained(job.name, spec.cluster_view if goes else None, say, ready_after=not covered),
        ):
            apply_plan(transport, spec, rendered, plan, wanted, ca, say, masker.mask,
                       obtain_image=image_provider(transport, job.vars, say, job.sidecar_image))  # fmt: skip
        path.unlink(missing_ok=True)
        return plan
    except RegdeployError as exc:
        raise host_error(job.name, exc, masker) from None
    finally:
        transport.close()
