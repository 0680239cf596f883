"""A lone replica behind a balancer on its own host: how the balancer reaches it, the standby's
slot and unit, and the window's waits (fakes for the admin socket; the real haproxy, registry and
engine are exercised by tests/integration/test_gc_standby.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from regdeploy.deploy.facts import ContainerFacts, HostFacts
from regdeploy.deploy.plan import STANDBY_LEFT, make_plan
from regdeploy.deploy.units import STANDBY_ENV, registry_unit, standby_unit
from regdeploy.errors import HostError
from regdeploy.ops import drain, standby
from regdeploy.ops.run import _without_standby, prepare
from regdeploy.spec.cluster import Backend


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
    assert "server localhost.standby reg-standby:5000 disabled resolvers docker" in cfg
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
    with standby.standing_in(job, None, lambda h, m: None) as inside:  # type: ignore[arg-type]
        assert inside is job  # nothing started, no host reached
