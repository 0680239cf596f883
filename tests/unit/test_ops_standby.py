"""A lone replica behind a balancer on its own host: how the balancer reaches it, the standby's
slot and unit, and the window's waits (fakes for the admin socket; the real haproxy, registry and
engine are exercised by tests/integration/test_gc_standby.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from regdeploy.deploy.facts import ContainerFacts, HostFacts
from regdeploy.deploy.plan import STANDBY_LEFT, make_plan
from regdeploy.deploy.units import STANDBY_ENV, registry_unit, standby_unit
from regdeploy.errors import HostError
from regdeploy.ops import drain, standby
from regdeploy.ops.readonly import standing_in
from regdeploy.ops.run import _without_standby, prepare
from regdeploy.spec.cluster import Backend, lone_local_replica


def fronted(tmp_path: Path, registry: dict[str, Any] | None = None) -> Path:
    host = {
        "ansible_connection": "local",
        "registry": {"name": "reg", "cluster": "solo", "port": 5000, **(registry or {})},
        "registry_lb": {"cluster": "solo", "port": 443},
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host}}}))
    return path


def haproxy_cfg(job: Any) -> str:
    return str(next(f for f in job.rendered.files if f.path.endswith("haproxy.cfg")).data.decode())


def test_a_balancer_reaches_the_replica_on_its_own_host_by_container_name(tmp_path: Path) -> None:
    # On the control machine too: nothing routes between hosts when there is one host.
    (job,) = prepare(fronted(tmp_path), None).jobs
    assert job.spec.lb is not None
    assert job.spec.lb.backends == (Backend("localhost", "reg", 5000, local=True),)
    cfg = haproxy_cfg(job)
    assert "resolvers docker\n    nameserver dns 127.0.0.11:53" in cfg
    assert "server localhost reg:5000 resolvers docker resolve-prefer ipv4" in cfg
    assert "# reg-standby: regdeploy sets its address here at run time" in cfg
    assert "server localhost.standby 127.0.0.1:5000 disabled\n" in cfg + "\n"
    assert [u.role for u in job.units] == ["registry", "lb"]  # the standby is no unit of the host


def test_remote_replicas_are_reached_by_address_and_get_no_standby(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_S3_ACCESS", "access")
    monkeypatch.setenv("T_S3_SECRET", "secret")
    replica = {"ansible_host": "10.9.0.11", "registry": {"cluster": "main", "storage": {"s3": {
        "bucket": "registry", "region": "us-east-1", "regionendpoint": "http://10.9.0.5:8333",
        "accesskey": {"env": "T_S3_ACCESS"}, "secretkey": {"env": "T_S3_SECRET"}}}}}  # fmt: skip
    hosts = {
        "reg1": {**replica, "registry_lb": {"cluster": "main", "port": 443}},
        "reg2": {**replica, "ansible_host": "10.9.0.12"},
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    jobs = {j.name: j for j in prepare(path, None).jobs}
    cfg = haproxy_cfg(jobs["reg1"])
    assert "server reg1 registry:5000 resolvers docker" in cfg  # its own host's replica
    assert "server reg2 10.9.0.12:5000\n" in cfg + "\n"
    assert "standby" not in cfg.split("backend replicas", 1)[1]  # two replicas stand in for each other


def test_the_standby_is_the_registry_read_only_publishing_nothing(tmp_path: Path) -> None:
    (job,) = prepare(fronted(tmp_path, {"metrics": {"port": 5002}}), None).jobs
    main = registry_unit(job.spec, job.rendered)
    unit = standby_unit(job.spec, job.rendered)
    assert (unit.name, unit.role, unit.ports, unit.aliases, unit.restart) == (
        "reg-standby",
        "standby",
        (),
        (),
        "no",
    )
    assert unit.env == {**main.env, **STANDBY_ENV} and unit.mounts == main.mounts
    assert unit.run == main.run and unit.run.read_only and unit.network == main.network
    assert unit.command == main.command


def test_a_standby_left_behind_is_removed_by_up_unless_a_window_keeps_it(tmp_path: Path) -> None:
    (job,) = prepare(fronted(tmp_path), None).jobs
    left = ContainerFacts(
        "id", "reg-standby", "sha256:x", "running", "t", True, None, frozenset(), "reg", "standby"
    )
    gone = ContainerFacts(
        "id2", "reg-relay", "sha256:y", "running", "t", True, None, frozenset(), "reg", "relay"
    )
    facts = HostFacts({}, {}, {}, strays=(left, gone))
    plan = make_plan(job.spec, job.rendered, facts, job.wanted({}), False, None)
    reasons = {c.resource: c.reason for c in plan.changes if c.action == "remove"}
    assert reasons["container:reg-standby"] == STANDBY_LEFT
    assert reasons["container:reg-relay"].startswith("no longer in the inventory")
    assert _without_standby(facts).strays == (gone,)


STAT = "# pxname,svname,qcur,qmax,scur,smax,slim,status\nreplicas,{server},0,0,{scur},5,,{status}\n"


class FakeAdmin(drain.Admin):
    def __init__(self, answers: list[tuple[str, str, int]]) -> None:
        super().__init__("localhost", None, "/x/admin.sock")  # type: ignore[arg-type]
        self.answers = answers
        self.log: list[str] = []

    def command(self, line: str) -> str:
        self.log.append(line)
        if line != "show stat":
            return ""
        server, status, scur = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return STAT.format(server=server, status=status, scur=scur)


def test_wait_up_returns_once_the_checks_pass_the_server() -> None:
    admin = FakeAdmin([("s", "MAINT", 0), ("s", "DOWN 1/2", 0), ("s", "UP", 0)])
    standby.wait_up(admin, "s", 5.0, sleep=lambda s: None)
    assert admin.log.count("show stat") == 3


def test_wait_up_fails_naming_the_status_it_saw() -> None:
    times = iter([0.0, 1.0, 2.0, 9.0])
    admin = FakeAdmin([("s", "DOWN", 0)])
    with pytest.raises(HostError, match=r"localhost: the balancer still has s DOWN after 5s"):
        standby.wait_up(admin, "s", 5.0, clock=lambda: next(times), sleep=lambda s: None)
    with pytest.raises(HostError, match="s unlisted"):
        standby.wait_up(FakeAdmin([("other", "UP", 0)]), "s", 0.0, sleep=lambda s: None)


def test_stat_field_reads_a_column_of_the_server() -> None:
    csv = STAT.format(server="reg1", status="DRAIN", scur=3)
    assert drain.stat_field(csv, "reg1", "status") == "DRAIN"
    assert drain.current_sessions(csv, "reg1") == 3
    assert drain.stat_field(csv, "reg2", "status") == ""


def test_no_balancer_on_the_host_means_no_standby(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yml"
    path.write_text(
        yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_connection": "local", "registry": {}}}}})
    )
    (job,) = prepare(path, None).jobs
    with standing_in(job, None, lambda h, m: None) as inside:  # type: ignore[arg-type]
        assert inside is job  # nothing started, no host reached


class ScriptedAdmin(drain.Admin):
    """An admin socket answering each command from a script (status per `show stat`)."""

    def __init__(
        self, statuses: list[str], addr_answer: str = "IP changed from '127.0.0.1' to '10.0.0.7'"
    ) -> None:
        super().__init__("localhost", None, "/x/admin.sock")  # type: ignore[arg-type]
        self.statuses = statuses
        self.addr_answer = addr_answer
        self.log: list[str] = []

    def command(self, line: str) -> str:
        self.log.append(line)
        if line == "show stat":
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            row = STAT.format(server="s", status=status, scur=0)  # the same status for both servers
            return row + row.splitlines()[1].replace(",s,", ",localhost,") + "\n"
        if " addr " in line:
            return self.addr_answer
        return ""


def test_bring_up_sets_the_address_marks_down_then_ready_and_waits_for_the_checks() -> None:
    admin = ScriptedAdmin(["MAINT", "DOWN", "DOWN 1/2", "UP"])
    standby.bring_up(admin, "s", "10.0.0.7", 5000, 5.0)
    assert [line for line in admin.log if line != "show stat"] == [
        "set server replicas/s addr 10.0.0.7 port 5000",
        "set server replicas/s health down",  # else haproxy counts it UP before any check
        "set server replicas/s state ready",
    ]
    assert admin.log.count("show stat") == 4


def test_an_address_haproxy_refuses_fails_the_standby_but_not_the_registry() -> None:
    refusal = "Update for the current server address family is only supported through configuration file"
    with pytest.raises(OSError, match="address family"):
        standby.bring_up(ScriptedAdmin(["UP"], refusal), "s", "10.0.0.7", 5000, 5.0)
    admin = ScriptedAdmin(["UP"], refusal)
    standby.bring_up(admin, "s", "10.0.0.7", 5000, 5.0, main=True)  # Docker's DNS names it too
    assert "set server replicas/s state ready" in admin.log


def test_a_balancer_without_the_slot_or_out_of_reach_is_a_warning_and_no_standby() -> None:
    said: list[str] = []
    assert standby._slot_ready_to_use(ScriptedAdmin(["MAINT"]), "s", said.append)
    assert not standby._slot_ready_to_use(ScriptedAdmin(["MAINT"]), "other", said.append)
    assert "has no slot other (written by an older regdeploy): run `regdeploy up`" in said[-1]

    class Closed(ScriptedAdmin):
        def command(self, line: str) -> str:
            raise ConnectionRefusedError(111, "Connection refused")

    assert not standby._slot_ready_to_use(Closed([]), "s", said.append)
    assert "cannot reach its admin socket" in said[-1] and "pulls pause" in said[-1]


class FakeEngine:
    def __init__(self) -> None:
        self.removed: list[str] = []

    def inspect_container(self, ref: str) -> dict[str, Any]:
        return {"NetworkSettings": {"Networks": {"reg-net": {"IPAddress": "10.0.0.9"}}}}

    def remove_container(self, ref: str, force: bool = False) -> None:
        self.removed.append(ref)


class FakeTransport:
    def __init__(self) -> None:
        self.fake_engine = FakeEngine()

    def engine(self) -> FakeEngine:
        return self.fake_engine


def test_the_standby_stays_when_the_registry_is_not_back_and_goes_once_it_is(tmp_path: Path) -> None:
    (job,) = prepare(fronted(tmp_path), None).jobs
    said: list[str] = []
    transport = FakeTransport()
    lone = lone_local_replica(job.spec)
    assert lone is not None
    never = ScriptedAdmin(["DOWN"])
    standby._retire(job.spec, lone, never, "s", "cid", transport, 0.0, said.append)  # type: ignore[arg-type]
    assert transport.fake_engine.removed == [] and "keeps serving" in said[-1]
    assert not any("state drain" in line for line in never.log)

    back = ScriptedAdmin(["UP"])
    standby._retire(job.spec, lone, back, "s", "cid", transport, 5.0, said.append)  # type: ignore[arg-type]
    assert "set server replicas/localhost addr 10.0.0.9 port 5000" in back.log
    assert back.log.index("set server replicas/s state drain") < back.log.index(
        "set server replicas/s state maint"
    )
    assert transport.fake_engine.removed == ["cid"] and said[-1] == "standby removed"


def test_a_replacement_is_covered_by_the_running_registry_as_recorded(tmp_path: Path) -> None:
    from regdeploy.deploy.definition import definition
    from regdeploy.deploy.plan import Change, Plan

    (job,) = prepare(fronted(tmp_path), None).jobs
    old = dataclasses.replace(registry_unit(job.spec, job.rendered), image="registry:2.8.1")
    recorded = definition(old, "sha256:old", "digest")
    wanted = definition(registry_unit(job.spec, job.rendered), "sha256:new", "digest")
    plan = Plan("localhost", (Change("container", "reg", "recreate", "image"),))

    def running(status: str = "running", d: Any = recorded) -> ContainerFacts:
        return ContainerFacts("id", "reg", "sha256:old", status, "t", True, d, frozenset(), "reg", "registry")

    unit = standby.covering_unit(job.spec, running(), plan, wanted)
    assert unit is not None
    assert (unit.name, unit.role, unit.image, unit.ports, unit.aliases) == (
        "reg-standby",
        "standby",
        "sha256:old",
        (),
        (),
    )
    assert (
        unit.env == {**old.env, **STANDBY_ENV} and unit.mounts == old.mounts and unit.command == old.command
    )
    assert standby.covering_unit(job.spec, None, plan, wanted) is None  # nothing runs yet: a first up
    for status in ("exited", "restarting"):  # a crash loop is nothing to copy
        assert standby.covering_unit(job.spec, running(status), plan, wanted) is None
    assert standby.covering_unit(job.spec, running(d=None), plan, wanted) is None  # not regdeploy's
    assert standby.covering_unit(job.spec, running(d={"image": "x", "mounts": [{}]}), plan, wanted) is None
    # The balancer replaced in the same plan starts with the slot disabled: no standby.
    assert job.spec.lb is not None
    with_lb = Plan(
        "localhost", (*plan.changes, Change("container", job.spec.lb.name, "restart", "haproxy.cfg"))
    )
    assert standby.covering_unit(job.spec, running(), with_lb, wanted) is None
    # A new user gets the files and data while the standby would read them as the old one.
    other_user = {**wanted, "run": {**wanted["run"], "user": "1234:1234"}}
    assert standby.covering_unit(job.spec, running(), plan, other_user) is None
    with standby.covering(job.spec, None, None, None, None) as serving:  # type: ignore[arg-type]
        assert serving is False


def test_the_covering_standby_takes_the_leftovers_place_in_the_plan() -> None:
    from regdeploy.deploy.plan import Change, Plan

    plan = Plan("h", (
        Change("container", "reg", "recreate", "image"),
        Change("container", "reg-standby", "remove", STANDBY_LEFT),
        Change("container", "reg-relay", "remove", "no longer in the inventory (data is kept)"),
    ))  # fmt: skip
    kept = standby.without_standby_removal(plan).changes
    assert [c.target for c in kept] == ["reg", "reg-relay"]


def test_a_leftover_in_rotation_is_drained_and_disabled_before_it_goes() -> None:
    said: list[str] = []
    idle = ScriptedAdmin(["MAINT"])
    standby._take_out(idle, "s", said.append)
    assert idle.log == ["show stat"] and said == []  # disabled already: nothing to do
    serving = ScriptedAdmin(["UP"])
    standby._take_out(serving, "s", said.append)
    assert [line for line in serving.log if line != "show stat"] == [
        "set server replicas/s state drain",
        "set server replicas/s state maint",
    ]
    assert "taking the standby left by an earlier run out" in said[-1]
