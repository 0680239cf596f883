"""``auth``: the registry refuses strangers and wrong passwords, and lets a configured user in."""

from __future__ import annotations

import secrets

from regdeploy.verify.context import VerifyContext
from regdeploy.verify.model import NETWORK_ERRORS, CheckFailed, describe_error, parallel
from regdeploy.verify.registry_api import Response, challenge_params

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
    return f'Bearer realm="{realm}"'


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
