"""The TLS part of the spec, the letsencrypt rendering, host SANs and the plan's renewal reason."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from regdeploy.deploy.definition import definition
from regdeploy.deploy.facts import ContainerFacts, HostFacts, UnitFacts
from regdeploy.deploy.files import Rendered
from regdeploy.deploy.plan import make_plan, wanted_for
from regdeploy.deploy.render import render
from regdeploy.deploy.units import registry_unit
from regdeploy.errors import SpecError
from regdeploy.materials.host import HostMaterials, TlsMaterial, UserEntry, host_sans
from regdeploy.spec.registry import RegistrySpec, parse_spec
from regdeploy.transport.base import FileState

LE = {"email": "ops@example.com", "hosts": ["reg.example.com"]}


def tls_error(tls: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec("reg1", {"tls": tls}, {}, "hosts.yml")
    return str(info.value)


@pytest.mark.parametrize(
    ("tls", "fragment"),
    [
        ({"mode": "selfsigned", "cert": {"file": "/x"}},
         "registry.tls.cert: is only used when tls.mode is 'provided' (mode is 'selfsigned')"),
        ({"mode": "provided", "cert": {"file": "/c"}, "key": {"file": "/k"}, "ca_key": {"file": "/x"}},
         "registry.tls.ca_key: is only used when tls.mode is 'ca'"),
        ({"sans": ["bad_host!"]}, "registry.tls.sans[0]: SAN 'bad_host!' is not a valid host name"),
        ({"sans": ["10.0.0"]}, "registry.tls.sans[0]"),
        ({"external_url": "http://reg.example.com"}, "registry.tls.external_url: scheme must be https"),
        ({"external_url": "https://reg.example.com/v2/"}, "expected https://HOST[:PORT]"),
        ({"external_url": "reg.example.com:99999"}, "invalid port"),
        ({"mode": "letsencrypt"}, "registry.tls.letsencrypt: is required when tls.mode is 'letsencrypt'"),
        ({"mode": "letsencrypt", "letsencrypt": {"hosts": ["reg.example.com"]}},
         "registry.tls.letsencrypt.email: must be a non-empty string"),
        ({"mode": "letsencrypt", "letsencrypt": {"email": "ops@example.com", "hosts": ["10.0.0.5"]}},
         "registry.tls.letsencrypt.hosts[0]: '10.0.0.5' is not a public DNS name"),
        ({"mode": "letsencrypt", "letsencrypt": {**LE, "cachefile": "/etc/le.json"}},
         "must be a path relative to data_dir"),
        ({"mode": "letsencrypt", "letsencrypt": LE, "external_url": "https://other.example.com"},
         "registry.tls.letsencrypt.hosts: must include 'other.example.com'"),
        ({"mode": "selfsigned", "letsencrypt": LE}, "registry.tls.letsencrypt: is only used when"),
    ],
)  # fmt: skip
def test_bad_tls_settings_are_named(tls: dict[str, Any], fragment: str) -> None:
    message = tls_error(tls)
    assert message.startswith("hosts.yml: host 'reg1': registry.tls")
    assert fragment in message


def test_new_modes_and_keys_parse() -> None:
    csr = parse_spec("reg1", {"tls": {"mode": "csr", "ca_cert": {"file": "/org/ca.pem"}}}).tls
    assert csr.mode == "csr" and csr.ca_cert is not None
    le = {**LE, "hosts": ["Reg.Example.com"]}
    acme = parse_spec("reg1", {"tls": {"mode": "letsencrypt", "letsencrypt": le,
                                       "external_url": "reg.example.com"}}).tls  # fmt: skip
    assert acme.letsencrypt is not None
    assert acme.letsencrypt.hosts == ("reg.example.com",) and acme.letsencrypt.cachefile == "letsencrypt.json"
    assert acme.external_url == "https://reg.example.com"
    url = parse_spec("reg1", {"tls": {"external_url": "https://Reg.Example.com:5443/"}}).tls.external_url
    assert url == "https://reg.example.com:5443"


def test_host_sans_include_external_url_and_normalise() -> None:
    spec = parse_spec("reg1", {"tls": {"external_url": "https://pull.example.com:443",
                                       "sans": ["REG1", "[::1]", "pull.example.com."]}})  # fmt: skip
    sans = host_sans("reg1", {"ansible_host": "10.0.0.7"}, spec)
    assert sans == ["reg1", "10.0.0.7", "pull.example.com", "::1"]


def materials(tls: TlsMaterial | None) -> HostMaterials:
    return HostMaterials("secret", (UserEntry("alice", "$2b$04$" + "a" * 53),), {"alice": "pw"}, (), tls)


def test_letsencrypt_renders_the_registrys_acme_block() -> None:
    spec = parse_spec("reg1", {"port": 443, "tls": {"mode": "letsencrypt", "letsencrypt": {**LE,
                               "cachefile": "acme/cache.json"}}})  # fmt: skip
    rendered = render(spec, materials(None))
    config = yaml.safe_load(rendered.files[0].data)
    assert config["http"]["tls"] == {
        "letsencrypt": {"cachefile": "/var/lib/registry/acme/cache.json", "email": "ops@example.com",
                        "hosts": ["reg.example.com"]},
        "minimumtls": "tls1.2",
    }  # fmt: skip
    assert not any("/certs/" in f.path for f in rendered.files)  # the registry holds no cert files


def facts_for(spec: RegistrySpec, rendered: Rendered, changed: str) -> HostFacts:
    """A host with everything rendered in place, except ``changed`` whose content differs."""
    paths: dict[str, FileState | None] = {d.path: FileState("dir", d.mode, None, *(d.owner or (0, 0)))
                                          for d in rendered.dirs}  # fmt: skip
    paths.update({f.path: FileState("file", f.mode, "0" * 64 if f.path.endswith(changed) else f.sha256,
                                    *(f.owner or (0, 0)))
                  for f in rendered.files})  # fmt: skip
    old = definition(registry_unit(spec, rendered), "sha256:img", "old-digest")
    container = ContainerFacts("id", spec.name, "sha256:img", "running", "t", True, old,
                               frozenset({("0.0.0.0", spec.port)}))  # fmt: skip
    return HostFacts(paths, {spec.name: UnitFacts(container, None)}, {spec.image: "sha256:img"})


def test_plan_says_why_the_certificate_changed() -> None:
    spec = parse_spec("reg1", {"config_dir": "/srv/reg"})
    tls = TlsMaterial(b"CA", b"CERT", b"KEY", "certificate expires in 3 days (renew_before 30)", issued=True)
    rendered = render(spec, materials(tls))
    wanted = wanted_for(spec, rendered, {spec.image: "sha256:img"})
    plan = make_plan(spec, rendered, facts_for(spec, rendered, "server.crt"), wanted,
                     tls_reason=tls.reason)  # fmt: skip
    reasons = {c.resource: c.reason for c in plan.changes}
    assert reasons["file:/srv/reg/certs/server.crt"] == (
        "new certificate: certificate expires in 3 days (renew_before 30) (the registry restarts to read it)"
    )
    assert reasons["container:registry"].endswith("; new certificate: certificate expires in 3 days "
                                                  "(renew_before 30)")  # fmt: skip
    # Other files keep the generic reason; without a reason the certificate does too.
    plain = make_plan(spec, rendered, facts_for(spec, rendered, "server.crt"), wanted)
    assert {c.reason for c in plain.changes if c.kind == "file"} == {
        "content changed (the registry restarts to read it)"
    }
