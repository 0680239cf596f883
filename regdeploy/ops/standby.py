"""A standby registry that serves pulls while a lone replica restarts for a read-only window.

distribution 2.8 reads its config only at start, so `gc` and `backup` restart the registry into
read-only and back; a published port cannot pass from one container to the next without a gap,
and for that gap a registry of its own refuses pulls. When a balancer on the same host fronts
that registry alone (``registry.cluster`` and ``registry_lb`` on one host), the balancer outlives
the restarts, and this module gives it somewhere to send clients meanwhile:

1. a standby — the registry once more, read-only, on the same files and storage, publishing
   nothing, on the private network — starts; the balancer's disabled slot for it
   (haproxy.cfg) is made ready and the window waits until the balancer's checks pass it;
2. the registry switches (`up` drains it at the balancer first and makes it ready after);
3. when the window closes and the registry passes the balancer's checks again, the standby is
   drained, its slot disabled, and the container removed.

Interrupted, the standby is left read-only in the slot; the next `up` removes it (a stray of the
registry, with its reason) and the next `gc` or `backup` replaces it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from regdeploy.errors import HostError, RegdeployError
from regdeploy.materials.secrets import Masker
from regdeploy.ops.drain import DRAIN_TIMEOUT, Admin
from regdeploy.ops.run import HostJob, Progress
from regdeploy.spec.cluster import lb_admin_socket, lone_local_replica, standby_server

if TYPE_CHECKING:
    from regdeploy.transport.base import Transport

UP_TIMEOUT = 30.0  # seconds for the balancer to pass a server's checks


@contextlib.contextmanager
def standing_in(job: HostJob, masker: Masker, progress: Progress) -> Iterator[HostJob]:
    """Within the block, a read-only standby serves beside the registry behind its local balancer;
    yields the job whose `up` runs leave the standby alone. No balancer alone in front of this
    registry on its own host: nothing is started, and the job is yielded as it is."""
    lone = lone_local_replica(job.spec)
    if lone is None:
        yield job
        return
    import dataclasses

    from regdeploy.transport import open_transport

    def say(message: str) -> None:
        progress(job.name, message)

    transport = open_transport(job.name, job.vars, say)
    admin = Admin(job.name, transport, lb_admin_socket(job.spec.config_dir))
    slot = standby_server(lone.host)
    try:
        job = job.on_host(transport.identity())
        cid = _start(job, transport, masker, say)
        try:
            admin.set_state(slot, "ready")
            wait_up(admin, slot, UP_TIMEOUT)
            say("a read-only standby serves pulls at the balancer while the registry restarts")
            yield dataclasses.replace(job, keeps_standby=True)
        finally:
            _retire(job, admin, slot, lone.host, cid, transport, say)
    except OSError as exc:  # the admin socket: before anything switched
        raise HostError(f"{job.name}: the local balancer's admin socket: {exc}") from None
    finally:
        transport.close()


def _start(job: HostJob, transport: Transport, masker: Masker, say: Callable[[str], None]) -> str:
    """The standby container, started (one left by an interrupted run removed first); its id."""
    from regdeploy.deploy.definition import create_body, definition, labels
    from regdeploy.deploy.health import log_tail
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
        time.sleep(0.3)
        state = (engine.inspect_container(cid) or {}).get("State", {})
        if state.get("Status") != "running":
            raise HostError(
                f"{job.name}: the standby {unit.name} stopped at once (exit code {state.get('ExitCode')})"
                f"{log_tail(engine, cid, masker.mask, unit.name)}"
            )
    except RegdeployError:
        engine.remove_container(cid, force=True)
        raise
    return cid


def _retire(
    job: HostJob, admin: Admin, slot: str, main: str, cid: str, transport: Transport,
    say: Callable[[str], None],
) -> None:  # fmt: skip
    """The registry back in the balancer, then the standby drained, disabled and removed."""
    try:
        wait_up(admin, main, UP_TIMEOUT)
    except (RegdeployError, OSError) as exc:
        say(f"warning: {exc}; retiring the standby all the same")
    try:
        admin.set_state(slot, "drain")
        _wait_idle(admin, slot)
        admin.set_state(slot, "maint")
    except OSError as exc:
        say(f"warning: balancer: cannot disable the standby's slot {slot} ({exc})")
    transport.engine().remove_container(cid, force=True)
    say("standby removed")


def _wait_idle(admin: Admin, server: str, sleep: Callable[[float], None] = time.sleep) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while admin.sessions(server) and time.monotonic() < deadline:
        sleep(0.2)


def wait_up(
    admin: Admin, server: str, timeout: float, clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:  # fmt: skip
    """Until the balancer's checks pass *server* (status UP); HostError past *timeout*."""
    deadline = clock() + timeout
    status = ""
    while True:
        status = admin.status(server)
        if status == "UP":
            return
        if clock() >= deadline:
            raise HostError(
                f"{admin.host}: the balancer still has {server} {status or 'unlisted'} after {timeout:g}s"
            )
        sleep(0.2)
