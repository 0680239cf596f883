"""regdeploy.pki: builders and inspectors, checked against cryptography's own parsing (and openssl)."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from regdeploy.errors import InputError
from regdeploy.pki import (
    KEY_TYPES,
    PkiError,
    cert_info,
    generate_key,
    issue_server_cert,
    issued_by,
    key_matches_cert,
    load_private_key,
    make_ca,
    make_csr,
    reissue_reason,
    sans_cover,
    sign_csr,
    split_chain,
    validation_problems,
)

# A fixed clock: every builder and check below takes now=, so no test depends on the wall clock
# (except the openssl cross-check, which openssl runs at real time).
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SANS = ["reg.example.com", "10.0.0.5", "*.apps.example.com", "::1"]
E = TypeVar("E", bound=x509.ExtensionType)


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, bytes]:
    # RSA-4096 takes ~1 s to generate: one key per type for the whole module keeps the suite fast.
    return {key_type: generate_key(key_type) for key_type in KEY_TYPES}  # type: ignore[arg-type]  # KEY_TYPES is tuple[str, ...]


@pytest.fixture(scope="module")
def ca(keys: dict[str, bytes]) -> tuple[bytes, bytes]:
    key = generate_key()
    return make_ca(key, now=NOW), key


@pytest.fixture(scope="module")
def leaf(ca: tuple[bytes, bytes], keys: dict[str, bytes]) -> bytes:
    return issue_server_cert(ca[0], ca[1], keys["ecdsa-p256"], SANS, now=NOW)


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _ext(pem: bytes, cls: type[E]) -> x509.Extension[E]:
    return _cert(pem).extensions.get_extension_for_class(cls)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _intermediate_ca(cn: str, key_pem: bytes, issuer_pem: bytes | None, issuer_key_pem: bytes) -> bytes:
    """A CA certificate allowing one intermediate below it (make_ca's path_length=0 forbids that)."""
    key = load_private_key(key_pem)
    issuer_key = load_private_key(issuer_key_pem)
    issuer_name = _cert(issuer_pem).subject if issuer_pem else _name(cn)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1000))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer_pem is None else 0), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    return _pem(builder.sign(issuer_key, hashes.SHA256()))


def _raw_leaf(public_key: rsa.RSAPublicKey, ca_pem: bytes, ca_key_pem: bytes) -> bytes:
    """A leaf for a key issue_server_cert refuses (RSA-1024), built straight with cryptography."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("reg.example.com"))
        .issuer_name(_cert(ca_pem).subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=300))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("reg.example.com")]), False)
    )
    return _pem(builder.sign(load_private_key(ca_key_pem), hashes.SHA256()))


def _der_tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    length = (
        bytes([n])
        if n < 0x80
        else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )
    return bytes([tag]) + length + value


def _resign_sha1(cert_pem: bytes, rsa_ca_key_pem: bytes) -> bytes:
    """The same certificate re-signed with RSA/SHA-1.

    cryptography's CertificateBuilder refuses SHA-1, so swap the algorithm OID in the TBS (same length,
    so no DER lengths change), sign it with hashes.SHA1 directly and reassemble the Certificate SEQUENCE.
    """
    sha256_rsa = bytes.fromhex("2a864886f70d01010b")  # 1.2.840.113549.1.1.11
    sha1_rsa = bytes.fromhex("2a864886f70d010105")  # 1.2.840.113549.1.1.5
    tbs = _cert(cert_pem).tbs_certificate_bytes
    assert tbs.count(sha256_rsa) == 1
    tbs = tbs.replace(sha256_rsa, sha1_rsa)
    key = load_private_key(rsa_ca_key_pem)
    assert isinstance(key, rsa.RSAPrivateKey)
    signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    algorithm = _der_tlv(0x30, _der_tlv(0x06, sha1_rsa) + b"\x05\x00")
    der = _der_tlv(0x30, tbs + algorithm + _der_tlv(0x03, b"\x00" + signature))
    return _pem(x509.load_der_x509_certificate(der))


# --- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_every_key_type_generates_signs_and_is_named(
    keys: dict[str, bytes], ca: tuple[bytes, bytes], key_type: str
) -> None:
    # Loading an RSA key validates it (~0.3 s for RSA-4096), so each key is loaded only twice here:
    # once as a CA signing with it, once as a leaf carrying it. key_type proves curve and size.
    pem = keys[key_type]
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    own_ca = make_ca(pem, now=NOW)
    assert cert_info(own_ca).key_type == key_type
    assert issued_by(own_ca, own_ca)
    cert = issue_server_cert(ca[0], ca[1], pem, ["reg.example.com"], now=NOW)
    assert cert_info(cert).key_type == key_type
    assert cert_info(cert).serial != cert_info(own_ca).serial
    # keyEncipherment only where the key can encrypt (RSA key exchange); never for EC.
    assert _ext(cert, x509.KeyUsage).value.key_encipherment is key_type.startswith("rsa-")


def test_unknown_key_type_is_an_input_error() -> None:
    with pytest.raises(PkiError, match="unknown key type"):
        generate_key("dsa-1024")  # type: ignore[arg-type]  # the point
    assert issubclass(PkiError, InputError)


def test_load_private_key_errors_name_no_secret(keys: dict[str, bytes]) -> None:
    with pytest.raises(PkiError, match="not a PEM private key"):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    key = load_private_key(keys["ecdsa-p256"])
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret-pass"),
    )
    with pytest.raises(PkiError, match="no passphrase") as no_pass:
        load_private_key(encrypted)
    with pytest.raises(PkiError, match="wrong passphrase") as wrong:
        load_private_key(encrypted, b"not-it")
    for exc in (no_pass.value, wrong.value):
        assert "s3cret" not in str(exc) and "not-it" not in str(exc) and "PRIVATE" not in str(exc)
        assert exc.__cause__ is None and exc.__suppress_context__
    assert isinstance(load_private_key(encrypted, b"s3cret-pass"), ec.EllipticCurvePrivateKey)
    # A needless passphrase on a plain key is tolerated.
    assert isinstance(load_private_key(keys["ecdsa-p256"], b"unused"), ec.EllipticCurvePrivateKey)


# --- CA and leaves -------------------------------------------------------------------------------


def test_ca_properties(ca: tuple[bytes, bytes]) -> None:
    cert = _cert(ca[0])
    constraints = _ext(ca[0], x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value == x509.BasicConstraints(ca=True, path_length=0)
    usage = _ext(ca[0], x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.digital_signature
    ski = _ext(ca[0], x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert _ext(ca[0], x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
    assert cert.subject == cert.issuer == _name("regdeploy CA")
    info = cert_info(ca[0])
    assert info.is_ca and info.signature_hash == "sha256"
    assert info.not_before == NOW - timedelta(minutes=5)
    assert info.not_after == info.not_before + timedelta(days=3650)


def test_leaf_extensions(ca: tuple[bytes, bytes], leaf: bytes) -> None:
    sans = _ext(leaf, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["reg.example.com", "*.apps.example.com"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("::1"),
    ]
    constraints = _ext(leaf, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    usage = _ext(leaf, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert list(_ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    ca_ski = _ext(ca[0], x509.SubjectKeyIdentifier).value.digest
    assert _ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    assert _ext(leaf, x509.SubjectKeyIdentifier).value.digest != ca_ski
    info = cert_info(leaf)
    assert info.subject == "CN=reg.example.com"  # first SAN
    assert info.issuer == "CN=regdeploy CA"
    assert info.sans == ("reg.example.com", "10.0.0.5", "*.apps.example.com", "::1")
    assert info.not_before == NOW - timedelta(minutes=5)  # clock-skew margin
    assert info.not_after == NOW + timedelta(days=397)
    assert not info.is_ca and info.signature_hash == "sha256"
    assert info.days_left(NOW) == 397 and info.days_left(NOW + timedelta(days=400)) == -3
    assert info.sha256_fingerprint == _cert(leaf).fingerprint(hashes.SHA256()).hex(":").upper()


def test_leaf_options_and_random_serial(ca: tuple[bytes, bytes], keys: dict[str, bytes]) -> None:
    one = issue_server_cert(ca[0], ca[1], keys["ecdsa-p256"], ["10.0.0.5"], common_name="registry", now=NOW)
    two = issue_server_cert(ca[0], ca[1], keys["ecdsa-p256"], ["10.0.0.5"], common_name="registry", now=NOW)
    assert cert_info(one).subject == "CN=registry"
    assert cert_info(one).serial != cert_info(two).serial
    # A leaf never outlives its CA: it ends with it, so renewal triggers in time.
    short_ca = make_ca(ca[1], days=10, now=NOW)
    clamped = issue_server_cert(short_ca, ca[1], keys["ecdsa-p256"], ["a.example.com"], now=NOW)
    assert cert_info(clamped).not_after == cert_info(short_ca).not_after


@pytest.mark.parametrize("days", [0, -1, 826, True])
def test_leaf_days_out_of_range(ca: tuple[bytes, bytes], keys: dict[str, bytes], days: int) -> None:
    with pytest.raises(PkiError, match=r"1\.\.825"):
        issue_server_cert(ca[0], ca[1], keys["ecdsa-p256"], ["a.example.com"], days=days, now=NOW)


@pytest.mark.parametrize(
    "bad", ["", "*", "a.*.example.com", "foo*.example.com", "a..b", "-a.example", "10.0.0"]
)
def test_invalid_sans_rejected(ca: tuple[bytes, bytes], keys: dict[str, bytes], bad: str) -> None:
    with pytest.raises(PkiError, match="SAN"):
        issue_server_cert(ca[0], ca[1], keys["ecdsa-p256"], [bad], now=NOW)


def test_issuing_refuses_unusable_ca_material(
    ca: tuple[bytes, bytes], leaf: bytes, keys: dict[str, bytes]
) -> None:
    with pytest.raises(PkiError, match="at least one SAN"):
        issue_server_cert(ca[0], ca[1], keys["ecdsa-p256"], [], now=NOW)
    with pytest.raises(PkiError, match="does not match the CA certificate"):
        issue_server_cert(ca[0], keys["ecdsa-p384"], keys["ecdsa-p256"], ["a.example.com"], now=NOW)
    with pytest.raises(PkiError, match="not a CA"):
        issue_server_cert(leaf, keys["ecdsa-p256"], keys["ecdsa-p256"], ["a.example.com"], now=NOW)
    with pytest.raises(PkiError, match="expired"):
        issue_server_cert(ca[0], ca[1], keys["ecdsa-p256"], ["a.example.com"], now=NOW + timedelta(days=4000))
    with pytest.raises(ValueError, match="timezone-aware"):
        make_ca(ca[1], now=datetime(2026, 1, 1))  # naive on purpose


def test_passphrase_protected_ca_key(ca: tuple[bytes, bytes], keys: dict[str, bytes]) -> None:
    encrypted = load_private_key(ca[1]).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"ca-pass"),
    )
    cert = issue_server_cert(
        ca[0], encrypted, keys["ecdsa-p256"], ["reg.example.com"], now=NOW, ca_key_passphrase=b"ca-pass"
    )
    assert issued_by(cert, ca[0])
    csr = make_csr(keys["ecdsa-p256"], ["reg.example.com"])
    assert issued_by(sign_csr(csr, ca[0], encrypted, now=NOW, ca_key_passphrase=b"ca-pass"), ca[0])
    assert cert_info(make_ca(encrypted, now=NOW, key_passphrase=b"ca-pass")).is_ca
    with pytest.raises(PkiError, match="wrong passphrase") as wrong:
        issue_server_cert(ca[0], encrypted, keys["ecdsa-p256"], ["a.b"], now=NOW, ca_key_passphrase=b"nope")
    assert "nope" not in str(wrong.value)
    with pytest.raises(PkiError, match="no passphrase"):
        issue_server_cert(ca[0], encrypted, keys["ecdsa-p256"], ["a.b"], now=NOW)


def test_csr_round_trip_keeps_sans(ca: tuple[bytes, bytes], keys: dict[str, bytes]) -> None:
    csr = make_csr(keys["rsa-2048"], SANS, common_name="registry")
    cert = sign_csr(csr, ca[0], ca[1], days=90, now=NOW)
    info = cert_info(cert)
    assert info.sans == tuple(SANS)
    assert info.subject == "CN=registry"
    assert info.not_after == NOW + timedelta(days=90)
    assert key_matches_cert(keys["rsa-2048"], cert) and issued_by(cert, ca[0])
    assert _ext(cert, x509.BasicConstraints).value.ca is False


def test_sign_csr_applies_ca_policy_not_the_request(ca: tuple[bytes, bytes], keys: dict[str, bytes]) -> None:
    key = load_private_key(keys["ecdsa-p256"])
    greedy = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name("legacy.example.com"))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert = sign_csr(greedy.public_bytes(serialization.Encoding.PEM), ca[0], ca[1], now=NOW)
    assert not cert_info(cert).is_ca  # the requested CA flag is ignored
    assert cert_info(cert).sans == ("legacy.example.com",)  # a CN-only request still gets a SAN
    with pytest.raises(PkiError, match="CSR"):
        sign_csr(b"not a csr", ca[0], ca[1], now=NOW)


# --- inspectors ----------------------------------------------------------------------------------


def test_issued_by(ca: tuple[bytes, bytes], leaf: bytes, keys: dict[str, bytes]) -> None:
    assert issued_by(leaf, ca[0])
    assert not issued_by(leaf, make_ca(generate_key(), common_name="other CA", now=NOW))
    # Same name, different key: the signature check, not the name, must decide.
    impostor = make_ca(generate_key(), now=NOW)
    assert cert_info(impostor).subject == cert_info(ca[0]).subject
    assert not issued_by(leaf, impostor)
    # RSA PKCS#1 v1.5 signatures as well as ECDSA.
    rsa_ca = make_ca(keys["rsa-2048"], now=NOW)
    assert issued_by(
        issue_server_cert(rsa_ca, keys["rsa-2048"], keys["ecdsa-p256"], ["a.b"], now=NOW), rsa_ca
    )


def test_key_matches_cert(leaf: bytes, keys: dict[str, bytes]) -> None:
    assert key_matches_cert(keys["ecdsa-p256"], leaf)
    assert not key_matches_cert(keys["ecdsa-p384"], leaf)
    assert not key_matches_cert(keys["rsa-2048"], leaf)


def test_sans_cover(leaf: bytes) -> None:
    assert sans_cover(leaf, ["reg.example.com", "REG.Example.com.", "x.apps.example.com", "10.0.0.5"]) == []
    assert sans_cover(leaf, ["0:0::1", "[::1]", "*.apps.example.com"]) == []  # IPs compare as addresses
    # A wildcard covers exactly one label: neither the bare parent nor two levels down.
    assert sans_cover(
        leaf, ["apps.example.com", "a.b.apps.example.com", "10.0.0.6", "other.example.com"]
    ) == [
        "apps.example.com",
        "a.b.apps.example.com",
        "10.0.0.6",
        "other.example.com",
    ]


def test_split_chain_and_cert_info_of_bundle(ca: tuple[bytes, bytes], leaf: bytes) -> None:
    bundle = b"leaf:\n" + leaf.replace(b"\n", b"\r\n") + b"\nsome text\n" + ca[0]
    parts = split_chain(bundle)
    assert parts == [leaf, ca[0]]
    assert cert_info(bundle).subject == "CN=reg.example.com"
    with pytest.raises(PkiError, match="no PEM certificate"):
        split_chain(b"nothing here")
    corrupt = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(PkiError, match="#2"):
        split_chain(leaf + corrupt)


# --- reissue_reason ------------------------------------------------------------------------------


def test_reissue_reason_keeps_a_good_cert(
    ca: tuple[bytes, bytes], leaf: bytes, keys: dict[str, bytes]
) -> None:
    assert reissue_reason(leaf, keys["ecdsa-p256"], ca[0], ["reg.example.com", "10.0.0.5"], now=NOW) is None


def test_reissue_reason_missing_or_unreadable(
    ca: tuple[bytes, bytes], leaf: bytes, keys: dict[str, bytes]
) -> None:
    assert reissue_reason(None, None, ca[0], ["a"], now=NOW) == "no certificate yet"
    assert reissue_reason(b"garbage", keys["ecdsa-p256"], ca[0], ["a"], now=NOW) == "certificate unreadable"
    assert reissue_reason(leaf, None, ca[0], ["reg.example.com"], now=NOW) == "no private key yet"
    assert reissue_reason(leaf, b"garbage", ca[0], ["reg.example.com"], now=NOW) == "private key unreadable"


def test_reissue_reason_key_and_ca(ca: tuple[bytes, bytes], leaf: bytes, keys: dict[str, bytes]) -> None:
    wanted = ["reg.example.com"]
    assert (
        reissue_reason(leaf, keys["ecdsa-p384"], ca[0], wanted, now=NOW) == "key does not match certificate"
    )
    other = make_ca(generate_key(), now=NOW)
    assert reissue_reason(leaf, keys["ecdsa-p256"], other, wanted, now=NOW) == "issued by another CA"


def test_reissue_reason_expiry(ca: tuple[bytes, bytes], keys: dict[str, bytes]) -> None:
    short = issue_server_cert(ca[0], ca[1], keys["ecdsa-p256"], ["reg.example.com"], days=40, now=NOW)
    key, wanted = keys["ecdsa-p256"], ["reg.example.com"]
    assert reissue_reason(short, key, ca[0], wanted, now=NOW) is None  # 40 days left > 30
    assert reissue_reason(short, key, ca[0], wanted, now=NOW + timedelta(days=28)) == (
        "expires in 12 days (renew_before 30)"
    )
    assert (
        reissue_reason(short, key, ca[0], wanted, renew_before_days=5, now=NOW + timedelta(days=28)) is None
    )
    assert reissue_reason(short, key, ca[0], wanted, now=NOW + timedelta(days=41)) == (
        "expired on 2026-04-10 12:00 UTC"
    )
    assert reissue_reason(short, key, ca[0], wanted, now=NOW - timedelta(days=1)) == (
        "not valid until 2026-03-01 11:55 UTC"
    )


def test_reissue_reason_sans(ca: tuple[bytes, bytes], keys: dict[str, bytes]) -> None:
    cert = issue_server_cert(ca[0], ca[1], keys["ecdsa-p256"], ["registry.local"], now=NOW)
    reason = reissue_reason(cert, keys["ecdsa-p256"], ca[0], ["10.0.0.5", "reg.example.com"], now=NOW)
    assert reason == "SANs miss 10.0.0.5, reg.example.com"


@pytest.fixture(scope="module")
def weak(keys: dict[str, bytes]) -> dict[str, bytes]:
    """An RSA CA with a SHA-1 signed leaf and an RSA-1024 leaf (both refused by issue_server_cert)."""
    rsa_ca_key = keys["rsa-2048"]  # SHA-1 surgery needs an RSA signature (see _resign_sha1)
    rsa_ca = make_ca(rsa_ca_key, now=NOW)
    good = issue_server_cert(rsa_ca, rsa_ca_key, keys["ecdsa-p256"], ["reg.example.com"], now=NOW)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    small_pem = small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "ca": rsa_ca,
        "ca_key": rsa_ca_key,
        "sha1": _resign_sha1(good, rsa_ca_key),
        "small_leaf": _raw_leaf(small.public_key(), rsa_ca, rsa_ca_key),
        "small_key": small_pem,
    }


def test_reissue_reason_weak_crypto(weak: dict[str, bytes], keys: dict[str, bytes]) -> None:
    assert cert_info(weak["sha1"]).signature_hash == "sha1"
    assert issued_by(weak["sha1"], weak["ca"])  # still recognised as ours, so the reason is the hash
    assert reissue_reason(weak["sha1"], keys["ecdsa-p256"], weak["ca"], ["reg.example.com"], now=NOW) == (
        "uses SHA-1"
    )
    assert cert_info(weak["small_leaf"]).key_type == "rsa-1024"
    reason = reissue_reason(weak["small_leaf"], weak["small_key"], weak["ca"], ["reg.example.com"], now=NOW)
    assert reason == "RSA key below 2048 bits"
    with pytest.raises(PkiError, match="below 2048"):
        issue_server_cert(weak["ca"], weak["ca_key"], weak["small_key"], ["reg.example.com"], now=NOW)


# --- validation_problems -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(keys: dict[str, bytes]) -> dict[str, bytes]:
    """root -> intermediate -> leaf, as a user bringing their own PKI would have it."""
    root_key, inter_key, leaf_key = generate_key(), generate_key(), generate_key("ecdsa-p384")
    root = _intermediate_ca("Corp Root", root_key, None, root_key)
    inter = _intermediate_ca("Corp Issuing CA", inter_key, root, root_key)
    leaf = issue_server_cert(inter, inter_key, leaf_key, ["reg.corp.example", "10.0.0.5"], days=90, now=NOW)
    return {"root": root, "inter": inter, "inter_key": inter_key, "leaf": leaf, "leaf_key": leaf_key}


WANTED = ["reg.corp.example", "10.0.0.5"]


def test_validation_good_chain_with_intermediate(chain: dict[str, bytes]) -> None:
    bundle = chain["leaf"] + chain["inter"]
    assert validation_problems(bundle, chain["leaf_key"], chain["root"], WANTED, now=NOW) == []
    # Bundle order past the leaf and a root included for good measure do not matter.
    bundle = chain["leaf"] + chain["root"] + chain["inter"]
    assert validation_problems(bundle, chain["leaf_key"], chain["root"], WANTED, now=NOW) == []
    # Without a CA (a publicly trusted certificate) only what the bundle carries is checked.
    assert validation_problems(bundle, chain["leaf_key"], None, WANTED, now=NOW) == []
    assert issued_by(chain["leaf"], chain["inter"]) and not issued_by(chain["leaf"], chain["root"])


def test_validation_chain_problems(chain: dict[str, bytes], ca: tuple[bytes, bytes]) -> None:
    no_inter = validation_problems(chain["leaf"], chain["leaf_key"], chain["root"], WANTED, now=NOW)
    assert no_inter == [
        "chain does not lead to the CA: nothing in the bundle issued CN=reg.corp.example "
        "(issuer CN=Corp Issuing CA)"
    ]
    bundle = chain["leaf"] + chain["inter"]
    wrong_ca = validation_problems(bundle, chain["leaf_key"], ca[0], WANTED, now=NOW)
    assert len(wrong_ca) == 1 and wrong_ca[0].startswith("chain does not lead to the CA")
    ca_first = validation_problems(
        chain["inter"] + chain["leaf"], chain["leaf_key"], chain["root"], WANTED, now=NOW
    )
    assert "private key does not match the certificate" in ca_first
    assert any("server certificate must come first" in p for p in ca_first)


def test_validation_key_san_and_time_problems(chain: dict[str, bytes], keys: dict[str, bytes]) -> None:
    bundle = chain["leaf"] + chain["inter"]
    root = chain["root"]
    assert validation_problems(bundle, keys["ecdsa-p256"], root, WANTED, now=NOW) == [
        "private key does not match the certificate"
    ]
    assert validation_problems(bundle, b"junk", root, WANTED, now=NOW) == [
        "private key cannot be read (not a PEM private key)"
    ]
    assert validation_problems(bundle, chain["leaf_key"], root, [*WANTED, "reg2.corp.example"], now=NOW) == [
        "SANs miss reg2.corp.example"
    ]
    late = NOW + timedelta(days=91)
    assert validation_problems(bundle, chain["leaf_key"], root, WANTED, now=late) == [
        "expired on 2026-05-30 12:00 UTC"
    ]
    soon = NOW + timedelta(days=80)
    assert validation_problems(bundle, chain["leaf_key"], root, WANTED, now=soon) == [
        "expires in 10 days (renew_before 30)"
    ]
    assert validation_problems(b"no pem here", chain["leaf_key"], root, WANTED, now=NOW) == [
        "certificate chain: no PEM certificate found"
    ]


def test_validation_encrypted_key(chain: dict[str, bytes]) -> None:
    encrypted = load_private_key(chain["leaf_key"]).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"leaf-pass"),
    )
    bundle = chain["leaf"] + chain["inter"]
    assert (
        validation_problems(bundle, encrypted, chain["root"], WANTED, now=NOW, passphrase=b"leaf-pass") == []
    )
    assert validation_problems(bundle, encrypted, chain["root"], WANTED, now=NOW) == [
        "private key is encrypted and no passphrase was given"
    ]


def test_validation_weak_crypto(weak: dict[str, bytes], keys: dict[str, bytes]) -> None:
    wanted = ["reg.example.com"]
    assert validation_problems(weak["sha1"], keys["ecdsa-p256"], weak["ca"], wanted, now=NOW) == [
        "uses SHA-1"
    ]
    assert validation_problems(weak["small_leaf"], weak["small_key"], weak["ca"], wanted, now=NOW) == [
        "RSA key below 2048 bits"
    ]


# --- cross-check with openssl --------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not on PATH")
def test_openssl_verifies_leaf_and_chain(
    tmp_path: Path, keys: dict[str, bytes], chain: dict[str, bytes]
) -> None:
    # Real time here: openssl checks validity against its own clock.
    ca_key = generate_key()
    ca_pem = make_ca(ca_key)
    leaf = issue_server_cert(ca_pem, ca_key, keys["rsa-2048"], ["reg.example.com", "10.0.0.5"])
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    (tmp_path / "leaf.pem").write_bytes(leaf)
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", "ca.pem", "-purpose", "sslserver",
         "-verify_hostname", "reg.example.com", "leaf.pem"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    wrong_ip = subprocess.run(
        ["openssl", "verify", "-CAfile", "ca.pem", "-verify_ip", "10.0.0.6", "leaf.pem"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert wrong_ip.returncode != 0
    # The intermediate chain too, at the fixed time it was built for.
    (tmp_path / "root.pem").write_bytes(chain["root"])
    (tmp_path / "inter.pem").write_bytes(chain["inter"])
    (tmp_path / "corp.pem").write_bytes(chain["leaf"])
    corp = subprocess.run(
        ["openssl", "verify", "-CAfile", "root.pem", "-untrusted", "inter.pem",
         "-attime", str(int(NOW.timestamp())), "corp.pem"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert corp.returncode == 0, corp.stdout + corp.stderr
