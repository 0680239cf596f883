"""Certificate builders: a private CA, server leaves, CSRs. PEM in, PEM out."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from regdeploy.pki._base import CLOCK_SKEW_MINUTES, PkiError, load_cert, rfc_date, utc_now
from regdeploy.pki.keys import PrivateKey, load_private_key, rsa_too_small, spki_der

MAX_LEAF_DAYS = 825  # Apple clients reject longer-lived TLS server certificates, private CAs included
MAX_CA_DAYS = 36525  # 100 years: beyond that the date arithmetic is a typo, not a plan

_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")  # '_' because compose service names use it
_CN_MAX = 64  # ub-common-name (RFC 5280): longer CNs make an unencodable subject


def _validity(days: int, low: int, high: int, what: str) -> None:
    # bool is an int: reject it explicitly so ``days=True`` is not a one-day certificate.
    if isinstance(days, bool) or not isinstance(days, int) or not low <= days <= high:
        raise PkiError(f"{what} validity must be {low}..{high} days, got {days!r}")


def _signing_hash(key: PrivateKey) -> hashes.SHA256 | None:
    # EdDSA signs the message itself; cryptography requires None for it.
    return None if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()


def _dns_name(raw: str) -> str:
    name = raw.strip().rstrip(".").lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise PkiError(f"SAN {raw!r} is not a valid host name") from None
    labels = name.split(".")
    # A wildcard is the whole leftmost label, over at least one more label ('*.x' is allowed on purpose:
    # single-label internal domains are common for private registries).
    if labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    # An all-numeric last label is a mistyped IP ("10.0.0", "010.0.0.5"), never a host name (RFC 3696 2).
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise PkiError(f"SAN {raw!r} is not a valid host name or IP address")
    return name


def parse_san(raw: str) -> x509.GeneralName:
    """One SAN string as a GeneralName: IPAddress for IPs (brackets allowed for IPv6), DNSName otherwise."""
    text = raw.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        return x509.DNSName(_dns_name(text))


def san_text(name: x509.GeneralName) -> str:
    """The inverse of parse_san for the two SAN types we issue; other types keep a type prefix."""
    if isinstance(name, x509.DNSName):
        return name.value
    if isinstance(name, x509.IPAddress):
        return str(name.value)
    return f"{type(name).__name__}:{name.value}"


def _parse_sans(sans: Sequence[str]) -> list[x509.GeneralName]:
    if isinstance(sans, str):  # a bare string is a Sequence[str] too: one SAN per character is never meant
        sans = [sans]
    parsed: list[x509.GeneralName] = []
    for raw in sans:
        name = parse_san(raw)
        if name not in parsed:
            parsed.append(name)
    if not parsed:
        raise PkiError("a server certificate needs at least one SAN (host name or IP address)")
    return parsed


def _subject(common_name: str | None, sans: list[x509.GeneralName]) -> x509.Name:
    if common_name is not None:
        if not 0 < len(common_name) <= _CN_MAX:
            raise PkiError(f"common name must be 1..{_CN_MAX} characters")
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    first = san_text(sans[0])
    # A SAN too long for a CN gets an empty subject: clients only look at SANs anyway (RFC 6125).
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)] if len(first) <= _CN_MAX else [])


def _base_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    start: datetime,
    end: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(
    key_pem: bytes,
    common_name: str = "regdeploy CA",
    days: int = 3650,
    now: datetime | None = None,
    *,
    key_passphrase: bytes | None = None,
) -> bytes:
    """A self-signed CA certificate that may sign leaves only (path_length=0)."""
    _validity(days, 1, MAX_CA_DAYS, "CA")
    key = load_private_key(key_pem, key_passphrase)
    start = utc_now(now) - timedelta(minutes=CLOCK_SKEW_MINUTES)
    name = _subject(common_name, [])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        _base_builder(name, name, key.public_key(), start, start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    return _pem(builder.sign(key, _signing_hash(key)))


def make_signing_cert(
    key_pem: bytes, common_name: str, days: int = 397, now: datetime | None = None
) -> bytes:
    """A self-signed certificate for a key that signs tokens, not TLS: the registry trusts it as its
    own root (auth.token.rootcertbundle) and finds it in the tokens' x5c header."""
    _validity(days, 1, MAX_CA_DAYS, "signing certificate")
    key = load_private_key(key_pem)
    start = utc_now(now) - timedelta(minutes=CLOCK_SKEW_MINUTES)
    name = _subject(common_name, [])
    builder = (
        _base_builder(name, name, key.public_key(), start, start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(), critical=True)
    )
    return _pem(builder.sign(key, _signing_hash(key)))


def _key_usage(cert_sign: bool = False, key_encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _load_ca(
    ca_cert_pem: bytes, ca_key_pem: bytes, passphrase: bytes | None, now: datetime
) -> tuple[x509.Certificate, PrivateKey]:
    ca_cert = load_cert(ca_cert_pem, "CA certificate")
    ca_key = load_private_key(ca_key_pem, passphrase)
    if spki_der(ca_key.public_key()) != spki_der(ca_cert.public_key()):
        raise PkiError("CA private key does not match the CA certificate")
    try:
        is_ca = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise PkiError("CA certificate is not a CA (BasicConstraints ca=False or missing)")
    if ca_cert.not_valid_after_utc <= now:
        raise PkiError(f"CA certificate expired on {rfc_date(ca_cert.not_valid_after_utc)}")
    return ca_cert, ca_key


def _issue(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    ca_key_passphrase: bytes | None,
    public_key: CertificatePublicKeyTypes,
    sans: list[x509.GeneralName],
    common_name: str | None,
    days: int,
    now: datetime | None,
) -> bytes:
    _validity(days, 1, MAX_LEAF_DAYS, "server certificate")
    moment = utc_now(now)
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem, ca_key_passphrase, moment)
    if rsa_too_small(public_key):
        raise PkiError("server key is RSA below 2048 bits; TLS clients reject it")
    if isinstance(public_key, rsa.RSAPublicKey):
        # Only RSA key exchange (TLS 1.2 without ECDHE) encrypts with the key; EC/EdDSA keys never do.
        key_usage = _key_usage(key_encipherment=True)
    elif isinstance(public_key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key_usage = _key_usage()
    else:
        raise PkiError(f"server key type {type(public_key).__name__} is not supported for TLS")
    # A leaf outliving its CA is dead on the CA's last day anyway: end it there so renewal triggers in time.
    end = min(moment + timedelta(days=days), ca_cert.not_valid_after_utc)
    subject = _subject(common_name, sans)
    try:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        )
    except x509.ExtensionNotFound:  # a CA made elsewhere without SKI: derive the same value from its key
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    builder = (
        _base_builder(
            subject, ca_cert.subject, public_key, moment - timedelta(minutes=CLOCK_SKEW_MINUTES), end
        )
        # RFC 5280 4.2.1.6: with an empty subject the SAN extension must be critical.
        .add_extension(x509.SubjectAlternativeName(sans), critical=len(subject) == 0)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(aki, critical=False)
    )
    return _pem(builder.sign(ca_key, _signing_hash(ca_key)))


def issue_server_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    server_key_pem: bytes,
    sans: Sequence[str],
    days: int = 397,
    common_name: str | None = None,
    now: datetime | None = None,
    ca_key_passphrase: bytes | None = None,
) -> bytes:
    """A TLS server certificate for ``server_key_pem``'s public key, signed by the CA.

    ``not_before`` is backdated by the clock-skew margin; ``not_after`` is ``now + days`` but never
    later than the CA's own expiry.
    """
    public_key = load_private_key(server_key_pem).public_key()
    return _issue(
        ca_cert_pem, ca_key_pem, ca_key_passphrase, public_key, _parse_sans(sans), common_name, days, now
    )


def make_csr(key_pem: bytes, sans: Sequence[str], common_name: str | None = None) -> bytes:
    """A PEM certificate signing request for ``sans`` (for a CA we do not hold the key of)."""
    key = load_private_key(key_pem)
    parsed = _parse_sans(sans)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_subject(common_name, parsed))
        .add_extension(x509.SubjectAlternativeName(parsed), critical=False)
        .sign(key, _signing_hash(key))
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def sign_csr(
    csr_pem: bytes,
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    days: int = 397,
    now: datetime | None = None,
    ca_key_passphrase: bytes | None = None,
) -> bytes:
    """Sign a CSR as a server certificate.

    Only the CSR's key, CN and SANs are used: its other requested extensions (BasicConstraints ca=True,
    say) are CA policy and never copied. SANs are re-validated as if given to issue_server_cert.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise PkiError("CSR is not a readable PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise PkiError("CSR signature does not verify (corrupt or tampered request)")
    try:
        requested = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        requested = []
    unsupported = [san_text(n) for n in requested if not isinstance(n, x509.DNSName | x509.IPAddress)]
    if unsupported:
        raise PkiError(f"CSR requests unsupported SAN types: {', '.join(unsupported)}")
    cns = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    # A CN-only CSR (old tooling) still gets a SAN: clients ignore the CN (RFC 6125).
    sans = _parse_sans([san_text(n) for n in requested] or cns)
    return _issue(
        ca_cert_pem, ca_key_pem, ca_key_passphrase, csr.public_key(), sans, cns[0] if cns else None, days, now
    )
