"""The csr workflow: CSR per host with its SANs, import checks, pending keys, then `up`'s material."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from regdeploy import pki
from regdeploy.certs.csr import import_chain, make_host_csr
from regdeploy.certs.issue import TlsIssuer
from regdeploy.errors import SpecError
from regdeploy.materials.host import host_sans
from regdeploy.materials.secrets import Masker, SecretResolver
from regdeploy.materials.state import StateStore
from regdeploy.spec.registry import RegistrySpec, parse_spec


def now() -> datetime:
    """The real time at the call: the certificates here are made with the real clock (backdated by a
    few minutes), so a time taken at collection goes stale when other tests run first."""
    return datetime.now(UTC)

VARS = {"ansible_host": "10.0.0.7"}


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / ".regdeploy")


@pytest.fixture
def external_ca() -> tuple[bytes, bytes]:
    key = pki.generate_key()
    return pki.make_ca(key, "Corp CA"), key


def csr_spec(**tls: object) -> RegistrySpec:
    return parse_spec("reg1", {"tls": {"mode": "csr", "sans": ["reg1.corp.example"], **tls}})


def resolver(state: StateStore) -> SecretResolver:
    return SecretResolver(state, Masker(), environ={})


def sign(csr: bytes, ca: tuple[bytes, bytes], days: int = 397) -> bytes:
    return pki.sign_csr(csr, ca[0], ca[1], days=days)


def test_csr_carries_every_san_and_keeps_the_key(state: StateStore) -> None:
    spec = csr_spec()
    sans = host_sans("reg1", VARS, spec)
    result = make_host_csr(state, spec, sans)
    request = x509.load_pem_x509_csr(result.csr)
    names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n.value) for n in names} == {"reg1", "10.0.0.7", "reg1.corp.example"}
    key = state.read("hosts/reg1/next.key")
    assert key is not None and b"PRIVATE KEY" not in result.csr
    # Asking again before the import gives a CSR for the same key.
    again = make_host_csr(state, spec, sans)
    assert x509.load_pem_x509_csr(again.csr).public_key() == request.public_key()
    assert "pending key" in again.key_note


def test_import_then_material(state: StateStore, external_ca: tuple[bytes, bytes]) -> None:
    spec = csr_spec()
    sans = host_sans("reg1", VARS, spec)
    with pytest.raises(SpecError, match="no signed certificate imported yet"):
        TlsIssuer(state, resolver(state)).material(spec, sans)
    csr = make_host_csr(state, spec, sans).csr
    chain = sign(csr, external_ca) + external_ca[0]
    result = import_chain(state, resolver(state), spec, sans, chain, now())
    assert result.info.issuer == "CN=Corp CA"
    material = TlsIssuer(state, resolver(state)).material(spec, sans)
    assert material is not None
    assert material.ca_cert == external_ca[0]  # the root the bundle ends with
    assert pki.key_matches_cert(material.server_key, material.server_chain)
    assert material.reason == "certificate imported (certs import)"


@pytest.mark.parametrize("case", ["wrong-key", "sans", "other-ca", "expired", "garbage"])
def test_import_refusals(state: StateStore, external_ca: tuple[bytes, bytes], case: str) -> None:
    other_key = pki.generate_key()
    other = (pki.make_ca(other_key, "Other CA"), other_key)
    spec = csr_spec()
    sans = host_sans("reg1", VARS, spec)
    csr = make_host_csr(state, spec, sans).csr
    if case == "wrong-key":
        chain, expected = sign(pki.make_csr(pki.generate_key(), sans), external_ca), "not for this host's key"
    elif case == "sans":
        # A CA that "helpfully" drops a SAN: re-request with fewer names for the same key.
        key = state.read("hosts/reg1/next.key")
        assert key is not None
        chain, expected = sign(pki.make_csr(key, ["reg1"]), external_ca), "SANs miss 10.0.0.7"
    elif case == "other-ca":
        chain, expected = sign(csr, other) + external_ca[0], "chain does not lead to the CA"
    elif case == "expired":
        key = state.read("hosts/reg1/next.key")
        assert key is not None
        old = pki.issue_server_cert(external_ca[0], external_ca[1], key, sans, days=5,
                                    now=now() - timedelta(days=10))  # fmt: skip
        chain, expected = old, "expired on"
    else:
        chain, expected = b"not a certificate", "no PEM certificate found"
    with pytest.raises(SpecError) as refused:
        import_chain(state, resolver(state), spec, sans, chain, now())
    assert expected in str(refused.value)
    assert str(refused.value).startswith("host 'reg1': certs import")
    assert state.read("hosts/reg1/imported.crt") is None


def test_rotation_keeps_serving_until_the_new_chain_is_imported(
    state: StateStore, external_ca: tuple[bytes, bytes]
) -> None:
    spec = csr_spec()
    sans = host_sans("reg1", VARS, spec)
    import_chain(state, resolver(state), spec, sans,
                 sign(make_host_csr(state, spec, sans).csr, external_ca) + external_ca[0], now())  # fmt: skip
    serving = TlsIssuer(state, resolver(state)).material(spec, sans)
    assert serving is not None
    rotated = make_host_csr(state, spec, sans, rotate_key=True)
    assert "new key" in rotated.key_note
    still = TlsIssuer(state, resolver(state)).material(spec, sans)
    assert still is not None and still.server_key == serving.server_key  # the old pair still deploys
    result = import_chain(state, resolver(state), spec, sans, sign(rotated.csr, external_ca), now())
    assert result.new_key
    after = TlsIssuer(state, resolver(state)).material(spec, sans)
    assert after is not None and after.server_key != serving.server_key


def test_csr_commands_need_csr_mode(state: StateStore) -> None:
    spec = parse_spec("reg1", {"tls": {"mode": "selfsigned"}})
    with pytest.raises(SpecError, match="is for mode csr"):
        make_host_csr(state, spec, ["reg1"])
    with pytest.raises(SpecError, match="is for mode csr"):
        import_chain(state, resolver(state), spec, ["reg1"], b"", now())
