"""A standby registry that serves pulls while a lone replica behind its own host's balancer restarts.

distribution 2.8 reads its config only at start, so `gc` and `backup` restart the registry into
read-only and back, and `up` and `rollback` replace it for a new image or config; a published port
cannot pass from one container to the next without a gap, and for that gap a registry of its own
refuses pulls. When a balancer on the same host fronts that registry alone (``registry.cluster``
and ``registry_lb`` on one host), the balancer outlives the restarts, and this module gives it
somewhere to send clients meanwhile:

1. a standby — the registry once more, read-only, on the same files and storage, publishing
   nothing, on the private network — starts: for a window the registry as the inventory has it
   (:func:`window`), for a replacement the running container as recorded (:func:`covering`);
   the balancer's disabled slot for it (haproxy.cfg) gets its address, is marked down and made
   ready, and the run waits until the balancer's own checks bring it up (haproxy counts a
   server leaving maintenance as up before any check: marked down, it must pass ``rise`` first);
2. the registry switches or is replaced (drained at the balancer first, and left drained: the
   standby serves alone meanwhile, and no stale address or health of the old container counts);
3. the registry is given its new container's address, marked down, and waited for in the same
   way; then the standby is drained, its slot disabled, and the container removed.

Whatever keeps the standby from serving (a balancer stopped or out of reach, a haproxy.cfg from
before the slot existed, a standby that does not come up) is a warning, and the run goes on with
the pause. The standby stays where the registry does not come back, so that clients keep being
served, and where regdeploy is killed meanwhile; the next `up` removes it (a stray, with its
reason) and the next `gc` or `backup` replaces it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from regdeploy.deploy.plan import STANDBY_LEFT
from regdeploy.errors import HostError, RegdeployError
from regdeploy.materials.secrets import Masker
from regdeploy.ops.drain import DRAIN_TIMEOUT, Admin
from regdeploy.spec.cluster import LB_RISE, lb_admin_socket, lone_local_replica, standby_server

if TYPE_CHECKING:
    from regdeploy.deploy.definition import Definition
    from regdeploy.deploy.facts import ContainerFacts
    from regdeploy.deploy.files import Rendered
    from regdeploy.deploy.plan import Plan
    from regdeploy.deploy.units import Unit
    from regdeploy.spec.cluster import Backend
    from regdeploy.spec.registry import RegistrySpec
    from regdeploy.transport.base import Transport
    from regdeploy.transport.engine_api import Engine

START_TIMEOUT = 30.0


def window(
    spec: RegistrySpec, rendered: Rendered, transport: Transport, masker: Masker, say: Callable[[str], None]
) -> contextlib.AbstractContextManager[bool]:
    """For a read-only window (ops/readonly.py): the registry's unit as the inventory has it,
    read-only, serves beside it within the block; yields whether it does. Nothing where no balancer
    fronts this registry alone on its own host."""
    from regdeploy.deploy.units import standby_unit

    if lone_local_replica(spec) is None:
        return contextlib.nullcontext(False)
    return _serving(spec, transport, standby_unit(spec, rendered), masker, say)


def covering(
    spec: RegistrySpec, transport: Transport, unit: Unit | None, masker: Masker, say: Callable[[str], None]
) -> contextlib.AbstractContextManager[bool]:
    """For `up` or `rollback` replacing a lone replica behind its local balancer: *unit* (from
    :func:`covering_unit`; None: nothing) serves, read-only, while the registry is replaced. A
    balancer without the slot is no warning here (this `up` may be the one adding it)."""
    if unit is None:
        return contextlib.nullcontext(False)
    return _serving(spec, transport, unit, masker, say, quiet=True)


def covering_unit(
    spec: RegistrySpec, current: ContainerFacts | None, plan: Plan, wanted: Definition | None
) -> Unit | None:
    """The standby for a replacement by *plan*: the running registry's own recorded definition (its
    image by id, its config file and mounts as they are now: the new files are written after it
    started, and a file mounted alone keeps its old content), read-only and publishing nothing.

    None where it could not stand in: no balancer fronting this registry alone on its host; nothing
    of regdeploy's running (a first `up`, a crash loop); the balancer itself changing in the same
    plan (a new haproxy starts with the slot disabled); the registry's user changing (the files and
    data are handed to the new one while the standby reads them); a definition it cannot read."""
    from regdeploy.deploy.generation import unit_from_definition
    from regdeploy.deploy.units import as_standby, lb_name

    if lone_local_replica(spec) is None or current is None or current.status != "running":
        return None
    recorded = current.definition
    if not recorded or plan.unit_change(lb_name(spec)) is not None:
        return None
    if wanted is None or (recorded.get("run") or {}).get("user") != (wanted.get("run") or {}).get("user"):
        return None
    try:
        old = unit_from_definition(spec.name, "registry", recorded)
    except (KeyError, TypeError, ValueError, AttributeError):  # a label written by hand or long ago
        return None
    return as_standby(spec, dataclasses.replace(old, image=current.image_id or old.image))


def without_standby_removal(plan: Plan) -> Plan:
    """*plan* less the removal of a standby an earlier run left: the covering standby takes its name
    (removing the leftover first) and goes when the replacement is done."""
    kept = tuple(c for c in plan.changes if not (c.action == "remove" and c.reason == STANDBY_LEFT))
    return dataclasses.replace(plan, changes=kept)


@contextlib.contextmanager
def _serving(
    spec: RegistrySpec, transport: Transport, unit: Unit, masker: Masker, say: Callable[[str], None],
    quiet: bool = False,
) -> Iterator[bool]:  # fmt: skip
    """*unit* as the standby in the balancer's slot within the block; yields whether it serves.
    Whatever keeps it from serving is a warning (the block runs all the same, with the pause)."""
    from regdeploy.spec import validate as v

    lone = lone_local_replica(spec)
    assert lone is not None and spec.lb is not None
    # The balancer passes a server after LB_RISE checks, and sees one fail after 3: room for both.
    timeout = max(START_TIMEOUT, (LB_RISE + 3) * v.duration_seconds(spec.lb.check_interval) + 5)
    admin = _admin(spec, transport)
    slot = standby_server(lone.host)
    if not _slot_ready_to_use(admin, slot, say, quiet):
        yield False
        return
    _take_out(admin, slot, say)  # a leftover in rotation: its clients finish before it goes
    try:
        cid = _start(spec, transport, unit, masker, say)
    except RegdeployError as exc:
        say(f"warning: no standby ({exc}): pulls pause for the restart")
        yield False
        return
    try:
        bring_up(admin, slot, _address(transport, cid, spec.network), lone.port, timeout)
    except (RegdeployError, OSError) as exc:
        say(f"warning: the standby did not come up at the balancer ({exc}): pulls pause for the restart")
        with contextlib.suppress(RegdeployError, OSError):
            admin.set_state(slot, "maint")
        _remove(transport, cid, say)
        yield False
        return
    say("a read-only standby serves pulls at the balancer while the registry restarts")
    try:
        yield True
    finally:
        _retire(spec, lone, admin, slot, cid, transport, timeout, say)


def retire_leftover(spec: RegistrySpec, transport: Transport, say: Callable[[str], None]) -> None:
    """Before `up` removes a standby an interrupted run left: its slot drained and disabled, so
    that the removal cuts no client off (best effort: an unreachable balancer changes nothing)."""
    lone = lone_local_replica(spec)
    if lone is not None:
        _take_out(_admin(spec, transport), standby_server(lone.host), say)


def _admin(spec: RegistrySpec, transport: Transport) -> Admin:
    """The balancer's admin socket on this host (the one fronting the lone replica)."""
    return Admin(spec.host, transport, lb_admin_socket(spec.config_dir))


def _take_out(admin: Admin, slot: str, say: Callable[[str], None]) -> None:
    """The slot drained (bounded) and disabled, unless it is disabled already."""
    try:
        if admin.status(slot).startswith("MAINT"):
            return
        say(f"taking the standby left by an earlier run out of the balancer ({slot})")
        _disable(admin, slot)
    except (RegdeployError, OSError) as exc:
        say(f"warning: balancer: cannot take the slot {slot} out ({exc})")


def _disable(admin: Admin, slot: str) -> None:
    """The slot drained (its sessions waited for, bounded), then disabled."""
    admin.set_state(slot, "drain")
    _wait_idle(admin, slot)
    admin.set_state(slot, "maint")


def _slot_ready_to_use(admin: Admin, slot: str, say: Callable[[str], None], quiet: bool = False) -> bool:
    """Whether the balancer answers and has the standby's slot; a warning naming the way out if not."""
    try:
        status = admin.status(slot)
    except (RegdeployError, OSError) as exc:
        if quiet:
            return False
        say(
            f"warning: balancer: cannot reach its admin socket ({exc}); "
            "no standby this time: pulls pause for the restarts"
        )
        return False
    if not status:
        if quiet:
            return False
        say(
            f"warning: balancer: its haproxy.cfg has no slot {slot} (written by an older regdeploy): "
            "run `regdeploy up` to add it; no standby this time: pulls pause for the restarts"
        )
        return False
    return True


def _start(
    spec: RegistrySpec, transport: Transport, unit: Unit, masker: Masker, say: Callable[[str], None]
) -> str:
    """The standby container, started (one left by an interrupted run removed first); its id."""
    from regdeploy.deploy.definition import create_body, definition, labels

    engine = transport.engine()
    if engine.inspect_container(unit.name) is not None:
        engine.remove_container(unit.name, force=True)
    image = engine.inspect_image(unit.image)
    wanted = definition(unit, str(image["Id"]) if image else None, "")
    body = create_body(unit, wanted, labels(spec.host, spec.name, unit, wanted))
    say(f"starting {unit.name} (read-only) beside the registry")
    cid = engine.create_container(unit.name, body)
    try:
        engine.start_container(cid)
        _check_running(engine, cid, masker, unit.name)
    except RegdeployError as exc:
        engine.remove_container(cid, force=True)
        raise HostError(f"{unit.name}: {exc}") from None
    return cid


def _check_running(engine: Engine, cid: str, masker: Masker, name: str) -> None:
    """HostError with its log when the new container is not running. Whether it serves, the
    balancer's own checks tell (:func:`bring_up`): its log may say nothing at the registry's
    log level (warn: no "listening on")."""
    from regdeploy.deploy.health import log_tail

    state = (engine.inspect_container(cid) or {}).get("State", {})
    if state.get("Status") != "running":
        tail = log_tail(engine, cid, masker.mask, name)
        raise HostError(f"it is {state.get('Status')} (code {state.get('ExitCode')}){tail}")


def _retire(
    spec: RegistrySpec, lone: Backend, admin: Admin, slot: str, cid: str, transport: Transport,
    timeout: float, say: Callable[[str], None],
) -> None:  # fmt: skip
    """Once the registry (*lone*, as the balancer knows it) is back at the balancer: the standby
    drained, disabled and removed. Never raises (whatever ended the window stays the error); a
    registry that is not back keeps it."""
    try:
        address = _address(transport, spec.name, spec.network)
        bring_up(admin, lone.host, address, lone.port, timeout, main=True)
    except (RegdeployError, OSError) as exc:
        with contextlib.suppress(RegdeployError, OSError):  # it gets clients once its checks pass
            admin.set_state(lone.host, "ready")
        say(
            f"warning: the registry is not back at the balancer ({exc}): the read-only standby keeps "
            "serving; once the registry serves again, `regdeploy up` removes it"
        )
        return
    try:
        _disable(admin, slot)
    except (RegdeployError, OSError) as exc:
        say(f"warning: balancer: cannot disable the standby's slot {slot} ({exc}); removing it anyway")
    _remove(transport, cid, say)


def _address(transport: Transport, container: str, network: str) -> str:
    """*container*'s address on the registry's private network (HostError when it has none)."""
    info = transport.engine().inspect_container(container) or {}
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    address = str((networks.get(network) or {}).get("IPAddress") or "")
    if not address:
        raise HostError(f"{container} has no address on {network}")
    return address


def _remove(transport: Transport, cid: str, say: Callable[[str], None]) -> None:
    try:
        transport.engine().remove_container(cid, force=True)
        say("standby removed")
    except (RegdeployError, OSError) as exc:
        say(f"warning: the standby could not be removed ({exc}): `regdeploy up` removes it")


def _wait_idle(admin: Admin, server: str, sleep: Callable[[float], None] = time.sleep) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while admin.sessions(server) and time.monotonic() < deadline:
        sleep(0.2)


def bring_up(admin: Admin, server: str, address: str, port: int, timeout: float, main: bool = False) -> None:
    """*server* at *address*, marked down and made ready: back once the balancer's own checks
    pass it (at that address, whatever Docker's DNS said last)."""
    try:
        admin.set_addr(server, address, port)
    except OSError:
        if not main:  # the registry's own server: Docker's DNS gives the balancer its address too
            raise
    admin.set_health(server, "down")
    admin.set_state(server, "ready")
    wait_up(admin, server, timeout)


def wait_up(
    admin: Admin, server: str, timeout: float, clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:  # fmt: skip
    """Until the balancer has *server* UP; HostError past *timeout*."""
    deadline = clock() + timeout
    while True:
        status = admin.status(server)
        if status == "UP":
            return
        if clock() >= deadline:
            seen = status or "unlisted"
            raise HostError(f"{admin.host}: the balancer still has {server} {seen} after {timeout:g}s")
        sleep(0.2)
