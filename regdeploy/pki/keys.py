"""Private keys: generate, load, and name their type."""

from __future__ import annotations

from typing import Literal, get_args

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from regdeploy.pki._base import PkiError

KeyType = Literal["ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"]
KEY_TYPES: tuple[str, ...] = get_args(KeyType)

# The keys that can sign certificates and serve TLS. DSA, DH and X25519/X448 keys load fine in
# cryptography but are useless here, so load_private_key rejects them up front.
PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)

MIN_RSA_BITS = 2048

_CURVES: dict[str, ec.EllipticCurve] = {"ecdsa-p256": ec.SECP256R1(), "ecdsa-p384": ec.SECP384R1()}
_CURVE_NAMES = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384", "secp521r1": "ecdsa-p521"}


def generate_key(key_type: KeyType = "ecdsa-p256") -> bytes:
    """A new private key as unencrypted PKCS#8 PEM."""
    key: PrivateKey
    if key_type in _CURVES:
        key = ec.generate_private_key(_CURVES[key_type])
    elif key_type in KEY_TYPES:  # the rsa-* ones
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(key_type.removeprefix("rsa-")))
    else:
        # key_type comes from user settings at runtime, whatever the Literal says.
        raise PkiError(f"unknown key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}")
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes, passphrase: bytes | None = None) -> PrivateKey:
    """Parse a PEM private key (PKCS#8, PKCS#1 or SEC1, encrypted or not).

    A passphrase given for an unencrypted key is ignored: it is harmless, and users often keep the
    setting after exporting the key without encryption.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError:
        # cryptography raises TypeError both for "encrypted, no password" and "password, not encrypted".
        if passphrase is None:
            raise PkiError("private key is encrypted and no passphrase was given") from None
        return load_private_key(pem, None)
    except (ValueError, UnsupportedAlgorithm):
        # from None everywhere here: nothing from the parser, which saw the key, reaches a log.
        hint = "wrong passphrase or corrupt key" if passphrase is not None else "not a PEM private key"
        raise PkiError(f"private key cannot be read ({hint})") from None
    if not isinstance(key, PrivateKey):
        raise PkiError(f"private key type {type(key).__name__} is not supported for TLS")
    return key


def key_type_name(public_key: CertificatePublicKeyTypes) -> str:
    """``public_key``'s type in KEY_TYPES spelling, extended to the keys we cannot generate."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _CURVE_NAMES.get(public_key.curve.name, f"ecdsa-{public_key.curve.name}")
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"dsa-{public_key.key_size}"
    return type(public_key).__name__.lower()


def spki_der(public_key: CertificatePublicKeyTypes) -> bytes:
    """The DER SubjectPublicKeyInfo: a byte-exact identity of a public key, whatever its type."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def rsa_too_small(public_key: CertificatePublicKeyTypes) -> bool:
    return isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < MIN_RSA_BITS
