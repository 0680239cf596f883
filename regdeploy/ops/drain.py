"""Drain a replica at its cluster's balancers before `up` replaces it, so no client is cut off.

distribution 2.8 exits at once on SIGTERM (no graceful drain: tried), so a replica stopped while a
balancer still sends it clients drops their requests. Before a replica's registry container is
replaced, each balancer is told through haproxy's admin socket (``set server replicas/HOST state
drain``: no new connections) and `up` waits until the replica's sessions there are done (bounded);
once the new container serves, the replica is made ``ready`` again. A balancer that cannot be
reached (down, not deployed yet, its socket not reachable as this user) is named in a warning and
the replica is replaced without it — the balancer's health checks and retries still cover it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from regdeploy.errors import RegdeployError
from regdeploy.spec.cluster import BalancerAccess, ClusterView
from regdeploy.transport import Transport, open_transport

BACKEND = "replicas"  # haproxy.cfg's backend
DRAIN_TIMEOUT = 10.0  # seconds to wait for a replica's sessions to end
TIMEOUT = 5.0


@dataclass
class Admin:
    """haproxy's runtime API on one balancer host: one command per connection."""

    host: str
    transport: Transport
    socket: str

    def command(self, line: str) -> str:
        stream = self.transport.connect_unix(self.socket, TIMEOUT)
        try:
            stream.sendall(line.encode() + b"\n")
            chunks: list[bytes] = []
            while True:
                chunk = stream.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            stream.close()
        return b"".join(chunks).decode(errors="replace")

    def set_state(self, server: str, state: str) -> None:
        self.command_quiet(f"set server {BACKEND}/{server} state {state}")

    def set_health(self, server: str, health: str) -> None:
        self.command_quiet(f"set server {BACKEND}/{server} health {health}")

    def command_quiet(self, line: str) -> None:
        """A command haproxy answers nothing to on success (OSError with its answer otherwise)."""
        answer = self.command(line).strip()
        if answer:
            raise OSError(" ".join(answer.split())[:200])

    def set_addr(self, server: str, address: str, port: int) -> None:
        answer = self.command(f"set server {BACKEND}/{server} addr {address} port {port}")
        if "changed" not in answer and "no need to change" not in answer:  # its words on success
            raise OSError(" ".join(answer.split())[:200] or "no answer to `set server ... addr`")

    def sessions(self, server: str) -> int:
        return current_sessions(self.command("show stat"), server)

    def status(self, server: str) -> str:
        """Its ``status`` (UP, DOWN, MAINT, DRAIN, "UP 1/2", ...); "" when it is not listed."""
        return stat_field(self.command("show stat"), server, "status")


def current_sessions(csv: str, server: str) -> int:
    """``scur`` of *server* in BACKEND from ``show stat`` output (0 when it is not listed)."""
    return int(stat_field(csv, server, "scur") or 0)


def stat_field(csv: str, server: str, name: str) -> str:
    """Column *name* of *server* in BACKEND from ``show stat`` output ("" when it is not listed)."""
    lines = csv.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise OSError(f"unexpected answer to `show stat`: {' '.join(csv.split())[:120]!r}")
    header = lines[0][2:].split(",")
    column = header.index(name)
    for line in lines[1:]:
        fields = line.split(",")
        if len(fields) > column and fields[0] == BACKEND and fields[1] == server:
            return fields[column]
    return ""


def _open(access: BalancerAccess) -> Admin:
    transport = open_transport(access.host, access.vars)
    return Admin(access.host, transport, access.socket)


@contextlib.contextmanager
def drained(
    replica: str,
    view: ClusterView | None,
    say: Callable[[str], None],
    opener: Callable[[BalancerAccess], Admin] = _open,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    ready_after: bool = True,
) -> Iterator[None]:
    """Within the block, *replica* gets no new clients from any balancer of *view*; made ready
    again after it unless *ready_after* is false (a standby serves, and its retirement brings the
    replica back once the balancer's checks pass it: ops/standby.py)."""
    admins: list[Admin] = []
    try:
        for access in view.access if view is not None else ():
            try:
                admin = opener(access)
            except (RegdeployError, OSError) as exc:
                say(
                    f"warning: balancer {access.host}: cannot reach it to drain {replica} ({exc}); "
                    "replacing without"
                )
                continue
            try:
                admin.set_state(replica, "drain")
                admins.append(admin)
            except (RegdeployError, OSError) as exc:
                say(f"warning: balancer {access.host}: cannot drain {replica} ({exc}); replacing without")
                admin.transport.close()
        if admins:
            _wait_idle(replica, admins, say, clock, sleep)
        yield
    finally:
        for admin in admins:
            try:
                if ready_after:
                    admin.set_state(replica, "ready")
            except (RegdeployError, OSError) as exc:
                fix = f"echo 'set server {BACKEND}/{replica} state ready' | socat - {admin.socket}"
                say(f"warning: balancer {admin.host}: cannot make {replica} ready ({exc}): run `{fix}` there")
            finally:
                admin.transport.close()


def _wait_idle(
    replica: str, admins: list[Admin], say: Callable[[str], None], clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:  # fmt: skip
    started = clock()
    hosts = ", ".join(a.host for a in admins)
    say(f"draining {replica} at {hosts}: no new clients, waiting for its sessions to end")
    while True:
        try:
            left = sum(a.sessions(replica) for a in admins)
        except (RegdeployError, OSError) as exc:
            say(f"warning: cannot read {replica}'s sessions ({exc}); replacing it now")
            return
        waited = clock() - started
        if left == 0:
            say(f"drained {replica} in {waited:.1f}s")
            return
        if waited >= DRAIN_TIMEOUT:
            say(f"warning: {left} sessions still on {replica} after {DRAIN_TIMEOUT:.0f}s; replacing it now")
            return
        sleep(0.2)
