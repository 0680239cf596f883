"""``auth.token``: token authentication, by regdeploy's own token server or an external one.

The registry then trusts only tokens signed by the token server; users, an ordered ACL (first match
wins, default deny: cesanta/docker_auth's model) and OIDC identities (CI jobs' JWTs as passwords)
are the token server's business. ``server: external`` points the registry at a token server
regdeploy does not run (Harbor, GitLab, docker_auth, Keycloak).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regdeploy.materials.secrets import SecretRef, secret_ref
from regdeploy.spec import validate as v
from regdeploy.spec.run import SIDECAR_RUN, RunSpec, parse_run
from regdeploy.tokens.acl import AclEntry

AUTH_MODES = ("htpasswd", "token")
TOKEN_SERVERS = ("builtin", "external")
REPOSITORY_ACTIONS = ("pull", "push", "delete", "*")
ACL_TYPES = ("repository", "registry")
_VARIABLE_RE = re.compile(r"\$\{([^}]*)\}")
_CLAIM_RE = r"claims\.[A-Za-z_][A-Za-z0-9_.-]*"


# No acl in the inventory: every user may do everything, as with htpasswd.
DEFAULT_ACL = (
    AclEntry("*", "*", ("*",)),
    AclEntry("*", "catalog", ("*",), "registry"),
)


@dataclass(frozen=True)
class OidcSpec:
    issuer: str  # https URL, the tokens' iss
    jwks: SecretRef  # a JWKS document ({file: ...})
    audience: str
    account: str  # template: `${claims.NAME}` parts
    claims: tuple[tuple[str, str], ...] = ()  # required values, exact or glob


@dataclass(frozen=True)
class TokenSpec:
    server: str = "builtin"
    expiry: int = 300  # seconds
    port: int = 5001  # builtin: the token server's published port
    anonymous: bool = False
    acl: tuple[AclEntry, ...] = DEFAULT_ACL
    oidc: tuple[OidcSpec, ...] = ()
    run: RunSpec = SIDECAR_RUN
    # external: the server regdeploy points the registry at
    realm: str | None = None
    service: str | None = None
    issuer: str | None = None
    rootcertbundle: SecretRef | None = None


_BUILTIN_KEYS = ("server", "expiry", "port", "anonymous", "acl", "oidc", "run")
_EXTERNAL_KEYS = ("server", "realm", "service", "issuer", "rootcertbundle")


def parse_token(raw: Any, where: v.Where) -> TokenSpec:
    if not isinstance(raw, Mapping):
        raw = v.mapping(raw, where, _BUILTIN_KEYS)
    server = v.choice(raw.get("server", "builtin"), where.child("server"), TOKEN_SERVERS)
    if server == "external":
        return _external(raw, where)
    data = v.mapping(raw, where, _BUILTIN_KEYS)
    expiry = v.duration_seconds(v.duration(data.get("expiry", "5m"), where.child("expiry")))
    if not 60 <= expiry <= 86400:
        where.child("expiry").fail("must be between 1m and 24h (clients raise anything below 60 s)")
    acl = TokenSpec.acl
    if data.get("acl") is not None:
        items = v.sequence(data["acl"], where.child("acl"))
        acl = tuple(_acl_entry(item, where.child("acl").child(i)) for i, item in enumerate(items))
    oidc = tuple(
        _oidc(item, where.child("oidc").child(i))
        for i, item in enumerate(v.sequence(data.get("oidc"), where.child("oidc")))
    )
    return TokenSpec(
        server=server,
        expiry=int(expiry),
        port=v.port(data.get("port", TokenSpec.port), where.child("port")),
        anonymous=v.boolean(data.get("anonymous", False), where.child("anonymous")),
        acl=acl,
        oidc=oidc,
        run=parse_run(data.get("run"), where.child("run"), SIDECAR_RUN),
    )


def _external(raw: Mapping[str, Any], where: v.Where) -> TokenSpec:
    data = v.mapping(raw, where, _EXTERNAL_KEYS)
    for key in ("realm", "service", "issuer", "rootcertbundle"):
        if data.get(key) is None:
            where.child(key).fail("is required with server: external (the registry checks tokens with it)")
    realm = v.string(data["realm"], where.child("realm"), r"https?://\S+", "expected the token server's URL")
    return TokenSpec(
        server="external",
        realm=realm,
        service=v.string(data["service"], where.child("service")),
        issuer=v.string(data["issuer"], where.child("issuer")),
        rootcertbundle=secret_ref(data["rootcertbundle"], where.child("rootcertbundle"), None),
    )


def _acl_entry(raw: Any, where: v.Where) -> AclEntry:
    data = v.mapping(raw, where, ("account", "type", "name", "actions"))
    if data.get("name") is None:
        where.child("name").fail("is required: the repositories (glob) the entry is about")
    account = data.get("account", "*")
    if not isinstance(account, str):
        where.child("account").fail(f"must be a string, got {v.type_name(account)}")
    kind = v.choice(data.get("type", "repository"), where.child("type"), ACL_TYPES)
    name = v.string(data["name"], where.child("name"))
    for variable in _VARIABLE_RE.findall(name):
        if variable != "account":
            where.child("name").fail(f"unknown variable ${{{variable}}}: only ${{account}} is known here")
    actions = v.string_list(data.get("actions"), where.child("actions"))
    if not actions:
        where.child("actions").fail("needs at least one action: pull, push, delete or *")
    allowed = REPOSITORY_ACTIONS if kind == "repository" else ("*",)
    for i, action in enumerate(actions):
        v.choice(action, where.child("actions").child(i), allowed)
    return AclEntry(account=account, name=name, actions=actions, type=kind)


def _oidc(raw: Any, where: v.Where) -> OidcSpec:
    data = v.mapping(raw, where, ("issuer", "jwks", "audience", "account", "claims"))
    issuer = v.string(data.get("issuer"), where.child("issuer"))
    if not issuer.startswith("https://"):
        where.child("issuer").fail(f"must be an https:// URL (OIDC issuers are), got {issuer!r}")
    if data.get("jwks") is None:
        where.child("jwks").fail("is required: {file: PATH} of the issuer's JWKS document")
    jwks = secret_ref(data["jwks"], where.child("jwks"), None)
    if jwks.kind != "file":
        where.child("jwks").fail("must be {file: PATH}: the issuer's JWKS document")
    account = v.string(data.get("account"), where.child("account"))
    variables = _VARIABLE_RE.findall(account)
    for variable in variables:
        if not re.fullmatch(_CLAIM_RE, variable):
            where.child("account").fail(f"unknown variable ${{{variable}}}: use ${{claims.NAME}}")
    if not variables:
        where.child("account").fail("must name the account from the token's claims: ${claims.repository}")
    claims_raw = v.mapping(data.get("claims"), where.child("claims"), _AnyKey())
    claims = tuple(
        (str(k), v.string(value, where.child("claims").child(str(k)))) for k, value in claims_raw.items()
    )
    return OidcSpec(
        issuer=issuer,  # exactly as the tokens' iss says it (Auth0's ends in "/")
        jwks=jwks,
        audience=v.string(data.get("audience"), where.child("audience")),
        account=account,
        claims=claims,
    )


class _AnyKey(tuple[str, ...]):
    """A 'known keys' list that accepts every key (claim names are the issuer's)."""

    def __contains__(self, item: object) -> bool:
        return True
