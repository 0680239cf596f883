"""CI identities: a password that is a JWT from a configured issuer, checked against its JWKS.

A GitHub Actions job (or any OIDC issuer's workload) gets a short-lived signed JWT; sent as the
password, it proves which repository and workflow is asking with no stored secret. The username
is ignored (CI tools send anything). Only RS256 and ES256 are accepted: the algorithm comes from
the token's header, so the list must exclude ``none`` and HMAC, which a forger would pick.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from regdeploy.errors import InputError
from regdeploy.tokens.watch import Stamp, stamp

ALGORITHMS = ("RS256", "ES256")
LEEWAY_SECONDS = 60  # clock skew between the issuer, this server and the CI runner
# NAME as the inventory allows it; a dotted NAME is a flat claim of that name if there is one, else a
# path into nested objects.
CLAIM_VARIABLE_RE = re.compile(r"\$\{claims\.([A-Za-z_][A-Za-z0-9_.-]*)\}")


class OidcRefused(Exception):
    """Why a JWT was refused: a fixed phrase, safe to log (never the token or a claim value)."""


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    jwks: Path
    audience: str
    account: str  # template: ${claims.NAME} filled from the verified token
    claims: tuple[tuple[str, str], ...] = ()  # required values: exact or fnmatch glob


def _log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` of something shaped like a JWT, unverified (only to pick the issuer); else None."""
    if token.count(".") != 2:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


def read_jwks(path: Path) -> list[jwt.PyJWK]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: JWKS file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise InputError(f"{path}: not a JWKS document (expected an object with 'keys')")
        keys = jwt.PyJWKSet.from_dict(document).keys
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON: {exc.msg} at line {exc.lineno}") from None
    except jwt.PyJWTError as exc:
        raise InputError(f"{path}: not a usable JWKS document: {exc}") from None
    usable = [k for k in keys if _signing_key(k)]
    if not usable:
        raise InputError(f"{path}: no RSA or EC P-256 public signing key in the JWKS")
    return usable


def _signing_key(key: jwt.PyJWK) -> bool:
    return _fits(key, "RS256") or _fits(key, "ES256")


def _fits(key: jwt.PyJWK, algorithm: str) -> bool:
    # The key type decides the algorithm, never the token: an RSA key must not verify "ES256" and
    # a private key in a JWKS file (a mistake) is not used at all.
    if key.public_key_use not in (None, "sig"):
        return False
    if algorithm == "RS256":
        return isinstance(key.key, rsa.RSAPublicKey)
    return isinstance(key.key, ec.EllipticCurvePublicKey) and isinstance(key.key.curve, ec.SECP256R1)


class _Jwks:
    """One provider's key set, re-read when its file is replaced (the issuer rotated keys)."""

    def __init__(self, path: Path, log: Callable[[str], None]) -> None:
        self.path = path
        self._log = log
        self._lock = threading.Lock()
        self._stamp: Stamp | None = stamp(path)
        self._keys = read_jwks(path)

    def keys(self) -> list[jwt.PyJWK]:
        now = stamp(self.path)
        with self._lock:
            if now != self._stamp:
                self._stamp = now
                try:
                    self._keys = read_jwks(self.path)
                except InputError as exc:
                    self._keys = []  # fail closed, as for the user file
                    self._log(f"token server: {exc}; its OIDC tokens are refused until it is fixed")
            return self._keys


def _claim_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)  # true, 42: the JSON spelling a policy author would write
    return None


def claim(claims: Mapping[str, Any], name: str) -> Any:
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def fill_account(template: str, claims: Mapping[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        value = _claim_text(claim(claims, match.group(1)))
        if not value:
            raise OidcRefused(f"claim {match.group(1)} missing for the account")
        return value

    account = CLAIM_VARIABLE_RE.sub(one, template)
    if not account:
        raise OidcRefused("empty account")
    return account


def _pick_key(keys: Sequence[jwt.PyJWK], header: Mapping[str, Any], algorithm: str) -> jwt.PyJWK:
    kid = header.get("kid")
    candidates = [k for k in keys if _fits(k, algorithm) and (kid is None or k.key_id == kid)]
    if kid is None and len(candidates) > 1:
        raise OidcRefused("no kid and several keys")
    if not candidates:
        raise OidcRefused("unknown signing key")
    return candidates[0]


_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.MissingRequiredClaimError, "missing exp, iss or aud"),
)


def _verify_one(provider: OidcProvider, keys: Sequence[jwt.PyJWK], token: str) -> str:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise OidcRefused("malformed") from None
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise OidcRefused("algorithm not allowed (RS256, ES256 only)")
    key = _pick_key(keys, header, algorithm)
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[algorithm],
            audience=provider.audience,
            issuer=provider.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.PyJWTError as exc:
        reason = next((text for kind, text in _REASONS if isinstance(exc, kind)), "invalid token")
        raise OidcRefused(reason) from None
    for name, pattern in provider.claims:
        value = _claim_text(claim(claims, name))
        if value is None:
            raise OidcRefused(f"claim {name} missing")
        if not fnmatchcase(value, pattern):
            raise OidcRefused(f"claim {name} does not match")
    return fill_account(provider.account, claims)


class OidcVerifier:
    def __init__(
        self, providers: Sequence[OidcProvider], log: Callable[[str], None] = _log_to_stderr
    ) -> None:
        self.providers = tuple(providers)
        # One key set per file: several entries for one issuer (say, different claim rules mapping
        # to different accounts) share it.
        self._jwks = {p.jwks: _Jwks(p.jwks, log) for p in self.providers}

    def handles(self, password: str) -> bool:
        """Whether *password* is a JWT from a configured issuer (then it is never a user password)."""
        if not self.providers:
            return False
        issuer = unverified_issuer(password)
        return issuer is not None and any(p.issuer == issuer for p in self.providers)

    def verify(self, token: str) -> str:
        """The account the token maps to; the first entry for its issuer that accepts it wins."""
        issuer = unverified_issuer(token)
        first: OidcRefused | None = None
        for provider in self.providers:
            if provider.issuer != issuer:
                continue
            try:
                return _verify_one(provider, self._jwks[provider.jwks].keys(), token)
            except OidcRefused as exc:
                first = first or exc
        raise first or OidcRefused("unknown issuer")
