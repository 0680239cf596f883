"""TlsIssuer: every tls.mode's material, renewal with its reason, and refusals of bad user material."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from regdeploy import pki
from regdeploy.certs.issue import TlsIssuer, ca_expiry_warning
from regdeploy.certs.notices import tls_warnings
from regdeploy.certs.show import host_certs
from regdeploy.errors import SpecError
from regdeploy.materials.host import TlsMaterial, host_sans
from regdeploy.materials.secrets import Masker, SecretResolver
from regdeploy.materials.state import StateStore
from regdeploy.spec.registry import RegistrySpec, parse_spec

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
LOCAL = {"ansible_connection": "local"}


class World:
    """A state store, a resolver with its own environment, and issuers at chosen moments."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = StateStore(tmp / ".regdeploy")
        self.env: dict[str, str] = {}
        self.resolver = SecretResolver(self.state, Masker(), environ=self.env)

    def spec(self, tls: dict[str, Any], host: str = "localhost", **raw: Any) -> RegistrySpec:
        return parse_spec(host, {"tls": tls, **raw})

    def material(
        self, spec: RegistrySpec, now: datetime = NOW, host_vars: dict[str, Any] | None = None, **kw: Any
    ) -> TlsMaterial:
        sans = host_sans(spec.host, LOCAL if host_vars is None else host_vars, spec)
        material = TlsIssuer(self.state, self.resolver, now=now).material(spec, sans, **kw)
        assert material is not None
        return material

    def file(self, name: str, data: bytes) -> str:
        path = self.tmp / name
        path.write_bytes(data)
        return str(path)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def org_ca(days: int = 3650, now: datetime = NOW, cn: str = "Org Root") -> tuple[bytes, bytes]:
    key = pki.generate_key()
    return pki.make_ca(key, cn, days=days, now=now), key


def leaf(ca: tuple[bytes, bytes], sans: list[str], key: bytes | None = None, days: int = 397,
         now: datetime = NOW) -> tuple[bytes, bytes]:  # fmt: skip
    key = key or pki.generate_key()
    return pki.issue_server_cert(ca[0], ca[1], key, sans, days=days, now=now), key


# --- selfsigned -------------------------------------------------------------------------------------


def test_selfsigned_issues_once_and_keeps(world: World) -> None:
    spec = world.spec({"sans": ["reg.example.com", "10.0.0.5"]})
    first = world.material(spec)
    assert first.issued and first.reason == "no certificate yet"
    info = pki.cert_info(first.server_chain)
    assert set(info.sans) == {"localhost", "127.0.0.1", "reg.example.com", "10.0.0.5"}
    assert pki.issued_by(first.server_chain, first.ca_cert)
    assert pki.key_matches_cert(first.server_key, first.server_chain)
    world.state.commit()
    again = world.material(spec, NOW + timedelta(days=10))
    assert not again.issued
    assert again.server_chain == first.server_chain and again.server_key == first.server_key
    # The reason is remembered with the certificate, so a later `up` that deploys it can say why.
    assert again.reason == "no certificate yet"
    for key in ("ca/ca.key", "hosts/localhost/server.key"):
        assert stat.S_IMODE((world.tmp / ".regdeploy" / key).stat().st_mode) == 0o600


def test_renewal_within_window_keeps_the_key(world: World) -> None:
    spec = world.spec({"days": 30, "renew_before": 5})
    first = world.material(spec)
    assert not world.material(spec, NOW + timedelta(days=24)).issued
    renewed = world.material(spec, NOW + timedelta(days=26))
    assert renewed.issued
    assert renewed.reason == "certificate expires in 4 days (renew_before 5)"
    assert renewed.server_key == first.server_key  # keys are kept unless rotated
    assert renewed.server_chain != first.server_chain


def test_sans_change_ca_change_and_key_type_change_reissue(world: World) -> None:
    spec = world.spec({"sans": ["a.example.com"]})
    world.material(spec)
    wider = world.material(world.spec({"sans": ["a.example.com", "b.example.com"]}))
    assert wider.issued and wider.reason == "SANs miss b.example.com"
    # A new CA (the state's CA replaced) makes every host certificate foreign.
    world.state.write("ca/ca.key", pki.generate_key())
    world.state.write("ca/ca.crt", pki.make_ca(world.state.read("ca/ca.key") or b"", now=NOW))
    moved = world.material(spec)
    assert moved.reason == "CA changed"
    rsa = world.material(world.spec({"sans": ["a.example.com"], "key_type": "rsa-2048"}))
    assert rsa.reason == "key type ecdsa-p256 -> rsa-2048"
    assert pki.cert_info(rsa.server_chain).key_type == "rsa-2048"


def test_rotate_keys_and_force(world: World) -> None:
    spec = world.spec({})
    first = world.material(spec)
    forced = world.material(spec, force=True)
    assert forced.reason == "renewal forced (--force)" and forced.server_key == first.server_key
    rotated = world.material(spec, rotate_keys=True)
    assert rotated.reason == "key rotated (--rotate-keys)"
    assert rotated.server_key != first.server_key
    assert pki.key_matches_cert(rotated.server_key, rotated.server_chain)


def test_ca_expiry_caps_renewal_and_warns(world: World) -> None:
    spec = world.spec({"ca_days": 40, "days": 397, "renew_before": 30})
    first = world.material(spec)
    ca_end = pki.cert_info(first.ca_cert).not_after
    assert pki.cert_info(first.server_chain).not_after == ca_end  # a leaf never outlives its CA
    assert any("regdeploy's CA expires on" in w for w in first.warnings)
    # Within the renewal window, but renewing cannot help: no churn, a warning instead.
    later = world.material(spec, NOW + timedelta(days=20))
    assert not later.issued
    assert any("renewing cannot extend it" in w for w in later.warnings)


def test_ca_expiry_warning_thresholds() -> None:
    ca, _ = org_ca(days=400)
    assert ca_expiry_warning(ca, "CA", 30, NOW) is None
    soon = ca_expiry_warning(ca, "CA", 30, NOW + timedelta(days=300))
    assert soon is not None and "in 99 days" in soon
    gone = ca_expiry_warning(ca, "CA", 30, NOW + timedelta(days=401))
    assert gone is not None and "expired" in gone


# --- ca (organisation CA) ---------------------------------------------------------------------------


def test_ca_mode_with_passphrase_protected_key(world: World) -> None:
    ca_cert, ca_key = org_ca()
    encrypted = pki.load_private_key(ca_key).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"org-ca-passphrase"),
    )
    tls = {"mode": "ca", "ca_cert": {"file": world.file("org.crt", ca_cert)},
           "ca_key": {"file": world.file("org.key", encrypted)}}  # fmt: skip
    with pytest.raises(SpecError, match=r"no passphrase.*set registry.tls.ca_key_passphrase"):
        world.material(world.spec(tls))
    world.env["ORG_CA_PASS"] = "wrong-passphrase"
    spec = world.spec({**tls, "ca_key_passphrase": {"env": "ORG_CA_PASS"}})
    with pytest.raises(SpecError, match="wrong passphrase") as wrong:
        world.material(spec)
    assert "wrong-passphrase" not in str(wrong.value)
    world.env["ORG_CA_PASS"] = "org-ca-passphrase"
    material = world.material(spec)
    assert material.ca_cert == ca_cert
    assert pki.issued_by(material.server_chain, ca_cert)
    # The org CA never lands in the state store: only the host's key and certificate do.
    assert world.state.read("ca/ca.key") is None


def test_ca_mode_with_intermediate_sends_it_and_trusts_the_root(world: World) -> None:
    root = org_ca(cn="Org Root")
    inter_key = pki.generate_key()
    csr = pki.make_csr(inter_key, ["unused.example"], common_name="Org Issuing")
    # sign_csr makes leaves only; build the intermediate with cryptography's builder instead.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    request = x509.load_pem_x509_csr(csr)
    root_cert = x509.load_pem_x509_certificate(root[0])
    inter = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Org Issuing")]))
        .issuer_name(root_cert.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1000))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(request.public_key()), critical=False)
        .sign(pki.load_private_key(root[1]), hashes.SHA256())  # type: ignore[arg-type]
    )
    inter_pem = inter.public_bytes(serialization.Encoding.PEM)
    tls = {"mode": "ca", "ca_cert": {"file": world.file("bundle.crt", inter_pem + root[0])},
           "ca_key": {"file": world.file("inter.key", inter_key)}}  # fmt: skip
    spec = world.spec(tls)
    material = world.material(spec)
    certs = pki.split_chain(material.server_chain)
    assert len(certs) == 2 and certs[1] == inter_pem  # leaf + intermediate, never the root
    assert material.ca_cert == root[0]
    # `certs show` follows the same path: root -> intermediate -> leaf is fine, deployed or not.
    deployed = {f"{spec.config_dir}/certs/server.crt": material.server_chain}
    sans = host_sans("localhost", LOCAL, spec)
    shown = host_certs(spec, sans, world.state, world.resolver, NOW, deployed.get)
    assert [v.status for v in shown.views] == ["ok", "ok", "ok"]


# --- provided ---------------------------------------------------------------------------------------


def provided(world: World, chain: bytes, key: bytes, **extra: Any) -> RegistrySpec:
    return world.spec({"mode": "provided", "cert": {"file": world.file("chain.pem", chain)},
                       "key": {"file": world.file("key.pem", key)}, **extra})  # fmt: skip


def test_provided_good_chain_deploys_as_given(world: World) -> None:
    ca = org_ca()
    cert, key = leaf(ca, ["localhost", "127.0.0.1"])
    material = world.material(provided(world, cert + ca[0], key))
    assert material.ca_cert == ca[0] and material.server_key == key and material.reason is None


@pytest.mark.parametrize("case", ["sans", "key", "other-ca", "expired"])
def test_provided_bad_material_is_refused_with_a_clear_message(world: World, case: str) -> None:
    ca = org_ca()
    other = org_ca(cn="Another CA")
    cert, key = leaf(ca, ["localhost", "127.0.0.1"])
    ca_file = {"ca_cert": {"file": world.file("ca.pem", ca[0])}}
    if case == "sans":
        cert, key = leaf(ca, ["localhost"])
        spec, expected = provided(world, cert, key, **ca_file), "SANs miss 127.0.0.1"
    elif case == "key":
        spec, expected = provided(world, cert, pki.generate_key(), **ca_file), "private key does not match"
    elif case == "other-ca":
        cert, key = leaf(other, ["localhost", "127.0.0.1"])
        spec, expected = provided(world, cert, key, **ca_file), "chain does not lead to the CA"
    else:
        cert, key = leaf(ca, ["localhost", "127.0.0.1"], days=10, now=NOW - timedelta(days=20))
        spec, expected = provided(world, cert, key, **ca_file), "expired on"
    with pytest.raises(SpecError) as refused:
        world.material(spec)
    message = str(refused.value)
    assert message.startswith("host 'localhost': registry.tls: provided certificate (file:")
    assert "refused: " in message and expected in message
    assert "PRIVATE KEY" not in message and "\n" not in message


def test_provided_bundle_from_two_cas_is_refused_without_ca_cert(world: World) -> None:
    # No tls.ca_cert: the root the bundle ends with is the anchor, so a mismatched bundle shows.
    ca, other = org_ca(), org_ca(cn="Another CA")
    cert, key = leaf(other, ["localhost", "127.0.0.1"])
    with pytest.raises(SpecError, match="chain does not lead to the CA"):
        world.material(provided(world, cert + ca[0], key))


def test_provided_within_renewal_window_is_refused(world: World) -> None:
    ca = org_ca()
    cert, key = leaf(ca, ["localhost", "127.0.0.1"], days=20)
    with pytest.raises(SpecError, match=r"expires in 20 days \(renew_before 30\)"):
        world.material(provided(world, cert + ca[0], key))


# --- none, letsencrypt ------------------------------------------------------------------------------


def test_none_and_letsencrypt_have_no_files_and_warn(world: World) -> None:
    none = world.spec({"mode": "none", "insecure": True})
    assert TlsIssuer(world.state, world.resolver).material(none, ["x"]) is None
    assert "plain HTTP" in tls_warnings(none, None)[0]
    acme = world.spec({"mode": "letsencrypt", "letsencrypt": {"email": "ops@example.com",
                                                              "hosts": ["reg.example.com"]}})  # fmt: skip
    assert TlsIssuer(world.state, world.resolver).material(acme, ["x"]) is None
    assert "port 443" in tls_warnings(acme, None)[0]
    on_443 = world.spec({"mode": "letsencrypt", "letsencrypt": {"email": "ops@example.com",
                         "hosts": ["reg.example.com"]}}, port=443)  # fmt: skip
    assert tls_warnings(on_443, None) == []
