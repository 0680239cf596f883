"""The token endpoint's request logic, called as WSGI: both flows, errors, and what gets logged."""

from __future__ import annotations

import base64
import io
import json
import time
from urllib.parse import urlencode

import bcrypt
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from regdeploy.pki.build import issue_server_cert, make_ca
from regdeploy.pki.keys import generate_key
from regdeploy.tokens.acl import AclEntry
from regdeploy.tokens.app import MAX_BODY_BYTES, TokenApp, printable
from regdeploy.tokens.issue import load_signing
from regdeploy.tokens.oidc import OidcProvider, OidcVerifier
from regdeploy.tokens.users import UserFile

SERVICE = "reg1:5000"
OIDC_ISSUER = "https://ci.example.test"
PASSWORD = "s3cret-password"
ACL = (
    AclEntry("admin", "*", ("*",)),
    AclEntry("", "public/*", ("pull",)),
    AclEntry("*", "${account}/*", ("pull", "push", "delete")),
    AclEntry("*", "catalog", ("*",), type="registry"),
)
NOW = 1_900_000_000


class Client:
    def __init__(self, app):
        self.app = app

    def __call__(
        self, method="GET", path="/token", query=None, auth=None, body=None, content_type=None, **env
    ):
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": urlencode(query or {}, doseq=True),
            "wsgi.input": io.BytesIO(body or b""),
        }
        if auth is not None:
            environ["HTTP_AUTHORIZATION"] = (
                "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            )
        if body is not None:
            environ["CONTENT_LENGTH"] = str(len(body))
            environ["CONTENT_TYPE"] = content_type or "application/x-www-form-urlencoded"
        environ.update(env)
        got = {}

        def start_response(status, headers):
            got["status"], got["headers"] = status, dict(headers)

        payload = b"".join(self.app(environ, start_response))
        assert got["headers"]["Content-Length"] == str(len(payload))
        return int(got["status"].split()[0]), got["headers"], json.loads(payload)

    def get(self, *scopes, auth=None, service=SERVICE, **extra):
        return self(query={"service": service, "scope": list(scopes), **extra}, auth=auth)

    def post(self, *, scope="", service=SERVICE, **form):
        fields = {"service": service, "scope": scope, "client_id": "containerd", **form}
        return self("POST", body=urlencode(fields).encode())


@pytest.fixture(scope="module")
def signing(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("signing")
    ca_key = generate_key()
    ca = make_ca(ca_key)
    key = generate_key()
    (tmp / "k.pem").write_bytes(key)
    (tmp / "c.pem").write_bytes(issue_server_cert(ca, ca_key, key, ["signer"]) + ca)
    return load_signing(tmp / "k.pem", tmp / "c.pem")


@pytest.fixture
def oidc_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def make_app(tmp_path, signing, oidc_key):
    users = tmp_path / "users"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    users.write_text(f"alice:{hashed}\nadmin:{hashed}\n")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(
        json.dumps({"keys": [{**ECAlgorithm.to_jwk(oidc_key.public_key(), as_dict=True), "kid": "k"}]})
    )
    provider = OidcProvider(
        OIDC_ISSUER, jwks, SERVICE, "${claims.repository}", (("repository_owner", "acme"),)
    )
    logged: list[str] = []

    def make(anonymous=False):
        app = TokenApp(
            service=SERVICE, issuer="regdeploy-token", expiry=300, anonymous=anonymous, acl=ACL,
            signing=signing, users=UserFile(users, logged.append),
            oidc=OidcVerifier([provider], logged.append), log=logged.append, clock=lambda: NOW,
        )  # fmt: skip
        return Client(app), logged

    return make


def claims_of(body):
    return jwt.decode(body["token"], options={"verify_signature": False})


def access_of(body):
    return {(a["type"], a["name"]): a["actions"] for a in claims_of(body)["access"]}


def ci_jwt(key, **claims):
    now = int(time.time())
    body = {"iss": OIDC_ISSUER, "aud": SERVICE, "iat": now, "exp": now + 300, "repository": "acme/app",
            "repository_owner": "acme", **claims}  # fmt: skip
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": "k"})


def test_get_with_basic_auth_grants_the_acl_subset(make_app):
    client, logged = make_app()
    status, headers, body = client.get(
        "repository:alice/app:pull,push", "repository:bob/app:pull", auth=("alice", PASSWORD),
        account="alice", offline_token="true", client_id="docker",
    )  # fmt: skip
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert body["issued_at"] == "2030-03-17T17:46:40Z"
    assert "refresh_token" not in body
    assert access_of(body) == {("repository", "alice/app"): ["pull", "push"], ("repository", "bob/app"): []}
    c = claims_of(body)
    assert (c["sub"], c["aud"], c["iss"], c["exp"] - c["iat"]) == ("alice", SERVICE, "regdeploy-token", 300)
    assert logged == [
        "token: GET alice repository:alice/app:pull,push repository:bob/app:pull"
        " -> granted repository:alice/app:pull,push"
    ]


def test_login_without_scope(make_app):
    client, logged = make_app()
    status, _, body = client.get(auth=("admin", PASSWORD))
    assert status == 200
    assert claims_of(body)["access"] == []
    assert logged == ["token: GET admin (login) -> granted nothing"]


def test_catalog(make_app):
    client, _ = make_app()
    assert access_of(client.get("registry:catalog:*", auth=("alice", PASSWORD))[2]) == {
        ("registry", "catalog"): ["*"]
    }


def test_bad_password_is_401_with_a_basic_challenge(make_app):
    client, logged = make_app()
    status, headers, body = client.get("repository:alice/app:pull", auth=("alice", "wrong"))
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="regdeploy-token"'
    assert body["errors"][0]["code"] == "UNAUTHORIZED"
    assert logged == ["token: refused (bad credentials for alice)"]
    assert client.get(auth=("nobody", PASSWORD))[0] == 401


def test_no_credentials(make_app):
    client, logged = make_app(anonymous=False)
    status, headers, _ = client.get("repository:public/x:pull")
    assert status == 401
    assert "WWW-Authenticate" in headers
    assert logged == ["token: refused (no credentials, anonymous access is off)"]

    client, logged = make_app(anonymous=True)
    status, _, body = client.get("repository:public/x:pull,push", "repository:alice/x:pull")
    assert status == 200
    assert claims_of(body)["sub"] == ""
    assert access_of(body) == {("repository", "public/x"): ["pull"], ("repository", "alice/x"): []}
    assert logged[-1] == (
        "token: GET anonymous repository:public/x:pull,push repository:alice/x:pull"
        " -> granted repository:public/x:pull"
    )
    # empty Basic credentials read as none; wrong ones are still refused, never downgraded to anonymous
    assert client.get(auth=("", ""))[0] == 200
    assert client.get(auth=("alice", "wrong"))[0] == 401


def test_malformed_authorization(make_app):
    client, logged = make_app(anonymous=True)
    assert client(query={"service": SERVICE}, HTTP_AUTHORIZATION="Bearer abc")[0] == 401
    assert client(query={"service": SERVICE}, HTTP_AUTHORIZATION="Basic !!!")[0] == 401
    no_colon = base64.b64encode(b"alice").decode()
    assert client(query={"service": SERVICE}, HTTP_AUTHORIZATION=f"Basic {no_colon}")[0] == 401
    assert logged == ["token: refused (malformed credentials)"] * 3


def test_wrong_or_missing_service_is_400(make_app):
    client, logged = make_app()
    status, _, body = client.get(auth=("alice", PASSWORD), service="other:5000")
    assert status == 400
    assert "reg1:5000" in body["errors"][0]["message"]
    assert client(query={}, auth=("alice", PASSWORD))[0] == 400
    assert logged == ["token: refused (wrong service other:5000)", "token: refused (wrong service (none))"]


def test_post_password_grant(make_app):
    client, _ = make_app()
    status, _, body = client.post(
        grant_type="password", username="alice", password=PASSWORD,
        scope="repository:alice/app:pull,push repository:admin/x:pull",
    )  # fmt: skip
    assert status == 200
    assert body["access_token"] and "refresh_token" not in body
    assert access_of(body) == {("repository", "alice/app"): ["pull", "push"], ("repository", "admin/x"): []}
    assert client.post(grant_type="password", username="alice", password="bad")[0] == 401
    assert client.post(grant_type="password", username="alice")[0] == 400


def test_post_refresh_token_is_unsupported(make_app):
    client, logged = make_app()
    status, _, body = client.post(grant_type="refresh_token", refresh_token="x")
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    assert client.post()[2]["error"] == "unsupported_grant_type"
    assert logged[0] == "token: refused (unsupported grant_type refresh_token)"


def test_post_wrong_service_and_content_type(make_app):
    client, _ = make_app()
    status, _, body = client.post(grant_type="password", username="alice", password=PASSWORD, service="x")
    assert (status, body["error"]) == (400, "invalid_request")
    assert client("POST", body=b"{}", content_type="application/json")[0] == 400


def test_bodies_are_bounded(make_app):
    client, _ = make_app()
    assert client("POST", body=b"a=" + b"x" * MAX_BODY_BYTES)[0] == 413
    # a lying Content-Length is refused before reading
    assert client("POST", body=b"a=b", CONTENT_LENGTH=str(10 * MAX_BODY_BYTES))[0] == 413
    assert client("POST", body=b"&".join(b"a=b" for _ in range(100)))[0] == 400  # too many fields


def test_routes_and_methods(make_app):
    client, _ = make_app()
    assert client(path="/")[0] == 404
    assert client(path="/v2/")[0] == 404
    status, headers, _ = client("DELETE")
    assert (status, headers["Allow"]) == (405, "GET, POST")
    assert client(path="/healthz") == (200, client(path="/healthz")[1], {"status": "ok"})


def test_oidc_jwt_as_password(make_app, oidc_key):
    client, logged = make_app()
    token = ci_jwt(oidc_key)
    status, _, body = client.get(
        "repository:acme/app/img:push,pull", "repository:alice/x:push", auth=("x", token)
    )
    assert status == 200
    assert claims_of(body)["sub"] == "acme/app"
    assert access_of(body) == {
        ("repository", "acme/app/img"): ["push", "pull"],
        ("repository", "alice/x"): [],
    }
    assert logged[-1].startswith("token: GET oidc:acme/app repository:acme/app/img:push,pull")
    # the POST flow takes it too
    assert client.post(grant_type="password", username="ci", password=token)[0] == 200


def test_refused_oidc_jwts(make_app, oidc_key):
    client, logged = make_app()
    expired = ci_jwt(oidc_key, exp=int(time.time()) - 3600)
    assert client.get(auth=("x", expired))[0] == 401
    stranger = ci_jwt(ec.generate_private_key(ec.SECP256R1()))
    assert client.get(auth=("x", stranger))[0] == 401
    assert client.get(auth=("x", ci_jwt(oidc_key, repository_owner="evil")))[0] == 401
    assert logged == [
        "token: refused (OIDC token: expired)",
        "token: refused (OIDC token: bad signature)",
        "token: refused (OIDC token: claim repository_owner does not match)",
    ]


def test_a_jwt_from_another_issuer_is_just_a_wrong_password(make_app, oidc_key):
    client, logged = make_app()
    assert client.get(auth=("alice", ci_jwt(oidc_key, iss="https://other.test")))[0] == 401
    assert logged == ["token: refused (bad credentials for alice)"]


def test_no_secret_reaches_the_log(make_app, oidc_key):
    client, logged = make_app(anonymous=True)
    issued = [client.get("repository:alice/a:pull", auth=("alice", PASSWORD))[2]["token"]]
    client.get(auth=("alice", PASSWORD + "x"))
    token = ci_jwt(oidc_key)
    issued.append(client.get(auth=("u", token))[2]["token"])
    client.get(auth=("u", ci_jwt(oidc_key, aud="nope")))
    client.post(grant_type="password", username="alice", password=PASSWORD)
    text = "\n".join(logged)
    for secret in (PASSWORD, token, *issued, token.split(".")[2]):
        assert secret not in text


def test_log_fields_cannot_inject_lines(make_app):
    client, logged = make_app()
    client.get(auth=("eve\ntoken: admin -> granted everything", "x"))
    assert len(logged) == 1 and "\n" not in logged[0]
    assert printable("a b\x1b[31m") == "a?b?[31m"
    assert len(printable("x" * 500)) == 128


def test_internal_errors_answer_500_without_details(make_app, monkeypatch):
    client, logged = make_app()
    monkeypatch.setattr(client.app, "_grant", lambda *a: 1 / 0)
    status, _, body = client.get(auth=("alice", PASSWORD))
    assert (status, body) == (500, {"errors": [{"code": "UNKNOWN", "message": "internal error"}]})
    assert logged == ["token server: internal error (ZeroDivisionError)"]
