"""``auth``: the registry refuses strangers and wrong passwords, and lets a configured user in."""

from __future__ import annotations

import secrets

from regdeploy.verify.context import VerifyContext
from regdeploy.verify.model import NETWORK_ERRORS, CheckFailed, describe_error, parallel
from regdeploy.verify.registry_api import Response

API_VERSION_HEADER = "docker-distribution-api-version"
API_VERSION = "registry/2.0"


def check_auth(ctx: VerifyContext) -> str:
    t = ctx.target
    # A random wrong password: never derived from the real one, so no part of it can leak.
    wrong = "wrong-" + secrets.token_urlsafe(12)
    try:
        anonymous, refused, good = parallel(
            lambda: t.client(anonymous=True).request("GET", "/v2/", auth=False),
            lambda: t.client(password=wrong).request("GET", "/v2/"),
            lambda: t.client().request("GET", "/v2/"),
        )
    except NETWORK_ERRORS as exc:
        raise CheckFailed(f"GET /v2/: {describe_error(exc)}") from None
    realm = basic_realm(anonymous)
    if anonymous.status != 401:
        raise CheckFailed(f"GET /v2/ without credentials answered {anonymous.status}, expected 401")
    if realm is None:
        challenge = anonymous.headers.get("www-authenticate", "none")
        raise CheckFailed(f"GET /v2/ without credentials: 401 without a Basic challenge ({challenge[:80]})")
    if refused.status != 401:
        raise CheckFailed(f"a wrong password for {t.user!r} answered {refused.status}, expected 401")
    if good.status == 401:
        raise CheckFailed(
            f"user {t.user!r} was refused (401): the registry's htpasswd does not hold the inventory's "
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
        f'anonymous 401 (Basic realm="{realm}"), wrong password 401, '
        f"{t.user} 200 (Docker-Distribution-API-Version {version})"
    )


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
