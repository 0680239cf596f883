"""OIDC identities: a stand-in issuer makes its own keys and JWKS; its JWTs are the passwords."""

from __future__ import annotations

import json
import os
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from regdeploy.errors import InputError
from regdeploy.tokens.oidc import OidcProvider, OidcRefused, OidcVerifier, fill_account, read_jwks

ISSUER = "https://token.actions.example.test"
AUDIENCE = "reg.example.com"


class Issuer:
    """A stand-in OIDC issuer: one RSA and one EC key, published as a JWKS file."""

    def __init__(self, path):
        self.path = path
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.publish()

    def publish(self, *extra):
        keys = [
            {**RSAAlgorithm.to_jwk(self.rsa.public_key(), as_dict=True), "kid": "rsa-1", "use": "sig"},
            {**ECAlgorithm.to_jwk(self.ec.public_key(), as_dict=True), "kid": "ec-1"},
            *extra,
        ]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": keys}))
        os.replace(tmp, self.path)

    def token(self, alg="RS256", kid="rsa-1", key=None, headers=None, **claims):
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "repository": "acme/app",
            "repository_owner": "acme",
            "ref": "refs/heads/main",
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        signer = key or (self.rsa if alg.startswith("RS") else self.ec)
        header = {"kid": kid, **(headers or {})} if kid else headers
        return jwt.encode(body, signer, algorithm=alg, headers=header)


@pytest.fixture
def issuer(tmp_path):
    return Issuer(tmp_path / "jwks.json")


def provider(issuer, **overrides):
    values = {
        "issuer": ISSUER,
        "jwks": issuer.path,
        "audience": AUDIENCE,
        "account": "${claims.repository}",
        "claims": (("repository_owner", "acme"), ("ref", "refs/heads/*")),
    }
    return OidcProvider(**{**values, **overrides})


@pytest.fixture
def verifier(issuer):
    return OidcVerifier([provider(issuer)], lambda _: None)


def refused(verifier, token) -> str:
    with pytest.raises(OidcRefused) as caught:
        verifier.verify(token)
    return str(caught.value)


def test_rs256_and_es256_tokens_map_to_their_account(issuer, verifier):
    assert verifier.verify(issuer.token()) == "acme/app"
    assert verifier.verify(issuer.token(alg="ES256", kid="ec-1", repository="acme/other")) == "acme/other"


def test_only_configured_issuers_are_handled(issuer, verifier):
    assert verifier.handles(issuer.token())
    assert not verifier.handles(issuer.token(iss="https://elsewhere.test"))
    assert not verifier.handles("a plain password")
    assert not verifier.handles("not.a.jwt")
    assert not OidcVerifier([], lambda _: None).handles(issuer.token())


def test_audience_may_be_a_list(issuer, verifier):
    assert verifier.verify(issuer.token(aud=["other", AUDIENCE])) == "acme/app"


def test_wrong_audience_expired_and_future_tokens(issuer, verifier):
    now = int(time.time())
    assert refused(verifier, issuer.token(aud="other")) == "wrong audience"
    assert refused(verifier, issuer.token(exp=now - 120)) == "expired"
    assert refused(verifier, issuer.token(nbf=now + 120)) == "not yet valid"
    assert refused(verifier, issuer.token(iat=now + 120)) == "not yet valid"
    assert refused(verifier, issuer.token(exp=None)) == "missing exp, iss or aud"


def test_sixty_seconds_of_clock_skew_are_allowed(issuer, verifier):
    now = int(time.time())
    assert verifier.verify(issuer.token(exp=now - 30, nbf=now + 30, iat=now + 30)) == "acme/app"


def test_wrong_key_and_forged_algorithms_are_refused(issuer, verifier):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert refused(verifier, issuer.token(key=stranger)) == "bad signature"
    assert refused(verifier, issuer.token(kid="nope")) == "unknown signing key"
    # an RSA kid with an EC signature: the key's type decides, not the header
    assert refused(verifier, issuer.token(alg="ES256", kid="rsa-1")) == "unknown signing key"
    # HS256 with the public key as the secret (the classic confusion) and "none"
    hs = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}, "secret" * 6, "HS256")
    assert refused(verifier, hs) == "algorithm not allowed (RS256, ES256 only)"
    none = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}, None, "none")
    assert refused(verifier, none) == "algorithm not allowed (RS256, ES256 only)"
    assert refused(verifier, issuer.token(alg="RS512")) == "algorithm not allowed (RS256, ES256 only)"


def test_without_kid_only_an_unambiguous_key_is_used(issuer, verifier):
    # one RSA key in the set: a token without kid has one candidate
    assert verifier.verify(issuer.token(kid=None)) == "acme/app"
    second = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    issuer.publish({**RSAAlgorithm.to_jwk(second, as_dict=True), "kid": "rsa-2"})
    assert refused(verifier, issuer.token(kid=None)) == "no kid and several keys"
    assert verifier.verify(issuer.token(alg="ES256", kid=None)) == "acme/app"  # still the only EC key


def test_required_claims_exact_or_glob(issuer, verifier):
    assert refused(verifier, issuer.token(repository_owner="evil")) == "claim repository_owner does not match"
    assert refused(verifier, issuer.token(repository_owner=None)) == "claim repository_owner missing"
    assert refused(verifier, issuer.token(ref="refs/tags/v1")) == "claim ref does not match"
    assert verifier.verify(issuer.token(ref="refs/heads/feature/x")) == "acme/app"


def test_missing_account_claim_is_refused(issuer, verifier):
    assert refused(verifier, issuer.token(repository=None)) == "claim repository missing for the account"
    assert refused(verifier, issuer.token(repository="")) == "claim repository missing for the account"


def test_account_template():
    claims = {"repository_owner": "acme", "run": 42, "ok": True}
    assert fill_account("ci/${claims.repository_owner}-${claims.run}", claims) == "ci/acme-42"
    assert fill_account("${claims.ok}", claims) == "true"
    assert fill_account("fixed", claims) == "fixed"
    # a dotted name: the flat claim of that name first, else a path into nested objects
    assert fill_account("${claims.a.b}", {"a.b": "flat", "a": {"b": "nested"}}) == "flat"
    assert fill_account("${claims.a.b}", {"a": {"b": "nested"}}) == "nested"
    with pytest.raises(OidcRefused):
        fill_account("${claims.list}", {"list": ["a"]})


def test_first_entry_for_the_issuer_that_accepts_wins(issuer):
    main = provider(issuer, account="main:${claims.repository}", claims=(("ref", "refs/heads/main"),))
    other = provider(issuer, account="branch:${claims.repository}", claims=())
    verifier = OidcVerifier([main, other], lambda _: None)
    assert verifier.verify(issuer.token()) == "main:acme/app"
    assert verifier.verify(issuer.token(ref="refs/heads/dev")) == "branch:acme/app"


def test_rotated_jwks_is_re_read(issuer, verifier):
    old = issuer.token()
    issuer.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer.publish()
    assert refused(verifier, old) == "bad signature"
    assert verifier.verify(issuer.token()) == "acme/app"


def test_broken_jwks_refuses_until_fixed(issuer, tmp_path):
    logged: list[str] = []
    verifier = OidcVerifier([provider(issuer)], logged.append)
    issuer.path.write_text("{not json")
    assert refused(verifier, issuer.token()) == "unknown signing key"
    assert "its OIDC tokens are refused until it is fixed" in logged[0]
    issuer.publish()
    assert verifier.verify(issuer.token()) == "acme/app"


def test_jwks_file_errors_name_the_file(tmp_path):
    path = tmp_path / "jwks.json"
    with pytest.raises(InputError, match=r"jwks.json: JWKS file not found"):
        read_jwks(path)
    path.write_text("[1]")
    with pytest.raises(InputError, match=r"jwks.json: not a JWKS document"):
        read_jwks(path)
    path.write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')
    with pytest.raises(InputError, match=r"jwks.json: no RSA or EC P-256 public signing key"):
        read_jwks(path)
    path.write_text("{oops")
    with pytest.raises(InputError, match=r"jwks.json: invalid JSON"):
        read_jwks(path)
