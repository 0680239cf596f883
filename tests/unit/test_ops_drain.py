"""ops/drain.py: a replica drained at every balancer around its replacement (fakes for the admin
socket; the real haproxy is exercised by tests/integration/test_cluster.py)."""

from __future__ import annotations

from typing import Any

import pytest

from regdeploy.ops import drain
from regdeploy.spec.cluster import BalancerAccess, ClusterView

STAT = (
    "# pxname,svname,qcur,qmax,scur,smax,slim\n"
    "registry,FRONTEND,,,3,9,4096\n"
    "replicas,reg1,0,0,{reg1},5,\n"
    "replicas,reg2,0,0,0,5,\n"
    "replicas,BACKEND,0,0,2,9,\n"
)


def test_current_sessions_reads_scur_of_the_server() -> None:
    assert drain.current_sessions(STAT.format(reg1=2), "reg1") == 2
    assert drain.current_sessions(STAT.format(reg1=2), "reg2") == 0
    assert drain.current_sessions(STAT.format(reg1=2), "reg9") == 0
    with pytest.raises(OSError, match="unexpected answer"):
        drain.current_sessions("Unknown command.\n", "reg1")


class FakeTransport:
    closed = False

    def close(self) -> None:
        self.closed = True


class FakeAdmin(drain.Admin):
    def __init__(self, host: str, sessions: list[int], fail: str | None = None) -> None:
        super().__init__(host, FakeTransport(), "/x/admin.sock")  # type: ignore[arg-type]
        self.left = sessions
        self.fail = fail
        self.log: list[str] = []

    def command(self, line: str) -> str:
        self.log.append(line)
        if self.fail and line.startswith(self.fail):
            raise OSError("No such server.")
        if line == "show stat":
            return STAT.format(reg1=self.left.pop(0) if len(self.left) > 1 else self.left[0])
        return ""


def view(*hosts: str) -> ClusterView:
    return ClusterView("main", (), (), (), 0.0, tuple(BalancerAccess(h, {}, "/x/admin.sock") for h in hosts))


def test_drained_waits_for_sessions_and_makes_the_replica_ready_after() -> None:
    admins = {"lb1": FakeAdmin("lb1", [2, 1, 0]), "lb2": FakeAdmin("lb2", [0])}
    said: list[str] = []
    inside: list[list[str]] = []
    with drain.drained(
        "reg1", view("lb1", "lb2"), said.append, lambda a: admins[a.host], sleep=lambda s: None
    ):
        inside.append(list(admins["lb1"].log))
    assert inside[0][0] == "set server replicas/reg1 state drain" and inside[0].count("show stat") == 3
    for admin in admins.values():
        assert admin.log[-1] == "set server replicas/reg1 state ready" and admin.transport.closed
    assert any("drained reg1" in s for s in said)


def test_an_unreachable_balancer_is_a_warning_and_the_replica_is_still_replaced() -> None:
    def opener(access: Any) -> drain.Admin:
        raise OSError("connection refused")

    said: list[str] = []
    ran = []
    with drain.drained("reg1", view("lb1"), said.append, opener):
        ran.append(True)
    assert ran and said == [
        "warning: balancer lb1: cannot reach it to drain reg1 (connection refused); replacing without"
    ]


def test_sessions_that_never_end_are_waited_for_only_so_long() -> None:
    admin = FakeAdmin("lb1", [4])
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    said: list[str] = []
    with drain.drained("reg1", view("lb1"), said.append, lambda a: admin, clock=lambda: now[0], sleep=sleep):
        pass
    assert now[0] >= drain.DRAIN_TIMEOUT and "4 sessions still on reg1" in said[-1]
    assert admin.log[-1].endswith("state ready")


def test_the_replica_is_made_ready_even_when_the_block_fails() -> None:
    admin = FakeAdmin("lb1", [0])
    with pytest.raises(RuntimeError), drain.drained("reg1", view("lb1"), lambda s: None, lambda a: admin):
        raise RuntimeError("apply failed")
    assert admin.log[-1] == "set server replicas/reg1 state ready"


def test_a_restart_or_replacement_of_the_registry_is_drained_a_creation_is_storage_checked() -> None:
    from regdeploy.deploy.plan import Change, Plan
    from regdeploy.ops.run import GOES, STARTS, _registry_action
    from regdeploy.spec.registry import RegistrySpec

    spec = RegistrySpec(host="reg1")
    for action, drains, checks in (
        ("restart", True, False), ("recreate", True, True), ("create", False, True), ("remove", True, False),
    ):  # fmt: skip
        plan = Plan(
            "reg1",
            (
                Change("container", "registry-redis", "create", "x"),
                Change("container", "registry", action, "x"),
            ),
        )
        assert (_registry_action(plan, spec) in GOES, _registry_action(plan, spec) in STARTS) == (
            drains,
            checks,
        )
    assert (
        _registry_action(Plan("reg1", (Change("container", "registry-lb", "recreate", "x"),)), spec) is None
    )


def test_a_replica_a_standby_covers_is_left_drained_for_the_standby_to_bring_back() -> None:
    admin = FakeAdmin("lb1", [0])
    with drain.drained("reg1", view("lb1"), lambda s: None, lambda a: admin, sleep=lambda s: None,
                       ready_after=False):  # fmt: skip
        pass
    assert "set server replicas/reg1 state drain" in admin.log
    assert not any("state ready" in line for line in admin.log) and admin.transport.closed
