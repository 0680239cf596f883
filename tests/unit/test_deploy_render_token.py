"""Token mode rendered: the registry's auth.token, the token server's files and unit. Pure."""

from __future__ import annotations

import json

import yaml

from regdeploy.deploy.render import render
from regdeploy.deploy.units import host_units
from regdeploy.materials.host import HostMaterials, TlsMaterial, TokenMaterial, UserEntry
from regdeploy.spec.registry import RegistrySpec, parse_spec

HASH = "$2b$04$abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ01234"


def spec(**token: object) -> RegistrySpec:
    return parse_spec("reg1", {"config_dir": "/srv/reg", "data_dir": "/srv/data", "port": 5443,
                               "auth": {"mode": "token", "token": token}})  # fmt: skip


def materials(jwks: tuple[bytes, ...] = ()) -> HostMaterials:
    return HostMaterials(
        http_secret="s", users=(UserEntry("alice", HASH),), passwords={"alice": "pw"}, endpoints=(),
        tls=TlsMaterial(b"CA", b"CERT", b"KEY", None),
        token=TokenMaterial(b"SIGNING-KEY", b"SIGNING-CERT", "https://reg1:5001/token", "reg1:5443",
                            "regdeploy-token", jwks),
    )  # fmt: skip


def files(s: RegistrySpec, m: HostMaterials) -> dict[str, tuple[bytes, int, tuple[int, int] | None, bool]]:
    return {f.path: (f.data, f.mode, f.owner, f.restart) for f in render(s, m).files}


def test_the_registry_trusts_the_token_server_instead_of_htpasswd() -> None:
    rendered = files(spec(), materials())
    config = yaml.safe_load(rendered["/srv/reg/config.yml"][0])
    assert config["auth"] == {"token": {
        "realm": "https://reg1:5001/token", "service": "reg1:5443", "issuer": "regdeploy-token",
        "rootcertbundle": "/etc/regdeploy/auth/token-bundle.crt",
    }}  # fmt: skip
    assert "/srv/reg/auth/htpasswd" not in rendered
    assert rendered["/srv/reg/auth/token-bundle.crt"][0] == b"SIGNING-CERT"


def test_registry_3_is_told_the_algorithms() -> None:
    s = parse_spec("reg1", {"image": "registry:3", "auth": {"mode": "token"}})
    config = yaml.safe_load(files(s, materials())["/etc/regdeploy/config.yml"][0])
    assert config["auth"]["token"]["signingalgorithms"][0] == "ES256"
    assert "HS256" not in config["auth"]["token"]["signingalgorithms"]


def test_token_server_files_are_its_users_own_and_the_users_file_is_read_live() -> None:
    rendered = files(spec(anonymous=True), materials(jwks=(b'{"keys": []}',)))
    here = "/srv/reg/token/"
    token = {p.removeprefix(here): v for p, v in rendered.items() if p.startswith(here)}
    assert set(token) == {"token.yml", "users", "signing.key", "signing.crt", "server.crt", "server.key",
                          "oidc-0.json"}  # fmt: skip
    assert token["users"][0] == f"alice:{HASH}\n".encode()
    assert token["users"][3] is False  # re-read by the server: no restart
    assert all(v[2] == (65532, 65532) for v in token.values())
    assert token["signing.key"][1] == 0o600 and token["server.key"][1] == 0o600
    document = yaml.safe_load(token["token.yml"][0])
    assert document["service"] == "reg1:5443" and document["anonymous"] is True
    assert document["signing"] == {"key": "/etc/regdeploy-token/signing.key",
                                   "chain": "/etc/regdeploy-token/signing.crt"}  # fmt: skip
    assert document["tls"]["cert"] == "/etc/regdeploy-token/server.crt"
    assert document["acl"][0] == {"account": "*", "type": "repository", "name": "*", "actions": ["*"]}
    assert json.loads(token["oidc-0.json"][0]) == {"keys": []}


def test_the_token_unit_comes_first_and_publishes_only_its_port() -> None:
    s = spec(port=5002)
    rendered = render(s, materials())
    units = host_units(s, rendered, "regdeploy-sidecar:t")
    assert [u.name for u in units] == ["registry-token", "registry"]
    tok = units[0]
    assert [(p.container, p.host_port) for p in tok.ports] == [("5001/tcp", 5002)]
    assert tok.command == ("auth", "serve", "--config", "/etc/regdeploy-token/token.yml")
    assert "/srv/reg/token/users" not in tok.start_files and "/srv/reg/token/token.yml" in tok.start_files
    assert not any(p.startswith("/srv/reg/token/") for p in units[1].start_files)
