"""Rendering and planning are pure: spec + materials -> files; files + facts -> changes with reasons."""

from __future__ import annotations

import dataclasses

import yaml

from regdeploy.deploy.definition import definition, differences
from regdeploy.deploy.diffs import file_diff
from regdeploy.deploy.facts import ContainerFacts, HostFacts, UnitFacts
from regdeploy.deploy.files import Rendered
from regdeploy.deploy.plan import Wanted, make_plan, wanted_for
from regdeploy.deploy.render import render
from regdeploy.deploy.units import registry_unit
from regdeploy.materials.host import HostMaterials, ResolvedEndpoint, TlsMaterial, UserEntry
from regdeploy.spec.registry import RegistrySpec, parse_spec
from regdeploy.transport.base import FileState

SECRET = "http-secret-value-123"
TOKEN = "Bearer webhook-token-xyz"


def materials(tls: bool = True, endpoints: bool = False) -> HostMaterials:
    return HostMaterials(
        http_secret=SECRET,
        users=(UserEntry("alice", "$2b$04$abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ01234"),),
        passwords={"alice": "pw"},
        endpoints=(
            ResolvedEndpoint("ci", "http://127.0.0.1:9/h", (("Authorization", TOKEN),), "1s", 3, "1s",
                             (), (), ("pull",), False),
        ) if endpoints else (),
        tls=TlsMaterial(b"CA", b"CERT", b"KEY", None) if tls else None,
    )  # fmt: skip


def spec(**raw: object) -> RegistrySpec:
    return parse_spec("reg1", {"config_dir": "/srv/reg", "data_dir": "/srv/data", **raw})


def wanted(s: RegistrySpec, rendered: Rendered, image_id: str | None = "sha256:img") -> Wanted:
    return wanted_for(s, rendered, {s.image: image_id})


def matching_facts(s: RegistrySpec, rendered: Rendered, image_id: str = "sha256:img") -> HostFacts:
    """Facts of a host that already has exactly what was rendered."""
    paths: dict[str, FileState | None] = {
        d.path: FileState("dir", d.mode, None, *(d.owner or (0, 0))) for d in rendered.dirs
    }
    paths.update({f.path: FileState("file", f.mode, f.sha256, *(f.owner or (0, 0))) for f in rendered.files})
    definition = wanted(s, rendered, image_id).definitions[s.name]
    container = ContainerFacts(
        "cid", s.name, image_id, "running", "t0", True, definition, frozenset({("0.0.0.0", s.port)})
    )
    return HostFacts(paths, {s.name: UnitFacts(container, None)}, {s.image: image_id})


def with_container(facts: HostFacts, container: ContainerFacts) -> HostFacts:
    return dataclasses.replace(facts, units={container.name: UnitFacts(container, None)})


def test_config_is_valid_yaml_with_the_settings() -> None:
    s = spec(port=5443, storage={"delete": False}, debug={"port": 5001})
    rendered = render(s, materials(endpoints=True))
    config = yaml.safe_load(next(f for f in rendered.files if f.path.endswith("config.yml")).data)
    assert config["version"] == 0.1
    assert config["http"]["addr"] == ":5000"  # inside the container; the host port is published
    assert config["http"]["secret"] == SECRET
    assert config["http"]["tls"]["certificate"] == "/etc/regdeploy/certs/server.crt"
    assert config["http"]["debug"]["addr"] == ":5001"
    assert config["storage"]["delete"]["enabled"] is False
    assert config["auth"]["htpasswd"]["path"] == "/etc/regdeploy/auth/htpasswd"
    endpoint = config["notifications"]["endpoints"][0]
    assert endpoint["headers"] == {"Authorization": [TOKEN]}
    assert endpoint["ignore"]["actions"] == ["pull"]
    assert set(config["storage"]) == {"filesystem", "delete", "maintenance", "cache"}  # 2.8: one driver only
    assert config["storage"]["maintenance"] == {"readonly": {"enabled": False}}  # the purger stays on


def test_quoting_blocks_yaml_injection() -> None:
    # Validation refuses newlines in the realm; a value full of YAML syntax must still stay one string.
    s = spec()
    s = dataclasses.replace(s, auth=dataclasses.replace(s.auth, realm="a: b # c [d]"))
    config = yaml.safe_load(render(s, materials()).files[0].data)
    assert config["auth"]["htpasswd"]["realm"] == "a: b # c [d]"


def test_file_set_and_modes() -> None:
    rendered = render(spec(), materials())
    modes = {f.path: (f.mode, f.restart) for f in rendered.files}
    assert modes == {
        "/srv/reg/config.yml": (0o600, True),
        "/srv/reg/auth/htpasswd": (0o600, False),
        "/srv/reg/certs/ca.crt": (0o644, False),
        "/srv/reg/certs/server.crt": (0o644, True),
        "/srv/reg/certs/server.key": (0o600, True),
    }
    htpasswd = next(f for f in rendered.files if f.path.endswith("htpasswd")).data
    assert htpasswd == b"alice:$2b$04$abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n"


def test_plain_http_has_no_tls_files() -> None:
    rendered = render(spec(tls={"mode": "none", "insecure": True}), materials(tls=False))
    assert not any("certs" in f.path for f in rendered.files)
    assert "tls" not in yaml.safe_load(rendered.files[0].data)["http"]


def test_matching_host_gives_an_empty_plan() -> None:
    s = spec()
    rendered = render(s, materials())
    facts = matching_facts(s, rendered)
    plan = make_plan(s, rendered, facts, wanted(s, rendered))
    assert plan.changes == ()


def test_empty_host_plans_everything() -> None:
    s = spec()
    rendered = render(s, materials())
    facts = HostFacts({}, {}, {s.image: None}, network=False)
    plan = make_plan(s, rendered, facts, wanted(s, rendered, None))
    actions = [(c.kind, c.action) for c in plan.changes]
    assert actions[0] == ("image", "pull")
    assert actions[1] == ("network", "create")
    assert actions.count(("dir", "create")) == 4
    assert actions.count(("file", "create")) == 5
    assert actions[-1] == ("container", "create")


def test_htpasswd_change_is_live_and_config_change_recreates() -> None:
    s = spec()
    old = render(s, materials())
    facts = matching_facts(s, old)
    new_users = dataclasses.replace(materials(), users=(*materials().users, UserEntry("bob", "$2b$04$x")))
    new = render(s, new_users)
    plan = make_plan(s, new, facts, wanted(s, new))
    assert [(c.kind, c.action) for c in plan.changes] == [("file", "update")]
    assert "no restart" in plan.changes[0].reason

    changed = render(spec(log_level="debug"), materials())
    plan = make_plan(s, changed, facts, wanted(s, changed))
    assert [(c.kind, c.action) for c in plan.changes] == [("file", "update"), ("container", "recreate")]
    assert "reads them only at start" in plan.changes[1].reason


def test_stopped_container_is_started_and_foreign_one_adopted() -> None:
    s = spec()
    rendered = render(s, materials())
    facts = matching_facts(s, rendered)
    container = facts.container(s.name)
    assert container is not None
    stopped = with_container(facts, dataclasses.replace(container, status="exited"))
    want = wanted(s, rendered)
    assert [c.action for c in make_plan(s, rendered, stopped, want).changes] == ["start"]
    foreign = with_container(facts, dataclasses.replace(container, managed=False))
    assert [c.action for c in make_plan(s, rendered, foreign, want).changes] == ["adopt"]


def test_config_edited_on_the_host_is_rewritten_and_the_container_restarted() -> None:
    # The host's config.yml differs from the rendered one while the container's definition matches:
    # someone edited it there. Rewriting it is not enough -- the running registry may have read the
    # edited copy at its last start -- so the same container restarts; a stopped one just starts.
    s = spec()
    rendered = render(s, materials())
    facts = matching_facts(s, rendered)
    paths = dict(facts.paths)
    paths["/srv/reg/config.yml"] = FileState("file", 0o644, "0" * 64, 65532, 65532)
    drifted = dataclasses.replace(facts, paths=paths)
    want = wanted(s, rendered)
    plan = make_plan(s, rendered, drifted, want)
    assert [(c.kind, c.action) for c in plan.changes] == [("file", "update"), ("container", "restart")]
    assert plan.changes[1].reason == "to read the rewritten config.yml"
    container = facts.container(s.name)
    assert container is not None
    stopped = with_container(drifted, dataclasses.replace(container, status="exited"))
    assert [c.action for c in make_plan(s, rendered, stopped, want).changes] == ["update", "start"]
    # htpasswd is re-read live: its drift is a rewrite only.
    paths = dict(facts.paths)
    paths["/srv/reg/auth/htpasswd"] = FileState("file", 0o600, "0" * 64, 65532, 65532)
    plan = make_plan(s, rendered, dataclasses.replace(facts, paths=paths), want)
    assert [(c.kind, c.action) for c in plan.changes] == [("file", "update")]


def test_mode_drift_is_a_chmod() -> None:
    s = spec()
    rendered = render(s, materials())
    facts = matching_facts(s, rendered)
    paths = dict(facts.paths)
    key = paths["/srv/reg/certs/server.key"]
    assert key is not None
    paths["/srv/reg/certs/server.key"] = FileState("file", 0o644, key.sha256, 65532, 65532)
    plan = make_plan(
        s,
        rendered,
        dataclasses.replace(facts, paths=paths),
        wanted(s, rendered),
    )
    assert [(c.target, c.action, c.reason) for c in plan.changes] == [
        ("/srv/reg/certs/server.key", "chmod", "mode 644 -> 600")
    ]


def test_differences_name_each_aspect() -> None:
    s = spec()
    base = definition(registry_unit(s, render(s, materials())), "sha256:aaa", "d1")
    assert differences(base, base) == []
    s2 = spec(port=6000, restart="always")
    moved = definition(registry_unit(s2, render(s2, materials())), "sha256:bbb", "d2")
    reasons = differences(moved, base)
    assert "ports 0.0.0.0:5000 -> 0.0.0.0:6000" in reasons
    assert "restart policy unless-stopped -> always" in reasons
    assert any(r.startswith("image registry:2 changed (aaa -> bbb)") for r in reasons)
    assert any("config.yml or TLS files changed" in r for r in reasons)
    assert differences(base, None) == ["the container carries no regdeploy definition"]


def test_debug_port_is_published_on_loopback_only() -> None:
    s = spec(debug={"port": 5901})
    ports = definition(registry_unit(s, render(s, materials())), None, "d")["ports"]
    assert {"container": "5001/tcp", "host_ip": "127.0.0.1", "host_port": 5901} in ports


def test_registry_3_gets_otel_off() -> None:
    s3 = spec(image="registry:3")
    assert definition(registry_unit(s3, render(s3, materials())), None, "d")["env"] == {
        "OTEL_TRACES_EXPORTER": "none"
    }
    s2 = spec()
    assert definition(registry_unit(s2, render(s2, materials())), None, "d")["env"] == {}


def test_config_diff_masks_secrets() -> None:
    s = spec()
    before = render(s, materials()).files[0]
    after = render(s, materials(endpoints=True)).files[0]
    diff = file_diff(after, before.data)
    assert "+notifications:" in diff
    assert SECRET not in diff and TOKEN not in diff
    assert "********" in diff
    assert file_diff(render(s, materials()).files[4], b"old") == "(private key: not shown)"


def test_config_diff_masks_tokens_in_webhook_urls() -> None:
    s = spec()
    m = materials(endpoints=True)
    endpoint = dataclasses.replace(m.endpoints[0], url="http://ci.example/hook?token=jenkins-secret-1&job=x")
    after = render(s, dataclasses.replace(m, endpoints=(endpoint,))).files[0]
    diff = file_diff(after, render(s, materials()).files[0].data)
    assert "jenkins-secret-1" not in diff
    assert "token=********" in diff and "job=********" in diff
