"""apply and down over units, against the fake engine: order, rollback, idempotence, leftovers."""

from __future__ import annotations

import dataclasses

import pytest
from fakes import FakeEngine, FakeHost

from regdeploy.deploy.apply import apply_plan
from regdeploy.deploy.facts import gather
from regdeploy.deploy.files import Rendered
from regdeploy.deploy.plan import Plan, Wanted, make_plan, wanted_for
from regdeploy.deploy.render import render
from regdeploy.deploy.units import Probe
from regdeploy.errors import ApplyError, HostError
from regdeploy.materials.host import HostMaterials, RelayMaterial, UserEntry, relay_endpoint
from regdeploy.ops.down import take_down
from regdeploy.spec.registry import RegistrySpec, parse_spec

SIDECAR = "regdeploy-sidecar:test"
READY = "ready"  # what the fake engine logs; the units below wait for it instead of an HTTP probe


def spec(**raw: object) -> RegistrySpec:
    base = {
        "config_dir": "/srv/reg",
        "data_dir": "/srv/data",
        "tls": {"mode": "none", "insecure": True},
        "relay": {"targets": [{"name": "ci", "type": "generic", "url": "http://ci.example/hook"}]},
        "health_timeout": "2s",
    }
    return parse_spec("reg1", {**base, **raw})


def materials(s: RegistrySpec) -> HostMaterials:
    relay = RelayMaterial("inbound-token-123", {}) if s.relay else None
    return HostMaterials(
        http_secret="s3cret",
        users=(UserEntry("alice", "$2b$04$abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ01234"),),
        passwords={"alice": "pw"},
        endpoints=(relay_endpoint(s, relay),) if relay else (),
        tls=None,
        relay=relay,
    )


def log_probed(wanted: Wanted) -> Wanted:
    units = tuple(dataclasses.replace(u, probe=Probe("log", marker=READY)) for u in wanted.units)
    return Wanted(units, wanted.definitions)


def converge(host: FakeHost, s: RegistrySpec) -> Plan:
    rendered: Rendered = render(s, materials(s))
    units = wanted_for(s, rendered, {}, SIDECAR).units
    facts = gather(host, s, rendered, units)  # type: ignore[arg-type]
    wanted = log_probed(wanted_for(s, rendered, facts.images, SIDECAR))
    plan = make_plan(s, rendered, facts, wanted)
    images = host.engine().images
    apply_plan(host, s, rendered, plan, wanted, None, lambda m: None, str, images.__getitem__)  # type: ignore[arg-type]
    return plan


@pytest.fixture()
def host() -> FakeHost:
    engine = FakeEngine(log_line=READY)
    engine.images.update({"registry:2": "sha256:reg", SIDECAR: "sha256:side", "registry:2.8": "sha256:new"})
    return FakeHost(engine)


def test_units_start_in_dependency_order_on_their_network(host: FakeHost) -> None:
    plan = converge(host, spec())
    engine = host.engine()
    assert [c for c in engine.calls if c[0] in ("create_network", "create", "start")] == [
        ("create_network", "registry-net"),
        ("create", "registry-relay"),  # the relay first: the registry sends to it
        ("start", "registry-relay"),
        ("create", "registry"),
        ("start", "registry"),
    ]
    assert [c.resource for c in plan.changes if c.kind in ("network", "container")] == [
        "network:registry-net", "container:registry-relay", "container:registry",
    ]  # fmt: skip
    registry = engine.by_name("registry")
    assert registry is not None
    hc = registry["HostConfig"]
    assert (hc["ReadonlyRootfs"], hc["CapDrop"], hc["SecurityOpt"]) == (
        True,
        ["ALL"],
        ["no-new-privileges:true"],
    )
    assert hc["NetworkMode"] == "registry-net"
    assert registry["Config"]["User"] == "65532:65532"
    # What the units read belongs to their user and stays private.
    assert host.files["/srv/reg/config.yml"][1:] == (0o600, (65532, 65532))
    assert host.files["/srv/reg/relay/inbound.token"] == (b"inbound-token-123", 0o600, (65532, 65532))


def test_a_second_run_changes_nothing(host: FakeHost) -> None:
    converge(host, spec())
    before = list(host.engine().calls)
    assert converge(host, spec()).changes == ()
    assert host.engine().calls == before


def test_a_failing_unit_puts_back_every_unit_and_the_files(host: FakeHost) -> None:
    converge(host, spec())
    engine = host.engine()
    old_ids = {c["Name"]: c["Id"] for c in engine.containers.values()}
    old_config = host.files["/srv/reg/config.yml"][0]
    engine.broken_images.add("sha256:new")
    # Both units change (restart policy); the registry's new image does not start.
    with pytest.raises(ApplyError) as failed:
        converge(host, spec(image="registry:2.8", restart="always", storage={"delete": False}))
    message = str(failed.value)
    assert "container registry: recreate failed" in message
    assert "the previous files were put back" in message
    assert {c["Name"]: c["Id"] for c in engine.containers.values()} == old_ids
    assert engine.running() == ["registry", "registry-relay"]
    assert host.files["/srv/reg/config.yml"][0] == old_config
    # ... and the next run wants the same change again.
    engine.broken_images.clear()
    plan = converge(host, spec(image="registry:2.8", restart="always", storage={"delete": False}))
    assert {c.action for c in plan.changes if c.kind == "container"} == {"recreate"}


def test_a_unit_no_longer_wanted_is_removed_after_the_registry(host: FakeHost) -> None:
    converge(host, spec())
    without = spec(relay=None)
    plan = converge(host, without)
    containers = [(c.target, c.action) for c in plan.changes if c.kind == "container"]
    assert containers == [("registry", "recreate"), ("registry-relay", "remove")]
    assert host.engine().running() == ["registry"]


def test_down_removes_every_unit_registry_last_and_the_network(host: FakeHost) -> None:
    converge(host, spec())
    engine = host.engine()
    changes = take_down(host, spec(), purge_data=False)  # type: ignore[arg-type]
    assert [c["resource"] for c in changes] == [
        "container:registry-relay", "container:registry", "network:registry-net",
    ]  # fmt: skip
    assert engine.containers == {} and engine.networks == {}
    assert "/srv/reg/config.yml" in host.files  # data and config stay
    assert take_down(host, spec(), purge_data=False) == []  # type: ignore[arg-type]


def test_down_refuses_a_foreign_container_before_removing_anything(host: FakeHost) -> None:
    converge(host, spec())
    engine = host.engine()
    relay = engine.by_name("registry-relay")
    assert relay is not None
    relay["Config"]["Labels"] = {}
    with pytest.raises(HostError, match="'registry-relay' was not created by regdeploy"):
        take_down(host, spec(), purge_data=False)  # type: ignore[arg-type]
    assert len(engine.containers) == 2


def test_put_back_files_keep_their_own_mode_and_owner(host: FakeHost) -> None:
    converge(host, spec())
    path = "/srv/reg/config.yml"
    data, _, _ = host.files[path]
    host.files[path] = (data, 0o640, (0, 0))  # as an older version left it
    host.engine().broken_images.add("sha256:new")
    with pytest.raises(ApplyError, match="the previous files were put back"):
        converge(host, spec(image="registry:2.8", storage={"delete": False}))
    assert host.files[path] == (data, 0o640, (0, 0))

