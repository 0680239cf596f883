"""Token auth end to end: `up` with auth.mode token runs the built-in token server next to a real
registry (2.8.2), and real clients (the docker CLI through dockerd, skopeo, containerd's ctr with
its POST flow) get tokens from it; the ACL, anonymous access and OIDC identities decide what they may do.

The docker CLI talks to the registry at the bridge gateway address (docker skips TLS checks for
127.0.0.0/8, so only there does trust matter) with the CA installed by `certs trust --local`; the
stand-in OIDC issuer makes its own keys and JWKS file. Everything is removed by the test that made it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from clienttools import ctr_forget, ctr_pull
from cryptography.hazmat.primitives.asymmetric import ec
from deploytools import Deployment, changes, deployment, push_small_image, wait_for
from test_certs import CERTS_D, DockerCli, certs_d_guard, docker_cli, trust

__all__ = ["certs_d_guard", "deployment", "docker_cli"]  # fixtures, used by name

pytestmark = pytest.mark.integration

ACCEPT = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
ISSUER = "https://token.actions.example.test"
AUDIENCE = "registry.example.test"
ACL = [
    {"account": "admin", "name": "*", "actions": ["*"]},
    {"account": "", "name": "public/*", "actions": ["pull"]},
    {"account": "*", "name": "${account}/*", "actions": ["pull", "push", "delete"]},
    {"account": "*", "name": "*", "actions": ["pull"]},
    {"account": "*", "type": "registry", "name": "catalog", "actions": ["*"]},
]


class Issuer:
    """A stand-in OIDC issuer (GitHub Actions' shape): its own EC key, a JWKS file, signed job tokens."""

    def __init__(self, tmp: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.other = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid="stand-in-1", use="sig", alg="ES256")
        self.jwks = tmp / "jwks.json"
        self.jwks.write_text(json.dumps({"keys": [jwk]}))

    def token(self, repository: str, owner: str = "acme", lifetime: int = 300, signer: Any = None) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": f"repo:{repository}:ref:refs/heads/main",
                  "repository": repository, "repository_owner": owner, "iat": now, "nbf": now,
                  "exp": now + lifetime}  # fmt: skip
        return jwt.encode(claims, signer or self.key, algorithm="ES256", headers={"kid": "stand-in-1"})


def token_mode(d: Deployment, gateway: str, issuer: Issuer | None = None, **token: Any) -> None:
    d.registry["tls"] = {"mode": "selfsigned", "sans": [gateway]}
    d.registry["auth"] = {
        "mode": "token",
        "users": [{"name": "alice"}, {"name": "admin"}],
        "bcrypt_cost": 5,
        "token": {"port": d.token_port, "acl": ACL, **token},
    }
    if issuer is not None:
        d.registry["auth"]["token"]["oidc"] = [{
            "issuer": ISSUER, "jwks": {"file": str(issuer.jwks)}, "audience": AUDIENCE,
            "account": "${claims.repository}", "claims": {"repository_owner": "acme"},
        }]  # fmt: skip
    d.write()


@pytest.fixture
def tokened(deployment: Deployment, free_port: Any) -> Iterator[Deployment]:
    deployment.token_port = free_port()  # type: ignore[attr-defined]
    yield deployment
    for cname in (deployment.name + "-token", deployment.name + "-token-regdeploy-old"):
        subprocess.run(["docker", "rm", "-f", cname], capture_output=True, check=False)


def login(cli: DockerCli, registry: str, user: str, password: str) -> subprocess.CompletedProcess[str]:
    return cli("login", registry, "-u", user, "--password-stdin", stdin=password)


def test_docker_logs_in_pushes_and_pulls_through_the_token_flow(
    tokened: Deployment, gateway: str, docker_cli: DockerCli, certs_d_guard: None
) -> None:
    d = tokened
    token_mode(d, gateway)
    report = d.up_json()
    done = [r for r, _ in changes(report) if r.startswith("container:")]
    assert done == [f"container:{d.name}-token", f"container:{d.name}"]
    trust(d)
    registry = f"{gateway}:{d.port}"
    # The registry now asks for tokens: a Bearer challenge naming the token server.
    anonymous = d.api(user=None).request("GET", "/v2/", auth=False)
    assert anonymous.status == 401
    assert anonymous.headers["www-authenticate"].startswith(f'Bearer realm="https://localhost:{d.token_port}/token"')

    assert login(docker_cli, registry, "alice", d.password("alice")).returncode == 0
    own = f"{registry}/alice/app:v1"
    docker_cli.push_remove_pull(own, docker_cli.smoke_image(own))
    # Outside alice's namespace: pull only, and the push is denied in words.
    other = f"{registry}/team/app:v1"
    docker_cli.smoke_image(other)
    denied = docker_cli("push", other)
    assert denied.returncode != 0
    assert "denied" in denied.stderr.lower() or "unauthorized" in denied.stderr.lower(), denied.stderr
    wrong = login(docker_cli, registry, "alice", "not-her-password")
    assert wrong.returncode != 0

    verified = d.run("verify", "--json")
    assert verified.exit_code == 0, verified.output
    checks = {c["name"]: c for c in json.loads(verified.stdout)["hosts"]["localhost"]["checks"]}
    assert "Bearer realm" in checks["auth"]["detail"]
    assert "anonymous refused" in checks["auth"]["detail"]
    assert "push outside alice's ACL denied" in checks["auth"]["detail"]
    assert d.up_json()["changed"] is False
    logs = subprocess.run(["docker", "logs", d.name + "-token"], capture_output=True, text=True)
    text = logs.stdout + logs.stderr
    assert "token server: listening on" in text
    assert d.password("alice") not in text and d.password("admin") not in text


def test_skopeo_and_containerd_get_tokens_too(
    tokened: Deployment, gateway: str, docker_cli: DockerCli, certs_d_guard: None, tmp_path: Path
) -> None:
    d = tokened
    token_mode(d, gateway)
    d.up_json()
    trust(d)
    registry = f"{gateway}:{d.port}"
    assert login(docker_cli, registry, "admin", d.password("admin")).returncode == 0
    ref = f"{registry}/team/app:v1"
    docker_cli.smoke_image(ref)
    pushed = docker_cli("push", ref)
    assert pushed.returncode == 0, pushed.stderr

    auth = tmp_path / "auth.json"
    basic = base64.b64encode(f"alice:{d.password('alice')}".encode()).decode()
    auth.write_text(json.dumps({"auths": {registry: {"auth": basic}}}))
    auth.chmod(0o600)
    inspected = subprocess.run(
        ["skopeo", "inspect", "--cert-dir", str(CERTS_D / registry), "--authfile", str(auth), f"docker://{ref}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stderr

    # containerd (dockerd's own) tries the POST form flow first: `certs trust` wrote its hosts.toml.
    namespace = f"regdeploy-test-{d.name}"
    try:
        pulled = ctr_pull(ref, namespace, "alice", d.password("alice"))
        assert pulled.returncode == 0, pulled.stderr
    finally:
        ctr_forget(namespace, ref)
    logs = subprocess.run(["docker", "logs", d.name + "-token"], capture_output=True, text=True)
    assert "token: POST alice repository:team/app:pull -> granted" in logs.stdout + logs.stderr


def test_anonymous_pulls_public_and_cannot_push(tokened: Deployment, gateway: str) -> None:
    d = tokened
    token_mode(d, gateway, anonymous=True)
    d.up_json()
    admin = d.api(user="admin", password=d.password("admin"))
    digest = push_small_image(admin, "public/base")
    stranger = d.api(user=None)
    got = stranger.request("GET", "/v2/public/base/manifests/v1", headers=ACCEPT)
    assert got.status == 200 and got.headers["docker-content-digest"] == digest
    start = stranger.request("POST", "/v2/public/base/blobs/uploads/")
    assert start.status == 401
    private = stranger.request("GET", "/v2/alice/secret/manifests/v1")
    assert private.status == 401
    verified = d.run("verify", "--check", "auth", "--json")
    assert verified.exit_code == 0, verified.output
    assert "anonymous token" in json.loads(verified.stdout)["hosts"]["localhost"]["checks"][-1]["detail"]


def test_an_oidc_identity_pushes_to_its_own_repository_only(
    tokened: Deployment, gateway: str, tmp_path: Path
) -> None:
    d = tokened
    issuer = Issuer(tmp_path)
    token_mode(d, gateway, issuer)
    d.up_json()
    job = d.api(user="ci", password=issuer.token("acme/app"))
    push_small_image(job, "acme/app/web")
    elsewhere = job.request("POST", "/v2/team/app/blobs/uploads/")
    assert elsewhere.status == 401  # pull-only there by the ACL: the upload is refused
    for bad in (issuer.token("acme/app", lifetime=-120),            # expired
                issuer.token("acme/app", signer=issuer.other),      # signed by another key
                issuer.token("other/app", owner="someone-else")):   # claims do not match
        refused = d.api(user="ci", password=bad).token_response(
            f"https://localhost:{d.token_port}/token", f"localhost:{d.port}", "repository:acme/app:push")
        assert refused.status == 401
    assert issuer.token("acme/app") not in subprocess.run(
        ["docker", "logs", d.name + "-token"], capture_output=True, text=True).stderr


def test_users_rotate_needs_no_restart_and_pulls_keep_working(tokened: Deployment, gateway: str) -> None:
    d = tokened
    token_mode(d, gateway)
    d.up_json()
    bob = d.api()
    push_small_image(bob, "alice/app")
    before = {n: d.client.api.inspect_container(n)["State"]["StartedAt"] for n in (d.name, d.name + "-token")}
    old = d.password("alice")
    rotated = d.run("users", "rotate", "alice")
    assert rotated.exit_code == 0, rotated.output
    assert d.password("alice") != old
    wait_for(lambda: d.api().request("GET", "/v2/").status == 200)
    assert d.api(password=old).request("GET", "/v2/").status == 401
    after = {n: d.client.api.inspect_container(n)["State"]["StartedAt"] for n in (d.name, d.name + "-token")}
    assert after == before


def test_token_server_down_fails_verify_and_up_brings_it_back(tokened: Deployment, gateway: str) -> None:
    d = tokened
    token_mode(d, gateway)
    d.up_json()
    digest = push_small_image(d.api(), "alice/keep")
    d.client.api.stop(d.name + "-token")
    failed = d.run("verify", "--json")
    assert failed.exit_code == 1
    assert "token server" in failed.output
    report = d.up_json()
    assert (f"container:{d.name}-token", "start") in changes(report)
    got = d.api().request("GET", "/v2/alice/keep/manifests/v1", headers=ACCEPT)
    assert got.status == 200 and got.headers["docker-content-digest"] == digest


def test_switching_htpasswd_token_htpasswd_keeps_the_data(tokened: Deployment, gateway: str) -> None:
    d = tokened
    d.registry["tls"] = {"mode": "selfsigned", "sans": [gateway]}
    d.registry["auth"] = {"users": [{"name": "alice"}, {"name": "admin"}], "bcrypt_cost": 5}
    d.write()
    d.up_json()
    digest = push_small_image(d.api(), "alice/kept")
    token_mode(d, gateway)
    d.up_json()
    accept = ACCEPT
    assert d.api().request("GET", "/v2/alice/kept/manifests/v1", headers=accept).headers[
        "docker-content-digest"] == digest  # fmt: skip
    d.registry["auth"] = {"users": [{"name": "alice"}, {"name": "admin"}], "bcrypt_cost": 5}
    d.write()
    back = d.up_json()
    assert (f"container:{d.name}-token", "remove") in changes(back)
    got = d.api().request("GET", "/v2/alice/kept/manifests/v1", headers=accept)
    assert got.status == 200 and got.headers["docker-content-digest"] == digest
    assert d.api(user=None).request("GET", "/v2/", auth=False).headers["www-authenticate"].startswith("Basic")


def test_external_token_server_is_trusted_and_verify_proves_the_bearer_flow(
    tokened: Deployment, tmp_path: Path
) -> None:
    """server: external: regdeploy renders auth.token for a server it does not run (here regdeploy's own
    token server started by hand, as an operator would run docker_auth) and verify goes through it."""
    import bcrypt

    from regdeploy.pki.build import make_signing_cert
    from regdeploy.pki.keys import generate_key

    d = tokened
    key = generate_key("ecdsa-p256")
    cert = make_signing_cert(key, "external token signing")
    (tmp_path / "signing.key").write_bytes(key)
    (tmp_path / "signing.crt").write_bytes(cert)
    realm = f"http://127.0.0.1:{d.token_port}/token"
    d.registry["auth"] = {"mode": "token", "users": [{"name": "alice"}], "token": {
        "server": "external", "realm": realm, "service": "external-registry", "issuer": "external-issuer",
        "rootcertbundle": {"file": str(tmp_path / "signing.crt")},
    }}  # fmt: skip
    d.write()
    report = d.up_json()
    assert not any(r.endswith("-token") for r, _ in changes(report))  # regdeploy runs no token server
    hashed = bcrypt.hashpw(d.password("alice").encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "users").write_text(f"alice:{hashed}\n")
    (tmp_path / "token.yml").write_text(json.dumps({
        "service": "external-registry", "issuer": "external-issuer", "expiry": 300,
        "listen": {"bind": "127.0.0.1", "port": d.token_port},
        "signing": {"key": "signing.key", "chain": "signing.crt"}, "users": "users",
        "acl": [{"account": "*", "name": "*", "actions": ["*"]},
                {"account": "*", "type": "registry", "name": "catalog", "actions": ["*"]}],
    }))  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "regdeploy", "auth", "serve", "--config",
                               str(tmp_path / "token.yml")],
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stderr is not None
        assert "token server: listening on" in server.stderr.readline()
        verified = d.run("verify", "--json")
        assert verified.exit_code == 0, verified.output
        checks = {c["name"]: c for c in json.loads(verified.stdout)["hosts"]["localhost"]["checks"]}
        assert f'Bearer realm="{realm}"' in checks["auth"]["detail"]
        assert checks["api"]["ok"] and checks["engine"]["ok"]
        users = d.run("users", "add", "bob")
        assert users.exit_code == 1 and "external token server" in users.output
    finally:
        server.terminate()
        server.wait(10)
