"""The token server as a real process, in front of a real registry (2.8.2), with the real docker CLI.

`regdeploy auth serve` runs as a subprocess bound on the Docker bridge gateway (this machine's
address that is not loopback, so dockerd verifies TLS there); the registry container is published on
the same address and trusts tokens through its rootcertbundle. Two private CAs keep the two TLS
endpoints apart, which is how the test shows where dockerd looks for the realm's CA: in the
*registry's* /etc/docker/certs.d/HOST:PORT directory, never in one named after the realm.

Everything is named regdeploy-test-..., on ports of its own, and removed again: the container, the
tags, the certs.d entries, the docker logins (a private DOCKER_CONFIG each) and the server process.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from regdeploy.image.build import build_smoke_image
from regdeploy.pki.build import issue_server_cert, make_ca, make_signing_cert
from regdeploy.pki.keys import generate_key
from regdeploy.tokens.issue import issue_token, libtrust_kid, load_signing
from regdeploy.tokens.scope import Scope

pytestmark = pytest.mark.integration

CERTS_D = Path("/etc/docker/certs.d")
ISSUER = "regdeploy-test-token-issuer"
OIDC_ISSUER = "https://ci.regdeploy-test.invalid"  # never contacted: its JWKS is a file
PASSWORDS = {"alice": "alice-7c1e-password", "bob": "bob-2f9a-password", "admin": "admin-55d0-password"}


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def users_text(passwords: dict[str, str]) -> str:
    return "".join(
        f"{n}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n" for n, p in passwords.items()
    )


class TokenServer:
    """`regdeploy auth serve` as a child process; its stderr collected line by line."""

    def __init__(self, config: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "regdeploy", "auth", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in the token server's log:\n" + "\n".join(self.lines))

    def since(self, mark: int) -> list[str]:
        return self.lines[mark:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._reader.join(timeout=5)


class DockerCli:
    """The docker CLI with a private config dir: its logins never touch the user's."""

    def __init__(self, root: Path, name: str) -> None:
        self.config = root / f"docker-{name}"
        self.config.mkdir(mode=0o700)

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_CONFIG": str(self.config)}
        return subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, env=env,
                              timeout=120, check=False)  # fmt: skip

    def login(self, registry: str, user: str, password: str) -> subprocess.CompletedProcess[str]:
        return self("login", registry, "-u", user, "--password-stdin", stdin=password)


@dataclass
class Stack:
    root: Path
    gateway: str
    registry: str  # HOST:PORT as clients name it
    token_url: str
    service: str
    token_ca: bytes
    registry_ca: bytes
    chain: bytes
    signing_key: bytes
    oidc_key: ec.EllipticCurvePrivateKey
    self_signed: Path  # a second signer the registry trusts: a self-signed certificate, no CA
    server: TokenServer
    client: Any
    tags: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    @property
    def registry_certs_d(self) -> Path:
        return CERTS_D / self.registry

    def docker(self, name: str | None = None) -> DockerCli:
        return DockerCli(self.root, name or secrets.token_hex(3))

    def image(self, repository: str) -> tuple[str, str]:
        ref = f"{self.registry}/{repository}:1"
        self.tags.append(ref)
        return ref, build_smoke_image(self.client, ref)

    def token_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.token_ca.decode())

    def get_token(self, user: str | None, password: str | None, *scopes: str) -> tuple[int, dict[str, Any]]:
        query = urllib.parse.urlencode({"service": self.service, "scope": list(scopes)}, doseq=True)
        request = urllib.request.Request(f"{self.token_url}?{query}")
        if user is not None and password is not None:
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {basic}")
        return self._send(request)

    def post_token(self, **form: str) -> tuple[int, dict[str, Any]]:
        body = urllib.parse.urlencode(
            {"service": self.service, "client_id": "regdeploy-test", **form}
        ).encode()
        request = urllib.request.Request(self.token_url, data=body, method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        return self._send(request)

    def _send(self, request: urllib.request.Request) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(request, context=self.token_context(), timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def registry_get(self, path: str, token: str | None = None) -> tuple[int, dict[str, str]]:
        host, port = self.registry.rsplit(":", 1)
        context = ssl.create_default_context(cadata=self.registry_ca.decode())
        conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
            response = conn.getresponse()
            response.read()
            return response.status, dict(response.getheaders())
        finally:
            conn.close()


def _registry_config(stack_service: str, realm: str) -> dict[str, Any]:
    return {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": "/var/lib/registry"}, "delete": {"enabled": True}},
        "http": {
            "addr": ":5000",
            "tls": {"certificate": "/certs/registry.crt", "key": "/certs/registry.key"},
        },
        "auth": {
            "token": {
                "realm": realm,
                "service": stack_service,
                "issuer": ISSUER,
                "rootcertbundle": "/certs/token-signing-ca.crt",
            }
        },
    }


def _wait_for_registry(stack: Stack, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, headers = stack.registry_get("/v2/")
            if status == 401:
                assert headers["Www-Authenticate"].startswith("Bearer "), headers
                return
            last = status
        except (OSError, ssl.SSLError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"the registry did not answer /v2/ with a Bearer challenge: {last}")


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, gateway: str, docker_client: Any, registry_image: str
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("tokens")
    with socket.socket() as sock:
        try:
            sock.bind((gateway, 0))
        except OSError:
            pytest.fail(f"the docker bridge address {gateway} is not on this machine", pytrace=False)
    name = f"regdeploy-test-tokens-{secrets.token_hex(4)}"
    registry_port, token_port = free_port(gateway), free_port(gateway)
    registry = f"{gateway}:{registry_port}"

    # Three keys, two TLS CAs: the signing chain (CA + leaf, leaf first), the token server's TLS, the
    # registry's TLS. Keeping the TLS CAs apart lets the trust test move one without the other.
    signing_ca_key, token_ca_key, registry_ca_key = generate_key(), generate_key(), generate_key()
    signing_ca = make_ca(signing_ca_key, "regdeploy-test token signing CA")
    token_ca = make_ca(token_ca_key, "regdeploy-test token server CA")
    registry_ca = make_ca(registry_ca_key, "regdeploy-test registry CA")
    signing_key, token_tls_key, registry_tls_key = generate_key(), generate_key(), generate_key()
    chain = (
        issue_server_cert(signing_ca, signing_ca_key, signing_key, ["regdeploy-test-token-signer"])
        + signing_ca
    )
    # The deploy side's kind of signer (regdeploy.pki.make_signing_cert): its own root, no CA.
    self_signed_key = generate_key()
    self_signed = make_signing_cert(self_signed_key, "regdeploy-test self-signed signer")
    files = {
        "signing.key": signing_key,
        "signing.crt": chain,
        "server.key": token_tls_key,
        "server.crt": issue_server_cert(token_ca, token_ca_key, token_tls_key, [gateway, "127.0.0.1"]),
        "certs/registry.key": registry_tls_key,
        "certs/registry.crt": issue_server_cert(registry_ca, registry_ca_key, registry_tls_key, [gateway]),
        "certs/token-signing-ca.crt": signing_ca + self_signed,
        "self-signed.key": self_signed_key,
        "self-signed.crt": self_signed,
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644 if relative.startswith("certs/") else 0o600)  # the registry runs as root anyway

    oidc_key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(oidc_key.public_key(), as_dict=True), "kid": "ci-1", "use": "sig"}
    (root / "oidc-0.json").write_text(json.dumps({"keys": [jwk]}))
    (root / "users").write_text(users_text(PASSWORDS))
    service = registry
    config = {
        "service": service,
        "issuer": ISSUER,
        "expiry": 300,
        "listen": {"bind": gateway, "port": token_port},
        "tls": {"cert": "server.crt", "key": "server.key"},
        "signing": {"key": "signing.key", "chain": "signing.crt"},
        "users": "users",
        "anonymous": True,
        "acl": [
            {"account": "admin", "name": "*", "actions": ["*"]},
            {"account": "", "name": "public/*", "actions": ["pull"]},
            {"account": "*", "name": "${account}/*", "actions": ["pull", "push", "delete"]},
            {"account": "*", "type": "registry", "name": "catalog", "actions": ["*"]},
            {"account": "*", "name": "public/*", "actions": ["pull"]},
        ],
        "oidc": [
            {"issuer": OIDC_ISSUER, "jwks": "oidc-0.json", "audience": service,
             "account": "${claims.repository}", "claims": {"repository_owner": "acme"}},
        ],
    }  # fmt: skip
    (root / "token.yml").write_text(yaml.safe_dump(config))
    token_url = f"https://{gateway}:{token_port}/token"
    (root / "certs" / "config.yml").write_text(yaml.safe_dump(_registry_config(service, token_url)))

    server = TokenServer(root / "token.yml")
    container = None
    certs_d_existed = CERTS_D.exists()
    stack = Stack(root, gateway, registry, token_url, service, token_ca, registry_ca, chain, signing_key,
                  oidc_key, root / "self-signed", server, docker_client,
                  secrets=list(PASSWORDS.values()))  # fmt: skip
    try:
        server.wait_for("token server: listening on")
        container = docker_client.containers.run(
            registry_image,
            name=name,
            detach=True,
            ports={"5000/tcp": (gateway, registry_port)},
            volumes={
                str(root / "certs" / "config.yml"): {"bind": "/etc/docker/registry/config.yml", "mode": "ro"},
                str(root / "certs"): {"bind": "/certs", "mode": "ro"},
            },
        )
        # dockerd verifies the registry AND the realm with this one directory (plus system roots).
        stack.registry_certs_d.mkdir(parents=True, exist_ok=True)
        (stack.registry_certs_d / "registry-ca.crt").write_bytes(registry_ca)
        (stack.registry_certs_d / "token-ca.crt").write_bytes(token_ca)
        _wait_for_registry(stack)
        yield stack
    finally:
        for ref in stack.tags:
            with contextlib.suppress(Exception):
                docker_client.images.remove(ref, force=True)
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
        shutil.rmtree(stack.registry_certs_d, ignore_errors=True)
        shutil.rmtree(CERTS_D / f"{gateway}:{token_port}", ignore_errors=True)
        if not certs_d_existed:
            with contextlib.suppress(OSError):
                CERTS_D.rmdir()
        code = server.stop()
        log = "\n".join(server.lines)
        assert code == 0, log
        assert "token server: stopped" in log
        for secret in stack.secrets:  # passwords, JWTs and issued tokens never reach the log
            assert secret not in log


def ci_jwt(stack: Stack, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": OIDC_ISSUER, "aud": stack.service, "iat": now, "nbf": now, "exp": now + 300,
        "repository": "acme/app", "repository_owner": "acme", "ref": "refs/heads/main", **claims,
    }  # fmt: skip
    token = jwt.encode(body, stack.oidc_key, algorithm="ES256", headers={"kid": "ci-1"})
    stack.secrets.append(token)
    return token


# --- the docker CLI ------------------------------------------------------------------------------


def test_login_push_pull_through_the_token_flow(stack: Stack) -> None:
    docker = stack.docker("alice")
    mark = len(stack.server.lines)
    login = docker.login(stack.registry, "alice", PASSWORDS["alice"])
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    ref, image_id = stack.image("alice/smoke")
    pushed = docker("push", ref)
    assert pushed.returncode == 0, pushed.stderr + "\n".join(stack.server.since(mark))
    stack.client.images.remove(ref, force=True)
    pulled = docker("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert stack.client.images.get(ref).id == image_id
    log = stack.server.since(mark)
    assert "token: GET alice (login) -> granted nothing" in log
    assert any(
        line.startswith("token: GET alice repository:alice/smoke:")
        and "-> granted repository:alice/smoke:pu" in line
        for line in log
    ), log
    assert docker("logout", stack.registry).returncode == 0


def test_push_outside_the_acl_is_denied(stack: Stack) -> None:
    docker = stack.docker("alice-out")
    assert docker.login(stack.registry, "alice", PASSWORDS["alice"]).returncode == 0
    mark = len(stack.server.lines)
    ref, _ = stack.image("bob/smoke")
    pushed = docker("push", ref)
    assert pushed.returncode != 0
    assert "denied" in pushed.stderr.lower(), pushed.stderr
    assert "token: GET alice repository:bob/smoke:push,pull -> granted nothing" in stack.server.since(mark)
    docker("logout", stack.registry)


def test_anonymous_pull_of_public_but_no_anonymous_push(stack: Stack) -> None:
    admin = stack.docker("admin")
    assert admin.login(stack.registry, "admin", PASSWORDS["admin"]).returncode == 0
    ref, image_id = stack.image("public/smoke")
    assert admin("push", ref).returncode == 0
    admin("logout", stack.registry)
    stack.client.images.remove(ref, force=True)

    anonymous = stack.docker("anonymous")
    mark = len(stack.server.lines)
    pulled = anonymous("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert stack.client.images.get(ref).id == image_id
    assert "token: GET anonymous repository:public/smoke:pull -> granted repository:public/smoke:pull" in (
        stack.server.since(mark)
    )
    pushed = anonymous("push", ref)
    assert pushed.returncode != 0
    assert "denied" in pushed.stderr.lower() or "unauthorized" in pushed.stderr.lower(), pushed.stderr


def test_wrong_password_fails_login_and_rotation_needs_no_restart(stack: Stack) -> None:
    docker = stack.docker("bob")
    mark = len(stack.server.lines)
    failed = docker.login(stack.registry, "bob", "not-the-password")
    assert failed.returncode != 0
    assert "unauthorized" in failed.stderr.lower(), failed.stderr
    assert "token: refused (bad credentials for bob)" in stack.server.since(mark)

    # users rotate: a new file renamed over the old one, the running server picks it up
    rotated = "bob-rotated-31ab-password"
    stack.secrets.append(rotated)
    tmp = stack.root / "users.tmp"
    tmp.write_text(users_text({**PASSWORDS, "bob": rotated}))
    os.replace(tmp, stack.root / "users")
    assert docker.login(stack.registry, "bob", PASSWORDS["bob"]).returncode != 0
    login = docker.login(stack.registry, "bob", rotated)
    assert login.returncode == 0, login.stderr
    assert stack.server.wait_for("token server: users file re-read (3 users)")
    docker("logout", stack.registry)


def test_oidc_jwt_as_password_pushes_to_its_own_repository_only(stack: Stack) -> None:
    docker = stack.docker("ci")
    token = ci_jwt(stack)
    login = docker.login(stack.registry, "anything", token)  # the user name is ignored for OIDC
    assert login.returncode == 0, login.stderr
    ref, _ = stack.image("acme/app/smoke")
    pushed = docker("push", ref)
    assert pushed.returncode == 0, pushed.stderr
    elsewhere, _ = stack.image("alice/from-ci")
    assert docker("push", elsewhere).returncode != 0
    docker("logout", stack.registry)
    wrong_owner = docker.login(stack.registry, "ci", ci_jwt(stack, repository_owner="evil"))
    assert wrong_owner.returncode != 0
    assert "token: refused (OIDC token: claim repository_owner does not match)" in stack.server.lines


def test_dockerd_verifies_the_realm_with_the_registry_hosts_certs_d(stack: Stack) -> None:
    """dockerd fetches tokens with the TLS settings of the registry it is talking to: the realm's CA
    must be in /etc/docker/certs.d/<registry host:port>/ (or the system store); a directory named
    after the token server's own host:port is never read for it."""
    docker = stack.docker("trust")
    moved = stack.registry_certs_d / "token-ca.crt"
    moved.unlink()
    realm_dir = CERTS_D / stack.token_url.split("/")[2]
    realm_dir.mkdir(parents=True, exist_ok=True)
    (realm_dir / "ca.crt").write_bytes(stack.token_ca)
    try:
        failed = docker.login(stack.registry, "alice", PASSWORDS["alice"])
        assert failed.returncode != 0
        # the registry's own certificate still verifies: what fails is the token fetch from the realm
        assert stack.token_url in failed.stderr, failed.stderr
        assert "x509: certificate signed by unknown authority" in failed.stderr, failed.stderr
    finally:
        shutil.rmtree(realm_dir, ignore_errors=True)
        moved.write_bytes(stack.token_ca)
    login = docker.login(stack.registry, "alice", PASSWORDS["alice"])
    assert login.returncode == 0, login.stderr
    docker("logout", stack.registry)


# --- the protocol, by hand ------------------------------------------------------------------------


def test_token_header_and_claims_and_the_registry_accepts_it(stack: Stack) -> None:
    status, body = stack.get_token(
        "alice", PASSWORDS["alice"], "repository:alice/smoke:pull", "repository:bob/x:push"
    )
    assert status == 200, body
    token = body["token"]
    stack.secrets.append(token)
    assert body["access_token"] == token and body["expires_in"] == 300 and "refresh_token" not in body
    header = jwt.get_unverified_header(token)
    chain = x509.load_pem_x509_certificates(stack.chain)
    assert header["alg"] == "ES256" and header["typ"] == "JWT"
    assert header["x5c"] == [
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain
    ]
    public = serialization.load_pem_private_key(stack.signing_key, None).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert header["kid"] == libtrust_kid(public)
    claims = jwt.decode(token, public, algorithms=["ES256"], audience=stack.service, issuer=ISSUER)
    assert claims["sub"] == "alice"
    assert claims["aud"] == stack.service  # a string
    assert claims["exp"] - claims["iat"] == 300
    assert claims["access"] == [
        {"type": "repository", "name": "alice/smoke", "actions": ["pull"]},
        {"type": "repository", "name": "bob/x", "actions": []},
    ]
    # the real registry takes it for what it grants, and only that
    status, _ = stack.registry_get("/v2/alice/smoke/tags/list", token)
    assert status == 200
    status, headers = stack.registry_get("/v2/bob/x/tags/list", token)
    assert status == 401
    assert 'error="insufficient_scope"' in headers["Www-Authenticate"]


def test_post_flow_and_refresh_token_refusal(stack: Stack) -> None:
    status, body = stack.post_token(
        grant_type="password", username="alice", password=PASSWORDS["alice"],
        scope="repository:alice/smoke:pull registry:catalog:*",
    )  # fmt: skip
    assert status == 200, body
    stack.secrets.append(body["access_token"])
    assert "refresh_token" not in body
    assert stack.registry_get("/v2/alice/smoke/tags/list", body["access_token"])[0] == 200
    assert stack.registry_get("/v2/_catalog", body["access_token"])[0] == 200

    status, body = stack.post_token(grant_type="refresh_token", refresh_token="anything")
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    status, body = stack.post_token(grant_type="password", username="alice", password="wrong")
    assert status == 401
    status, body = stack.post_token(grant_type="password", username="alice", password=PASSWORDS["alice"],
                                    service="someone-else:5000")  # fmt: skip
    assert (status, body["error"]) == (400, "invalid_request")


def test_bad_requests_and_limits_on_the_wire(stack: Stack) -> None:
    status, body = stack.get_token("alice", "wrong")
    assert status == 401 and body["errors"][0]["code"] == "UNAUTHORIZED"
    # A body above 16 KiB is refused on its Content-Length, before it is read (so the body is not
    # sent at all here: the server closes right after answering, and a client still writing would
    # see a reset instead of the answer).
    host, port = stack.token_url.split("/")[2].rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=stack.token_context(), timeout=10)
    try:
        conn.putrequest("POST", "/token")
        conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        conn.putheader("Content-Length", "20000")
        conn.endheaders()
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    # plain HTTP to the TLS port gets no token: cheroot answers 400 or drops the connection
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", f"/token?service={stack.service}")
        assert conn.getresponse().status == 400
    except ConnectionError:
        pass
    finally:
        conn.close()
    # TLS 1.2 is accepted, 1.1 refused by the server (the client is made able to offer it)
    for version, refused in ((ssl.TLSVersion.TLSv1_2, False), (ssl.TLSVersion.TLSv1_1, True)):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=stack.token_ca.decode())
        context.set_ciphers("DEFAULT@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1_1 itself warns
            context.minimum_version = context.maximum_version = version
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            if refused:
                with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
                    context.wrap_socket(sock, server_hostname=host)
            else:
                with context.wrap_socket(sock, server_hostname=host) as tls:
                    assert tls.version() == "TLSv1.2"


def test_registry_finds_the_key_by_x5c_or_by_libtrust_kid(stack: Stack) -> None:
    """Tokens from a self-signed signer (the deploy side's kind) are accepted; and with only one of
    the two headers, which proves the kid is computed as Go's libtrust does (2.8 looks it up among
    the rootcertbundle's keys by that ID)."""
    signing = load_signing(stack.self_signed.with_suffix(".key"), stack.self_signed.with_suffix(".crt"))
    access = [Scope("registry", "catalog", ("*",))]
    full = issue_token(signing, issuer=ISSUER, service=stack.service, account="admin", access=access,
                       expiry=60, now=int(time.time()))  # fmt: skip
    assert stack.registry_get("/v2/_catalog", full)[0] == 200
    claims = jwt.decode(full, options={"verify_signature": False})

    def signed(**header: Any) -> str:
        return jwt.encode(claims, signing.key, algorithm="ES256", headers={"typ": "JWT", **header})

    assert stack.registry_get("/v2/_catalog", signed(kid=signing.kid))[0] == 200
    assert stack.registry_get("/v2/_catalog", signed(x5c=list(signing.x5c)))[0] == 200
    wrong_kid = ("BBBB" if signing.kid.startswith("AAAA") else "AAAA") + signing.kid[4:]
    assert stack.registry_get("/v2/_catalog", signed(kid=wrong_kid))[0] == 401
    # a signer the registry does not trust: a correct signature and x5c, by a certificate of its own
    stranger_key = generate_key()
    stranger = x509.load_pem_x509_certificate(make_signing_cert(stranger_key, "stranger"))
    der = base64.b64encode(stranger.public_bytes(serialization.Encoding.DER)).decode()
    forged = jwt.encode(claims, serialization.load_pem_private_key(stranger_key, None), algorithm="ES256",
                        headers={"typ": "JWT", "x5c": [der]})  # fmt: skip
    assert stack.registry_get("/v2/_catalog", forged)[0] == 401
