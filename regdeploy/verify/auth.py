"""``auth``: the registry refuses strangers and wrong passwords, and lets a configured user in."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from regdeploy.verify.context import VerifyContext
from regdeploy.verify.model import NETWORK_ERRORS, CheckFailed, describe_error, parallel
from regdeploy.verify.registry_api import Response, challenge_params

if TYPE_CHECKING:
    from regdeploy.tokens.acl import AclEntry

API_VERSION_HEADER = "docker-distribution-api-version"
API_VERSION = "registry/2.0"


def check_auth(ctx: VerifyContext) -> str:
    t = ctx.target
    # A random wrong password: never derived from the real one, so no part of it can leak.
    wrong = "wrong-" + secrets.token_urlsafe(12)
    stranger = t.client(password=wrong)
    try:
        anonymous, refused, good = parallel(
            lambda: t.client(anonymous=True).request("GET", "/v2/", auth=False),
            lambda: stranger.request("GET", "/v2/"),
            lambda: t.client().request("GET", "/v2/"),
        )
    except NETWORK_ERRORS as exc:
        raise CheckFailed(f"GET /v2/: {describe_error(exc)}") from None
    if anonymous.status != 401:
        raise CheckFailed(f"GET /v2/ without credentials answered {anonymous.status}, expected 401")
    if t.token_realm is not None:
        challenge = _token_challenge(ctx, anonymous, stranger.token_status)
    else:
        realm = basic_realm(anonymous)
        if realm is None:
            found = anonymous.headers.get("www-authenticate", "none")
            raise CheckFailed(f"GET /v2/ without credentials: 401 without a Basic challenge ({found[:80]})")
        challenge = f'Basic realm="{realm}"'
    if refused.status != 401:
        raise CheckFailed(f"a wrong password for {t.user!r} answered {refused.status}, expected 401")
    if good.status == 401:
        holder = "token server's users file" if t.token_realm else "registry's htpasswd"
        raise CheckFailed(
            f"user {t.user!r} was refused (401): the {holder} does not hold the inventory's "
            "password for this user (changed since the last regdeploy up?)"
        )
    if good.status != 200:
        raise CheckFailed(f"user {t.user!r}: GET /v2/ answered {good.status}, expected 200")
    version = good.headers.get(API_VERSION_HEADER)
    if version != API_VERSION:
        raise CheckFailed(
            f"GET /v2/: Docker-Distribution-API-Version is {version!r}, expected {API_VERSION!r}"
        )
    return (
        f"anonymous 401 ({challenge}), wrong password 401, "
        f"{t.user} 200 (Docker-Distribution-API-Version {version})"
    )


def _token_challenge(ctx: VerifyContext, anonymous: Response, wrong_status: int | None) -> str:
    """Token auth: the challenge sends clients to the token server this inventory names, and that
    server itself refuses a wrong password (rather than issuing a token that grants nothing)."""
    t = ctx.target
    realm = t.token_realm or ""
    scheme, params = challenge_params(anonymous.headers.get("www-authenticate", ""))
    if scheme != "bearer":
        found = anonymous.headers.get("www-authenticate", "none")[:80]
        raise CheckFailed(f"GET /v2/ without credentials: 401 without a Bearer challenge ({found})")
    if params.get("realm") != realm or params.get("service") != t.token_service:
        raise CheckFailed(
            f"the Bearer challenge names realm {params.get('realm')!r} and service "
            f"{params.get('service')!r}, expected {realm!r} and {t.token_service!r}"
        )
    if wrong_status != 401:  # the wrong password's own token request, made by the request above
        raise CheckFailed(f"token server {realm}: a wrong password answered {wrong_status}, expected 401")
    said = [f'Bearer realm="{realm}"']
    token = ctx.job.spec.auth.builtin_token
    if token is not None:  # what the inventory's ACL says, as the built-in server must apply it
        said += [_anonymous_as_configured(ctx, realm, token.anonymous), _denial(ctx, realm, token.acl)]
    return ", ".join(s for s in said if s)


def _token_access(resp: Response) -> list[dict[str, Any]]:
    """The ``access`` claim of a token answer (read, not verified: the registry verifies)."""
    import base64
    import json

    token = str(resp.json().get("token", ""))
    payload = token.split(".")[1] if token.count(".") == 2 else ""
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)) or b"{}")
    return [a for a in claims.get("access", []) if isinstance(a, dict)]


def _anonymous_as_configured(ctx: VerifyContext, realm: str, anonymous: bool) -> str:
    t = ctx.target
    try:
        resp = t.client(anonymous=True).token_response(realm, t.token_service or "", "")
    except NETWORK_ERRORS as exc:
        raise CheckFailed(f"token server {realm}: {describe_error(exc)}") from None
    wanted = 200 if anonymous else 401
    if resp.status != wanted:
        raise CheckFailed(
            f"token server {realm}: a request without credentials answered {resp.status}, expected {wanted} "
            f"(auth.token.anonymous is {str(anonymous).lower()})"
        )
    return "anonymous token" if anonymous else "anonymous refused"


def _denial(ctx: VerifyContext, realm: str, acl: Sequence[AclEntry]) -> str:
    """A scope the ACL denies the verify user is denied by the token server: its token grants
    nothing for it. Skipped (said) when the ACL lets the user push everywhere."""
    from regdeploy.tokens.acl import authorize
    from regdeploy.tokens.scope import Scope

    t = ctx.target
    name = f"regdeploy-verify-denied-{ctx.nonce}"
    (wanted,) = authorize(acl, t.user, [Scope("repository", name, ("push",))])
    if wanted.actions:
        return ""  # nothing to deny: the ACL lets this user push everywhere
    try:
        resp = t.client().token_response(realm, t.token_service or "", f"repository:{name}:push")
    except NETWORK_ERRORS as exc:
        raise CheckFailed(f"token server {realm}: {describe_error(exc)}") from None
    granted = [a for a in _token_access(resp) if a.get("name") == name and "push" in (a.get("actions") or [])]
    if resp.status != 200 or granted:
        raise CheckFailed(f"token server {realm}: push to {name} is not in {t.user}'s ACL but was granted")
    return f"push outside {t.user}'s ACL denied"


def basic_realm(resp: Response) -> str | None:
    challenge = resp.headers.get("www-authenticate", "")
    scheme, _, params = challenge.partition(" ")
    if scheme.lower() != "basic":
        return None
    for part in params.split(","):
        key, _, value = part.strip().partition("=")
        if key.lower() == "realm":
            return value.strip('"')
    return ""
