"""Certificate inspectors: what a certificate is, and whether it (still) fits what a registry needs."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from regdeploy.pki._base import PkiError, load_cert, rfc_date, utc_now
from regdeploy.pki.build import san_text
from regdeploy.pki.keys import key_type_name, load_private_key, rsa_too_small, spki_der

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
# Hashes whose collisions are practical: Go (hence docker) and browsers refuse certificates signed with them.
_WEAK_HASHES = {"sha1": "SHA-1", "md5": "MD5"}
_DAY = timedelta(days=1)


def _days_until(moment: datetime, now: datetime) -> int:
    # Floor, so "expires in 0 days" means "today" and an expired certificate is negative.
    return (moment - now) // _DAY


@dataclass(frozen=True)
class CertInfo:
    """What a certificate says, in plain types (for display and JSON)."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    key_type: str
    serial: int
    sha256_fingerprint: str  # colon-separated upper-case hex, as ``openssl x509 -fingerprint`` prints it
    is_ca: bool
    signature_hash: str | None  # None for EdDSA, which has no separate hash

    def days_left(self, now: datetime | None = None) -> int:
        """Whole days until expiry (negative once expired)."""
        return _days_until(self.not_after, utc_now(now))


def split_chain(pem: bytes) -> list[bytes]:
    """Each certificate of a PEM bundle, re-encoded as clean PEM, in bundle order.

    Anything between the blocks (``openssl x509 -text`` output, keys, comments) is dropped.
    """
    blocks = _PEM_CERT.findall(pem)
    if not blocks:
        raise PkiError("no PEM certificate found")
    certs = []
    for index, block in enumerate(blocks, 1):
        certs.append(
            load_cert(block, f"certificate #{index} of the bundle").public_bytes(serialization.Encoding.PEM)
        )
    return certs


def _load_chain(pem: bytes) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(block) for block in split_chain(pem)]


def _first(pem: bytes) -> x509.Certificate:
    match = _PEM_CERT.search(pem)
    if match is None:
        raise PkiError("no PEM certificate found")
    return load_cert(match.group(0))


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def _signature_hash(cert: x509.Certificate) -> str | None:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:  # a hash cryptography does not know: its OID still identifies it
        return cert.signature_algorithm_oid.dotted_string
    return None if algorithm is None else algorithm.name


def cert_info(cert_pem: bytes) -> CertInfo:
    """CertInfo of the first certificate in ``cert_pem`` (a single certificate or a chain)."""
    cert = _first(cert_pem)
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=tuple(san_text(name) for name in _sans(cert)),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type_name(cert.public_key()),
        serial=cert.serial_number,
        sha256_fingerprint=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        is_ca=_is_ca(cert),
        signature_hash=_signature_hash(cert),
    )


def key_matches_cert(key_pem: bytes, cert_pem: bytes, passphrase: bytes | None = None) -> bool:
    """Whether the private key belongs to the (first) certificate. PkiError if either is unreadable."""
    return spki_der(load_private_key(key_pem, passphrase).public_key()) == spki_der(
        _first(cert_pem).public_key()
    )


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` issued ``cert``: names chain and the signature verifies with its key.

    Verified by hand rather than with ``verify_directly_issued_by``: that refuses SHA-1 signatures,
    and we must still recognise a SHA-1 certificate as ours to report "uses SHA-1" instead of a
    misleading "issued by another CA".
    """
    if cert.issuer != issuer.subject:
        return False
    public_key = issuer.public_key()
    try:
        params = cert.signature_algorithm_parameters
        algorithm = cert.signature_hash_algorithm
        if isinstance(public_key, rsa.RSAPublicKey):
            if not isinstance(params, padding.PKCS1v15 | padding.PSS) or algorithm is None:
                return False
            public_key.verify(cert.signature, cert.tbs_certificate_bytes, params, algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if not isinstance(params, ec.ECDSA):
                return False
            public_key.verify(cert.signature, cert.tbs_certificate_bytes, params)
        elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            public_key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        # ValueError/TypeError: a signature algorithm that does not fit the issuer's key type.
        return False
    return True


def issued_by(cert_pem: bytes, ca_cert_pem: bytes) -> bool:
    """Whether the (first) certificate was signed by the CA's key under the CA's name."""
    return _signed_by(_first(cert_pem), load_cert(ca_cert_pem, "CA certificate"))


def _covers(sans: list[x509.GeneralName], wanted: str) -> bool:
    text = wanted.strip()
    try:
        address = ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        pass
    else:
        # Clients match an IP only against IP SANs (RFC 6125 6.2.1): a DNS SAN "10.0.0.5" does not count.
        return any(isinstance(n, x509.IPAddress) and n.value == address for n in sans)
    name = text.rstrip(".").lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return False
    head, _, parent = name.partition(".")
    for san in sans:
        if not isinstance(san, x509.DNSName):
            continue
        pattern = san.value.rstrip(".").lower()
        if pattern == name:
            return True
        # '*.x' stands for exactly one label: it covers a.x but neither x nor a.b.x (RFC 6125 6.4.3).
        if pattern.startswith("*.") and parent and head != "*" and pattern[2:] == parent:
            return True
    return False


def sans_cover(cert_pem: bytes, wanted: Sequence[str]) -> list[str]:
    """The entries of ``wanted`` (host names or IPs) that the (first) certificate does NOT cover."""
    if isinstance(wanted, str):  # one name, not one name per character
        wanted = [wanted]
    sans = _sans(_first(cert_pem))
    return list(dict.fromkeys(w for w in wanted if not _covers(sans, w)))


def _time_problem(cert: x509.Certificate, now: datetime, renew_before_days: int) -> str | None:
    if cert.not_valid_before_utc > now:
        return f"not valid until {rfc_date(cert.not_valid_before_utc)}"
    if cert.not_valid_after_utc <= now:
        return f"expired on {rfc_date(cert.not_valid_after_utc)}"
    if cert.not_valid_after_utc - now < timedelta(days=renew_before_days):
        days = _days_until(cert.not_valid_after_utc, now)
        return f"expires in {days} day{'' if days == 1 else 's'} (renew_before {renew_before_days})"
    return None


def _crypto_problems(cert: x509.Certificate) -> list[str]:
    problems = []
    weak = _WEAK_HASHES.get(_signature_hash(cert) or "")
    # A self-signed root is trusted by presence, so its own signature's hash does not matter.
    if weak and not (cert.issuer == cert.subject and _signed_by(cert, cert)):
        problems.append(f"uses {weak}")
    if rsa_too_small(cert.public_key()):
        problems.append("RSA key below 2048 bits")
    return problems


def _server_problem(cert: x509.Certificate) -> str | None:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None  # no EKU at all means any usage
    if ExtendedKeyUsageOID.SERVER_AUTH in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages:
        return None
    return "not a TLS server certificate (extended key usage lacks serverAuth)"


def _missing(cert: x509.Certificate, wanted: Sequence[str]) -> str | None:
    if isinstance(wanted, str):
        wanted = [wanted]
    sans = _sans(cert)
    missing = list(dict.fromkeys(w for w in wanted if not _covers(sans, w)))
    return f"SANs miss {', '.join(missing)}" if missing else None


def reissue_reason(
    cert_pem: bytes | None,
    key_pem: bytes | None,
    ca_cert_pem: bytes,
    wanted_sans: Sequence[str],
    renew_before_days: int = 30,
    now: datetime | None = None,
) -> str | None:
    """Why a certificate regdeploy manages must be reissued, or None when it can stay.

    Only the first (most fundamental) reason is returned. A missing or unreadable certificate or key
    is a reason, not an error: reissuing is exactly what fixes it. An unreadable CA raises PkiError.
    """
    moment = utc_now(now)
    ca = load_cert(ca_cert_pem, "CA certificate")
    if cert_pem is None:
        return "no certificate yet"
    try:
        cert = _first(cert_pem)
    except PkiError:
        return "certificate unreadable"
    if key_pem is None:
        return "no private key yet"
    try:
        key = load_private_key(key_pem)
    except PkiError:
        return "private key unreadable"
    if not _signed_by(cert, ca):
        return "issued by another CA"
    if spki_der(key.public_key()) != spki_der(cert.public_key()):
        return "key does not match certificate"
    for reason in (
        *_crypto_problems(cert),
        _server_problem(cert),
        _time_problem(cert, moment, renew_before_days),
        _missing(cert, wanted_sans),
    ):
        if reason:
            return reason
    return None


def _path(
    leaf: x509.Certificate, pool: list[x509.Certificate], ca: x509.Certificate | None
) -> tuple[list[x509.Certificate], bool]:
    """Walk from ``leaf`` through CA certificates of ``pool`` towards ``ca``.

    Returns the path (leaf first, ``ca`` excluded) and whether it reached ``ca``. Bundle order does not
    matter: TLS clients build paths from whatever the server sends. Without ``ca`` it walks as far as
    the bundle goes.
    """
    path = [leaf]
    pool = list(pool)
    while True:
        current = path[-1]
        if ca is not None and _signed_by(current, ca):
            return path, True
        issuer = next((c for c in pool if _is_ca(c) and _signed_by(current, c)), None)
        if issuer is None:
            return path, False
        pool.remove(issuer)
        path.append(issuer)


def validation_problems(
    chain_pem: bytes,
    key_pem: bytes,
    ca_cert_pem: bytes | None,
    wanted_sans: Sequence[str],
    renew_before_days: int = 30,
    now: datetime | None = None,
    passphrase: bytes | None = None,
) -> list[str]:
    """Every problem of a user-provided chain (server certificate first) and key; [] when it is fine.

    With ``ca_cert_pem`` the chain must lead to that CA through intermediates in the bundle. Without it
    (a publicly trusted certificate) path building to a root is left to the clients, but the
    intermediates the bundle does carry are still checked.
    """
    moment = utc_now(now)
    try:
        certs = _load_chain(chain_pem)
    except PkiError as exc:
        return [f"certificate chain: {exc}"]
    leaf = certs[0]
    problems: list[str] = []
    try:
        key = load_private_key(key_pem, passphrase)
    except PkiError as exc:
        problems.append(str(exc))
    else:
        if spki_der(key.public_key()) != spki_der(leaf.public_key()):
            problems.append("private key does not match the certificate")
    if _is_ca(leaf):
        problems.append("the first certificate is a CA certificate; the server certificate must come first")
    leaf_problems = (
        _server_problem(leaf),
        _missing(leaf, wanted_sans),
        _time_problem(leaf, moment, renew_before_days),
        *_crypto_problems(leaf),
    )
    problems += [p for p in leaf_problems if p]

    ca = None
    if ca_cert_pem is not None:
        try:
            ca = load_cert(ca_cert_pem, "CA certificate")
        except PkiError as exc:
            problems.append(str(exc))
    path, reached = _path(leaf, certs[1:], ca)
    if ca is not None and not reached:
        last = path[-1]
        problems.append(
            f"chain does not lead to the CA: nothing in the bundle issued {last.subject.rfc4514_string()} "
            f"(issuer {last.issuer.rfc4514_string()})"
        )
    for inter in path[1:]:
        label = f"intermediate {inter.subject.rfc4514_string()}"
        inter_problems = (*_crypto_problems(inter), _time_problem(inter, moment, renew_before_days))
        problems += [f"{label}: {p}" for p in inter_problems if p]
    if ca is not None:
        ca_time = _time_problem(ca, moment, 0)  # the CA is not ours to renew: only flag it once unusable
        if ca_time:
            problems.append(f"CA certificate {ca_time}")
    return problems
