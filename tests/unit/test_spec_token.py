"""auth.mode / auth.token in the inventory: parsed, defaulted, and refused with one line naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from regdeploy.errors import InputError
from regdeploy.spec.registry import parse_spec
from regdeploy.spec.token import DEFAULT_ACL, AclEntry


def token(**raw: Any) -> dict[str, Any]:
    return {"auth": {"mode": "token", "token": raw}}


def test_defaults_are_htpasswd_and_a_builtin_server_that_allows_every_user_everything() -> None:
    assert parse_spec("h", {}).auth.mode == "htpasswd"
    spec = parse_spec("h", {"auth": {"mode": "token"}})
    assert spec.auth.token is not None and spec.auth.builtin_token is spec.auth.token
    assert (spec.auth.token.port, spec.auth.token.expiry, spec.auth.token.anonymous) == (5001, 300, False)
    assert spec.auth.token.acl == DEFAULT_ACL


def test_acl_and_oidc_are_read_in_order() -> None:
    spec = parse_spec("h", token(
        expiry="10m", anonymous=True,
        acl=[{"account": "", "name": "public/*", "actions": ["pull"]},
             {"account": "*", "name": "${account}/*", "actions": ["pull", "push"]},
             {"account": "*", "type": "registry", "name": "catalog", "actions": ["*"]}],
        oidc=[{"issuer": "https://tenant.auth0.example/", "jwks": {"file": "/j.json"},
               "audience": "reg", "account": "${claims.repository}", "claims": {"repository_owner": "acme"}}],
    ))  # fmt: skip
    t = spec.auth.token
    assert t is not None and t.expiry == 600 and t.anonymous
    assert t.acl[0] == AclEntry("", "public/*", ("pull",))
    assert t.acl[2].type == "registry"
    assert t.oidc[0].issuer == "https://tenant.auth0.example/"  # as the tokens' iss says it
    assert t.oidc[0].claims == (("repository_owner", "acme"),)


def test_external_server() -> None:
    external = token(server="external", realm="https://auth.example.com/token", service="reg",
                     issuer="auth", rootcertbundle={"file": "/b.pem"})  # fmt: skip
    spec = parse_spec("h", external)
    assert spec.auth.builtin_token is None
    assert spec.auth.token is not None and spec.auth.token.realm == "https://auth.example.com/token"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (token(acl=[{"name": "*", "actions": ["pul"]}]),
         "registry.auth.token.acl[0].actions[0]: unknown value 'pul' (did you mean 'pull'?)"),
        (token(acl=[{"account": "a", "actions": ["pull"]}]), "registry.auth.token.acl[0].name: is required"),
        (token(acl=[{"name": "${user}/*", "actions": ["pull"]}]),
         "registry.auth.token.acl[0].name: unknown variable ${user}"),
        (token(oidc=[{"issuer": "http://issuer", "jwks": {"file": "/j"}, "audience": "a",
                      "account": "${claims.sub}"}]),
         "registry.auth.token.oidc[0].issuer: must be an https:// URL"),
        (token(oidc=[{"issuer": "https://issuer", "jwks": {"file": "/j"}, "audience": "a",
                      "account": "${claim.sub}"}]),
         "registry.auth.token.oidc[0].account: unknown variable ${claim.sub}"),
        (token(server="external", realm="https://a/t", service="s", issuer="i"),
         "registry.auth.token.rootcertbundle: is required with server: external"),
        (token(port=5000), "registry.auth.token.port: 5000 is registry.port already"),
        ({"auth": {"token": {}}}, "registry.auth.token: is only used when auth.mode is 'token'"),
        (token(expiry="10s"), "registry.auth.token.expiry: must be between 1m and 24h"),
        ({"auth": {"mode": "tokens"}}, "registry.auth.mode: unknown value 'tokens'"),
    ],
)  # fmt: skip
def test_bad_input_names_the_key(raw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_spec("h", raw, {}, "inv.yml")
    assert fragment in str(refused.value)
    assert str(refused.value).startswith("inv.yml: host 'h': ")
    assert "\n" not in str(refused.value)
