"""RegistrySpec validation: defaults, every bad input named by file, host and key path."""

from __future__ import annotations

import pytest

from regdeploy.errors import EXIT_INPUT, SpecError
from regdeploy.materials.secrets import SecretRef
from regdeploy.spec.registry import parse_spec


def spec_error(raw: object, origins: dict[str, str] | None = None) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec("reg1", raw, origins or {}, "hosts.yml")
    assert info.value.exit_code == EXIT_INPUT
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults() -> None:
    spec = parse_spec("reg1", None)
    assert (spec.name, spec.image, spec.version, spec.port, spec.bind) == (
        "registry",
        "registry:2",
        2,
        5000,
        "0.0.0.0",
    )
    assert spec.tls.mode == "selfsigned"
    assert [u.name for u in spec.auth.users] == ["admin"]
    assert spec.auth.users[0].password == SecretRef("generated", "users/admin")
    assert spec.http_secret.kind == "generated"
    assert spec.scheme == "https"


def test_full_example_parses() -> None:
    spec = parse_spec(
        "reg1",
        {
            "name": "reg",
            "image": "registry:3.0.0",
            "port": 5443,
            "tls": {"mode": "selfsigned", "sans": ["reg.example.com"]},
            "auth": {
                "users": [{"name": "alice", "password": {"env": "ALICE"}}, {"name": "ci"}],
                "bcrypt_cost": 5,
            },
            "notifications": {
                "endpoints": [
                    {
                        "name": "ci",
                        "url": "http://127.0.0.1:8099/hook",
                        "headers": {"Authorization": {"env": "CI_TOKEN"}, "X-Plain": "v"},
                        "timeout": "2s",
                        "threshold": 5,
                        "backoff": "1s",
                        "ignore": {"actions": ["pull"]},
                    }
                ]
            },
        },
    )
    assert spec.version == 3
    assert spec.auth.users[0].password == SecretRef("env", "ALICE")
    assert spec.auth.users[1].password == SecretRef("generated", "users/ci")
    endpoint = spec.notifications.endpoints[0]
    assert endpoint.headers == (
        ("Authorization", SecretRef("env", "CI_TOKEN")),
        ("X-Plain", SecretRef("literal", "v")),
    )
    assert endpoint.ignore_actions == ("pull",)


def test_unknown_key_suggests_and_names_the_file() -> None:
    message = spec_error({"prot": 5000}, {"registry.prot": "group_vars/registries.yml"})
    assert message.startswith("group_vars/registries.yml: host 'reg1': registry.prot: unknown key")
    assert "did you mean 'port'?" in message


def test_nested_unknown_key_uses_the_nearest_origin() -> None:
    message = spec_error({"tls": {"mdoe": "ca"}}, {"registry.tls": "host_vars/reg1.yml"})
    assert message.startswith("host_vars/reg1.yml: host 'reg1': registry.tls.mdoe")
    assert "did you mean 'mode'?" in message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"port": 70000}, "registry.port: 70000 is out of range 1..65535"),
        ({"port": "5000"}, "registry.port: must be an integer"),
        ({"port": True}, "registry.port: must be an integer"),
        (
            {"tls": {"mode": "selfsign"}},
            "registry.tls.mode: unknown value 'selfsign' (did you mean 'selfsigned'?)",
        ),
        ({"tls": {"mode": "none"}}, "tls.insecure: true"),
        ({"tls": {"mode": "ca"}}, "registry.tls.ca_cert: is required when tls.mode is 'ca'"),
        ({"tls": {"days": 900}}, "registry.tls.days: 900 is out of range 1..825"),
        ({"bind": "localhost"}, "registry.bind: not an IP address"),
        ({"config_dir": "etc/x"}, "registry.config_dir: must be an absolute path"),
        ({"name": "bad name"}, "registry.name: invalid value"),
        ({"auth": {"users": []}}, "needs at least one user"),
        ({"auth": {"users": [{"name": "a:b"}]}}, "registry.auth.users[0].name: invalid value 'a:b'"),
        ({"auth": {"users": [{"name": "a b"}]}}, "registry.auth.users[0].name"),
        (
            {"auth": {"users": [{"name": "al"}, {"name": "al"}]}},
            "registry.auth.users[1].name: duplicate user 'al'",
        ),
        ({"auth": {"users": [{"name": "al", "password": "hunter2"}]}}, "not inline in the inventory"),
        (
            {"auth": {"users": [{"name": "al", "password": {"vault": "x"}}]}},
            "must be {env: VARIABLE} or {file: PATH}",
        ),
        ({"auth": {"bcrypt_cost": 3}}, "registry.auth.bcrypt_cost: 3 is out of range 4..14"),
        (
            {"notifications": {"endpoints": [{"name": "x", "url": "ftp://a"}]}},
            "expected an http:// or https:// URL",
        ),
        (
            {"notifications": {"endpoints": [{"name": "x", "url": "http://a", "timeout": "2 sec"}]}},
            "registry.notifications.endpoints[0].timeout: invalid duration '2 sec'",
        ),
        (
            {
                "notifications": {
                    "endpoints": [{"name": "x", "url": "http://a", "ignore": {"actions": ["pul"]}}]
                }
            },
            "did you mean 'pull'?",
        ),
        ({"image": "registry:latest-ish", "version": 4}, "registry.version: 4 is out of range 2..3"),
        ({"image": "registry:7"}, "set registry.version to 2 or 3"),
        ({"debug": {"port": 5000}}, "registry.debug.port: must differ from registry.port"),
        ("not a mapping", "registry: must be a mapping, got string"),
    ],
)
def test_bad_values_are_refused_with_the_key_path(raw: object, fragment: str) -> None:
    assert fragment in spec_error(raw)


def test_version_from_tag_and_override() -> None:
    assert parse_spec("h", {"image": "registry:3"}).version == 3
    assert parse_spec("h", {"image": "example.com:5000/mirror/registry:2.8.3"}).version == 2
    assert parse_spec("h", {"image": "registry:latest"}).version == 2
    assert parse_spec("h", {"image": "myreg/distribution:edge", "version": 3}).version == 3
