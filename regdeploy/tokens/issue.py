"""Signing: the EC P-256 key and its certificate chain, and the ES256 tokens made with them.

Each token carries both ``x5c`` (the chain, leaf first) and the libtrust ``kid``: distribution 2.8
finds the key by either; 3.x dropped the libtrust kid and uses ``x5c``, checking the chain against
its ``rootcertbundle``. Sending both keeps one token valid for every registry version.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from regdeploy.errors import InputError
from regdeploy.pki.keys import spki_der
from regdeploy.tokens.scope import Scope

ALGORITHM = "ES256"
# The registry allows 60 s of skew; a second of backdating covers a token used within the second it
# was made by a registry whose clock rounds the other way.
NOT_BEFORE_BACKDATE = 1


@dataclass(frozen=True)
class Signing:
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]  # leaf first
    kid: str
    x5c: tuple[str, ...]  # base64 DER of each certificate, as the JWS header carries them

    @property
    def leaf_expires(self) -> datetime:
        return self.chain[0].not_valid_after_utc


def libtrust_kid(public_key: ec.EllipticCurvePublicKey) -> str:
    """docker/libtrust's key ID: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32,
    in 12 groups of 4 characters joined by ``:`` (what distribution 2.x matches a ``kid`` against)."""
    text = base64.b32encode(
        hashlib.sha256(spki_der(public_key)).digest()[:30]
    ).decode()  # 30 bytes: 48 chars, no '='
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror}") from None


def load_signing(key_path: Path, chain_path: Path, now: datetime | None = None) -> Signing:
    """Load and cross-check the key and chain: a mismatch would make every token fail at the registry,
    so it is refused here, at start, with the file named."""
    try:
        key = serialization.load_pem_private_key(_read(key_path, "signing key"), password=None)
    except (ValueError, TypeError):
        raise InputError(f"{key_path}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError(f"{key_path}: the signing key must be EC P-256 (ES256)")
    try:
        chain = tuple(x509.load_pem_x509_certificates(_read(chain_path, "certificate chain")))
    except ValueError:
        raise InputError(f"{chain_path}: not a PEM certificate chain") from None
    if spki_der(chain[0].public_key()) != spki_der(key.public_key()):
        raise InputError(f"{chain_path}: the first certificate is not the signing key's ({key_path})")
    moment = now or datetime.now(UTC)
    for cert in chain:
        if cert.not_valid_after_utc <= moment:
            subject = cert.subject.rfc4514_string() or "(empty subject)"
            raise InputError(
                f"{chain_path}: certificate {subject} expired on {cert.not_valid_after_utc:%Y-%m-%d}"
            )
    x5c = tuple(base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain)
    return Signing(key, chain, libtrust_kid(key.public_key()), x5c)


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def issue_token(
    signing: Signing,
    *,
    issuer: str,
    service: str,
    account: str,
    access: Sequence[Scope],
    expiry: int,
    now: int,
) -> str:
    """A signed token for *account* ("" when anonymous) granting *access* until ``now + expiry``."""
    claims = {
        "iss": issuer,
        "sub": account,
        "aud": service,  # a string: 2.8 rejects a list
        "exp": now + expiry,
        "nbf": now - NOT_BEFORE_BACKDATE,
        "iat": now,
        "jti": secrets.token_urlsafe(18),
        "access": [{"type": s.type, "name": s.name, "actions": list(s.actions)} for s in access],
    }
    headers = {"typ": "JWT", "kid": signing.kid, "x5c": list(signing.x5c)}
    return jwt.encode(claims, signing.key, algorithm=ALGORITHM, headers=headers)
