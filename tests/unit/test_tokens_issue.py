"""Signing material and tokens: libtrust kid, x5c chain, the claims distribution checks."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from regdeploy.errors import InputError
from regdeploy.pki.build import issue_server_cert, make_ca
from regdeploy.pki.keys import generate_key
from regdeploy.tokens.issue import issue_token, libtrust_kid, load_signing, rfc3339
from regdeploy.tokens.scope import Scope

# A throwaway P-256 key made for this test only; its libtrust kid was computed outside Python with
#   openssl pkey -in k.pem -pubout -outform DER | openssl dgst -sha256 -binary | head -c 30 \
#     | base32 -w0 | fold -w4 | paste -sd:
FIXED_KEY = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9WOXIC1T5Yjx/iAI
EaIq+I7Wm3ykiVq8zVVoHyg0XkqhRANCAASDiMNP5zcUCYypVG6s5YPZNH5anhfw
sfDvbBgN6W6nu3CcNzPxXNTgRHz0IZbnjekiVpf0+OWPf/nVFX4Hr6XQ
-----END PRIVATE KEY-----
"""
FIXED_KID = "CSJX:WTL6:KHQ6:46FW:TNJ5:KLLN:MHOG:DD3Y:M6A7:VO2K:MVA5:SZCU"


def test_libtrust_kid_known_answer():
    key = serialization.load_pem_private_key(FIXED_KEY, None)
    assert libtrust_kid(key.public_key()) == FIXED_KID


def test_libtrust_kid_matches_openssl_for_a_new_key(tmp_path):
    pem = generate_key()
    (tmp_path / "k.pem").write_bytes(pem)
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(tmp_path / "k.pem"), "-pubout", "-outform", "DER"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    expected = ":".join(text[i : i + 4] for i in range(0, 48, 4))
    assert libtrust_kid(serialization.load_pem_private_key(pem, None).public_key()) == expected
    assert len(expected.split(":")) == 12


@pytest.fixture
def material(tmp_path):
    ca_key = generate_key()
    ca = make_ca(ca_key, "token CA")
    key = generate_key()
    leaf = issue_server_cert(ca, ca_key, key, ["regdeploy-token"])
    (tmp_path / "signing.key").write_bytes(key)
    (tmp_path / "signing.crt").write_bytes(leaf + ca)
    return tmp_path, key, leaf, ca, ca_key


def test_load_signing(material):
    tmp, key, leaf, *_ = material
    signing = load_signing(tmp / "signing.key", tmp / "signing.crt")
    assert len(signing.chain) == 2
    assert (
        signing.x5c[0]
        == base64.b64encode(
            x509.load_pem_x509_certificate(leaf).public_bytes(serialization.Encoding.DER)
        ).decode()
    )
    assert signing.kid == libtrust_kid(serialization.load_pem_private_key(key, None).public_key())


def test_chain_of_another_key_is_refused(material):
    tmp, _, _, ca, ca_key = material
    other = issue_server_cert(ca, ca_key, generate_key(), ["x"])
    (tmp / "signing.crt").write_bytes(other + ca)
    with pytest.raises(InputError, match=r"signing.crt: the first certificate is not the signing key's"):
        load_signing(tmp / "signing.key", tmp / "signing.crt")
    (tmp / "signing.crt").write_bytes(ca)  # the CA alone, leaf forgotten
    with pytest.raises(InputError, match=r"the first certificate is not the signing key's"):
        load_signing(tmp / "signing.key", tmp / "signing.crt")


def test_key_must_be_p256(material):
    tmp, *_ = material
    (tmp / "signing.key").write_bytes(generate_key("ecdsa-p384"))
    with pytest.raises(InputError, match=r"signing.key: the signing key must be EC P-256"):
        load_signing(tmp / "signing.key", tmp / "signing.crt")
    (tmp / "signing.key").write_bytes(b"junk")
    with pytest.raises(InputError, match=r"signing.key: not an unencrypted PEM private key"):
        load_signing(tmp / "signing.key", tmp / "signing.crt")
    (tmp / "signing.key").unlink()
    with pytest.raises(InputError, match=r"signing.key: signing key not found"):
        load_signing(tmp / "signing.key", tmp / "signing.crt")


def test_expired_chain_is_refused(material):
    tmp, *_ = material
    later = datetime.now(UTC) + timedelta(days=4000)
    with pytest.raises(InputError, match=r"signing.crt: certificate .* expired on"):
        load_signing(tmp / "signing.key", tmp / "signing.crt", now=later)


def test_token_header_and_claims(material):
    tmp, key, *_ = material
    signing = load_signing(tmp / "signing.key", tmp / "signing.crt")
    access = [Scope("repository", "alice/app", ("pull", "push")), Scope("repository", "bob/x", ())]
    token = issue_token(
        signing, issuer="regdeploy-token", service="reg1:5000", account="alice", access=access,
        expiry=300, now=1_800_000_000,
    )  # fmt: skip
    header = jwt.get_unverified_header(token)
    assert header == {"typ": "JWT", "alg": "ES256", "kid": signing.kid, "x5c": list(signing.x5c)}
    public = serialization.load_pem_private_key(key, None).public_key()
    claims = jwt.decode(
        token,
        public,
        algorithms=["ES256"],
        audience="reg1:5000",
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    jti = claims.pop("jti")
    assert len(jti) >= 16
    assert claims == {
        "iss": "regdeploy-token",
        "sub": "alice",
        "aud": "reg1:5000",  # a string, never a list
        "exp": 1_800_000_300,
        "nbf": 1_799_999_999,
        "iat": 1_800_000_000,
        "access": [
            {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]},
            {"type": "repository", "name": "bob/x", "actions": []},
        ],
    }


def test_each_token_has_its_own_jti(material):
    tmp, *_ = material
    signing = load_signing(tmp / "signing.key", tmp / "signing.crt")
    make = lambda: issue_token(  # noqa: E731
        signing, issuer="i", service="s", account="", access=[], expiry=60, now=1_800_000_000
    )
    first, second = (jwt.decode(t, options={"verify_signature": False})["jti"] for t in (make(), make()))
    assert first != second


def test_rfc3339():
    assert rfc3339(1_800_000_000) == "2027-01-15T08:00:00Z"
