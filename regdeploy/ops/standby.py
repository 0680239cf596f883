"""A standby registry that serves pulls while a lone replica restarts for a read-only window.

distribution 2.8 reads its config only at start, so `gc` and `backup` restart the registry into
read-only and back; a published port cannot pass from one container to the next without a gap,
and for that gap a registry of its own refuses pulls. When a balancer on the same host fronts
that registry alone (``registry.cluster`` and ``registry_lb`` on one host), the balancer outlives
the restarts, and this module gives it somewhere to send clients meanwhile:

1. a standby — the registry once more, read-only, on the same files and storage, publishing
   nothing, on the private network — starts and logs that it listens; the balancer's disabled
   slot for it (haproxy.cfg) gets its address, is marked down and made ready, and the window
   waits until the balancer's own checks bring it up (haproxy counts a server leaving
   maintenance as up before any check: marked down, it must pass ``rise`` checks first);
2. the registry switches (`up` drains it at the balancer first and makes it ready after);
3. when the window closes, the registry is given its new container's address, marked down, and
   waited for in the same way; then the standby is drained, its slot disabled, and the container
   removed.

A balancer that cannot be driven (stopped, its socket out of reach, or a haproxy.cfg from before
the slot existed) is a warning: the window runs without a standby, as on a registry of its own.
The standby stays where the registry does not come back, so that clients keep being served; and
where regdeploy is killed inside the window. The next `up` removes it (a stray, with its reason)
and the next `gc` or `backup` replaces it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from regdeploy.errors import HostError, RegdeployError
from regdeploy.materials.secrets import Masker
from regdeploy.ops.drain import BACKEND, DRAIN_TIMEOUT, Admin
from regdeploy.ops.run import HostJob, Progress
from regdeploy.spec.cluster import LB_RISE, lb_admin_socket, lone_local_replica, standby_server

if TYPE_CHECKING:
    from regdeploy.transport.base import Transport
    from regdeploy.transport.engine_api import Engine

LISTENING = "listening on"  # what the registry logs once it serves
START_TIMEOUT = 30.0


@contextlib.contextmanager
def standing_in(job: HostJob, masker: Masker, progress: Progress) -> Iterator[HostJob]:
    """Within the block, a read-only standby serves beside the registry behind its local balancer;
    yields the job whose `up` runs leave the standby alone. No balancer alone in front of this
    registry on its own host (or one that cannot be driven): nothing is started, and the job is
    yielded as it is."""
    lone = lone_local_replica(job.spec)
    if lone is None:
        yield job
        return
    from regdeploy.spec import validate as v
    from regdeploy.transport import open_transport

    def say(message: str) -> None:
        progress(job.name, message)

    assert job.spec.lb is not None
    # The balancer passes a server after LB_RISE checks, and sees one fail after 3: room for both.
    timeout = max(START_TIMEOUT, (LB_RISE + 3) * v.duration_seconds(job.spec.lb.check_interval) + 5)
    transport = open_transport(job.name, job.vars, say)
    try:
        admin = Admin(job.name, transport, lb_admin_socket(job.spec.config_dir))
        slot = standby_server(lone.host)
        if not _slot_ready_to_use(admin, slot, say):
            yield job
            return
        job = job.on_host(transport.identity())
        cid = _start(job, transport, masker, say)
        try:
            bring_up(admin, slot, _address(transport, cid, job.spec.network), lone.port, timeout)
        except (RegdeployError, OSError) as exc:
            _remove(transport, cid, say)
            raise HostError(f"{job.name}: the standby did not come up at the balancer: {exc}") from None
        say("a read-only standby serves pulls at the balancer while the registry restarts")
        try:
            yield dataclasses.replace(job, keeps_standby=True)
        finally:
            _retire(job, admin, slot, cid, transport, timeout, say)
    finally:
        transport.close()


def _slot_ready_to_use(admin: Admin, slot: str, say: Callable[[str], None]) -> bool:
    """Whether the balancer answers and has the standby's slot; a warning naming the way out if not."""
    try:
        status = admin.status(slot)
    except (RegdeployError, OSError) as exc:
        say(
            f"warning: balancer: cannot reach its admin socket ({exc}); "
            "no standby this time: pulls pause for the restarts"
        )
        return False
    if not status:
        say(
            f"warning: balancer: its haproxy.cfg has no slot {slot} (written by an older regdeploy): "
            "run `regdeploy up` to add it; no standby this time: pulls pause for the restarts"
        )
        return False
    return True


def _start(job: HostJob, transport: Transport, masker: Masker, say: Callable[[str], None]) -> str:
    """The standby container, started and listening (one left by an interrupted run removed
    first); its id."""
    from regdeploy.deploy.definition import create_body, definition, labels
    from regdeploy.deploy.units import standby_unit

    engine = transport.engine()
    unit = standby_unit(job.spec, job.rendered)
    if engine.inspect_container(unit.name) is not None:
        engine.remove_container(unit.name, force=True)
    image = engine.inspect_image(unit.image)
    wanted = definition(unit, str(image["Id"]) if image else None, "")
    body = create_body(unit, wanted, labels(job.spec.host, job.spec.name, unit, wanted))
    say(f"starting {unit.name} (read-only) beside the registry")
    cid = engine.create_container(unit.name, body)
    try:
        engine.start_container(cid)
        _wait_listening(engine, cid, job.spec.health_timeout, masker, unit.name)
    except RegdeployError as exc:
        engine.remove_container(cid, force=True)
        raise HostError(f"{job.name}: the standby {unit.name}: {exc}") from None
    return cid


def _wait_listening(engine: Engine, cid: str, timeout: float, masker: Masker, name: str) -> None:
    """Until the new container logs that it listens. Its whole log: it never started before (a
    log probe's ``since`` of StartedAt would miss lines written before Docker recorded that time,
    and the registry writes its first ones within a millisecond)."""
    from regdeploy.deploy.health import log_tail

    deadline = time.monotonic() + timeout
    while True:
        state = (engine.inspect_container(cid) or {}).get("State", {})
        if state.get("Status") in ("exited", "dead", None):
            tail = log_tail(engine, cid, masker.mask, name)
            raise HostError(f"it exited (code {state.get('ExitCode')}){tail}")
        if LISTENING in engine.container_logs(cid, tail=200).decode(errors="replace"):
            return
        if time.monotonic() > deadline:
            raise HostError(
                f"it did not log {LISTENING!r} within {timeout:g}s{log_tail(engine, cid, masker.mask, name)}"
            )
        time.sleep(0.1)


def _retire(
    job: HostJob, admin: Admin, slot: str, cid: str, transport: Transport, timeout: float,
    say: Callable[[str], None],
) -> None:  # fmt: skip
    """Once the registry is back at the balancer: the standby drained, disabled and removed. Never
    raises (whatever ended the window stays the error); a registry that is not back keeps it."""
    lone = lone_local_replica(job.spec)
    assert lone is not None
    try:
        address = _address(transport, job.spec.name, job.spec.network)
        bring_up(admin, lone.host, address, lone.port, timeout, main=True)
    except (RegdeployError, OSError) as exc:
        say(
            f"warning: the registry is not back at the balancer ({exc}): the read-only standby keeps "
            "serving; once the registry serves again, `regdeploy up` removes it"
        )
        return
    try:
        admin.set_state(slot, "drain")
        _wait_idle(admin, slot)
        admin.set_state(slot, "maint")
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
    admin.command_quiet(f"set server {BACKEND}/{server} health down")
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
