"""`regdeploy certs` and the TLS modes against a real registry, the real docker CLI and skopeo.

Docker treats 127.0.0.0/8 as an insecure registry by default and then skips certificate checks, so
the engine is pointed at the registry through the Docker bridge's gateway address (this machine,
never the network): there, a pull works only if /etc/docker/certs.d holds the right CA. Every
certs.d entry, image, container and file a test adds is removed again.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clienttools import ClientFilesGuard, registry_ports
from cryptography.hazmat.primitives import serialization
from deploytools import Deployment, changes, deployment

from regdeploy import pki
from regdeploy.image.build import build_smoke_image

__all__ = ["deployment"]  # the fixture, used by name

pytestmark = pytest.mark.integration

CERTS_D = Path("/etc/docker/certs.d")


@pytest.fixture
def gateway(docker_client: Any) -> str:
    """This machine's address on the default bridge: not loopback, so the engine verifies TLS there."""
    config = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    # Older engines leave Gateway out: the bridge then has the subnet's first address.
    address = config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))  # only an address of this machine can be bound
        except OSError:
            pytest.fail(f"the docker bridge address {address} is not on this machine", pytrace=False)
    return address


@pytest.fixture
def certs_d_guard(deployment: Deployment) -> Iterator[None]:
    """Remove whatever certs.d entry (every runtime's) for this test's ports is left, and the
    directories holding them if we made them."""
    guard = ClientFilesGuard()
    yield
    guard.ports |= registry_ports(deployment.registry)
    guard.cleanup()


class DockerCli:
    """The docker CLI with a private config dir (its login never touches the user's)."""

    def __init__(self, tmp: Path, client: Any) -> None:
        self.config = tmp / "docker-config"
        self.config.mkdir(mode=0o700)
        self.client = client
        self.tags: list[str] = []

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_CONFIG": str(self.config)}
        return subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True,
                              env=env, timeout=120)  # fmt: skip

    def login(self, registry: str, password: str) -> subprocess.CompletedProcess[str]:
        return self("login", registry, "-u", "alice", "--password-stdin", stdin=password)

    def smoke_image(self, ref: str) -> str:
        self.tags.append(ref)
        return build_smoke_image(self.client, ref)

    def push_remove_pull(self, ref: str, image_id: str) -> None:
        pushed = self("push", ref)
        assert pushed.returncode == 0, pushed.stderr
        self.client.images.remove(ref, force=True)
        pulled = self("pull", ref)
        assert pulled.returncode == 0, pulled.stderr
        assert self.client.images.get(ref).id == image_id

    def cleanup(self) -> None:
        for ref in self.tags:
            with contextlib.suppress(Exception):
                self.client.images.remove(ref, force=True)


@pytest.fixture
def docker_cli(tmp_path: Path, docker_client: Any) -> Iterator[DockerCli]:
    cli = DockerCli(tmp_path, docker_client)
    yield cli
    cli.cleanup()


def skopeo_inspect(deployment: Deployment, ref: str, cert_dir: Path) -> subprocess.CompletedProcess[str]:
    """``skopeo inspect`` with only ``cert_dir``'s CA and an auth file of our own (no password on argv)."""
    auth = deployment.tmp / "skopeo-auth.json"
    token = base64.b64encode(f"alice:{deployment.password()}".encode()).decode()
    auth.write_text(json.dumps({"auths": {f"localhost:{deployment.port}": {"auth": token}}}))
    auth.chmod(0o600)
    return subprocess.run(
        ["skopeo", "inspect", "--cert-dir", str(cert_dir), "--authfile", str(auth), f"docker://{ref}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def handshake(port: int, ca: bytes, name: str = "localhost") -> dict[str, Any]:
    """A verified TLS handshake with the registry; the peer certificate as the ssl module sees it."""
    ctx = ssl.create_default_context(cadata=ca.decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname=name) as tls,
    ):
        peer = tls.getpeercert()
    assert peer is not None
    return dict(peer)


def trust(deployment: Deployment, *args: str) -> dict[str, Any]:
    result = deployment.run("certs", "trust", "--local", "--json", *args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


# --- selfsigned: client trust with the real docker engine and skopeo ---------------------------------


def test_trust_local_lets_docker_and_skopeo_push_and_pull_then_remove_undoes_it(
    deployment: Deployment, gateway: str, docker_cli: DockerCli, certs_d_guard: None
) -> None:
    deployment.registry["tls"] = {"mode": "selfsigned", "sans": [gateway]}
    deployment.write()
    deployment.up_json()
    registry = f"{gateway}:{deployment.port}"

    # Without trust the engine refuses the registry: it really verifies certificates at this address.
    refused = docker_cli.login(registry, deployment.password())
    assert refused.returncode != 0
    assert "certificate signed by unknown authority" in refused.stderr

    report = trust(deployment, "--runtime", "docker")  # containerd and podman: test_clients.py
    installed = {c["resource"] for c in report["hosts"]["(control machine)"]["changes"]}
    addresses = ("localhost", "127.0.0.1", gateway)
    assert installed == {f"file:{CERTS_D}/{a}:{deployment.port}/ca.crt" for a in addresses}
    assert (CERTS_D / registry / "ca.crt").read_bytes() == deployment.ca
    assert trust(deployment, "--runtime", "docker")["changed"] is False  # idempotent

    login = docker_cli.login(registry, deployment.password())
    assert login.returncode == 0, login.stderr
    ref = f"{registry}/regdeploy-test/smoke:{deployment.name}"
    docker_cli.push_remove_pull(ref, docker_cli.smoke_image(ref))

    # skopeo reads exactly the directory it is given: the certs.d entry works, an empty one does not.
    local_ref = f"localhost:{deployment.port}/regdeploy-test/smoke:{deployment.name}"
    ok = skopeo_inspect(deployment, local_ref, CERTS_D / f"localhost:{deployment.port}")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["Name"] == f"localhost:{deployment.port}/regdeploy-test/smoke"
    empty = deployment.tmp / "no-ca"
    empty.mkdir()
    untrusted = skopeo_inspect(deployment, local_ref, empty)
    assert untrusted.returncode != 0 and "certificate signed by unknown authority" in untrusted.stderr

    removed = trust(deployment, "--remove", "--runtime", "docker")
    assert {c["action"] for c in removed["hosts"]["(control machine)"]["changes"]} == {"remove"}
    # Each ca.crt is gone, and so is the directory made for it.
    assert not any(e.name.endswith(f":{deployment.port}") for e in CERTS_D.glob("*"))
    docker_cli.client.images.remove(ref, force=True)
    again = docker_cli("pull", ref)
    assert again.returncode != 0 and "certificate signed by unknown authority" in again.stderr


# --- renewal --------------------------------------------------------------------------------------


def test_expiring_certificate_is_renewed_by_up_and_clients_keep_working(
    deployment: Deployment, gateway: str, docker_cli: DockerCli, certs_d_guard: None
) -> None:
    # A two-day certificate, not yet due with renew_before 1.
    deployment.registry["tls"] = {"mode": "selfsigned", "sans": [gateway], "days": 2, "renew_before": 1}
    deployment.write()
    deployment.up_json()
    first = pki.cert_info((deployment.config / "certs" / "server.crt").read_bytes())
    assert first.days_left() == 1
    key_before = (deployment.config / "certs" / "server.key").read_bytes()
    trust(deployment)
    registry = f"{gateway}:{deployment.port}"
    assert docker_cli.login(registry, deployment.password()).returncode == 0
    ref = f"{registry}/regdeploy-test/renew:{deployment.name}"
    image_id = docker_cli.smoke_image(ref)
    docker_cli.push_remove_pull(ref, image_id)

    # The renewal window now covers it: the plan names the reason on the certificate and the restart.
    deployment.registry["tls"].update(days=30, renew_before=3)
    deployment.write()
    plan = deployment.run("plan", "--json")
    assert plan.exit_code == 0, plan.output
    planned = {c["resource"]: c for c in json.loads(plan.stdout)["hosts"]["localhost"]["changes"]}
    reason = "certificate expires in 1 day (renew_before 3)"
    cert_change = planned[f"file:{deployment.config}/certs/server.crt"]
    assert cert_change["reason"].startswith(f"new certificate: {reason}")
    assert reason in planned[f"container:{deployment.name}"]["reason"]
    assert planned[f"container:{deployment.name}"]["action"] == "recreate"

    report = deployment.up_json()
    assert ("container:" + deployment.name, "recreate") in changes(report)
    renewed = pki.cert_info((deployment.config / "certs" / "server.crt").read_bytes())
    assert renewed.days_left() == 29 and renewed.serial != first.serial  # 30 days minus seconds
    assert (deployment.config / "certs" / "server.key").read_bytes() == key_before  # keys kept
    assert deployment.up_json()["changed"] is False  # renewed once, not on every run

    # Same CA: the trusted clients carry on without any change on their side.
    docker_cli.client.images.remove(ref, force=True)
    pulled = docker_cli("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert handshake(deployment.port, deployment.ca)["notAfter"]


def test_certs_renew_rotate_keys_deploys_and_show_reports(deployment: Deployment) -> None:
    deployment.up_json()
    key_before = (deployment.config / "certs" / "server.key").read_bytes()
    not_due = deployment.run("certs", "renew", "--json")
    assert not_due.exit_code == 0, not_due.output
    assert json.loads(not_due.stdout)["changed"] is False

    result = deployment.run("certs", "renew", "--rotate-keys", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["certificates"]["localhost"]["reason"] == "key rotated (--rotate-keys)"
    deployed = {c["resource"]: c for c in report["deploy"]["hosts"]["localhost"]["changes"]}
    assert "key rotated (--rotate-keys)" in deployed[f"container:{deployment.name}"]["reason"]
    key_after = deployment.config / "certs" / "server.key"
    assert key_after.read_bytes() != key_before and key_after.stat().st_mode & 0o777 == 0o600
    assert handshake(deployment.port, deployment.ca)
    assert deployment.api().request("GET", "/v2/").status == 200
    assert key_after.read_text() not in result.output

    show = deployment.run("certs", "show", "--json")
    assert show.exit_code == 0, show.output
    rows = json.loads(show.stdout)["hosts"]["localhost"]["certificates"]
    assert [(r["role"], r["source"].split(":")[0], r["status"]) for r in rows] == [
        ("ca", "state", "ok"), ("server", "state", "ok"), ("server", "deployed", "ok")]  # fmt: skip
    assert rows[2]["key_type"] == "ecdsa-p256" and rows[2]["days_left"] == 396
    table = deployment.run("certs", "show")
    assert table.exit_code == 0 and "deployed:" in table.stdout and "PRIVATE" not in table.output


# --- provided: refusals -----------------------------------------------------------------------------


def _org_ca(cn: str) -> tuple[bytes, bytes]:
    key = pki.generate_key()
    return pki.make_ca(key, cn), key


@pytest.mark.parametrize("case", ["sans", "key", "other-ca", "expired"])
def test_provided_certificate_problems_are_refused_before_any_change(
    deployment: Deployment, case: str
) -> None:
    ca, other = _org_ca("Org CA"), _org_ca("Another CA")
    key = pki.generate_key()
    sans = ["localhost", "127.0.0.1"]
    expected = {"sans": "SANs miss 127.0.0.1", "key": "private key does not match the certificate",
                "other-ca": "chain does not lead to the CA", "expired": "expired on"}[case]  # fmt: skip
    if case == "sans":
        cert = pki.issue_server_cert(ca[0], ca[1], key, ["localhost"])
    elif case == "key":
        cert = pki.issue_server_cert(ca[0], ca[1], pki.generate_key(), sans)
    elif case == "other-ca":
        cert = pki.issue_server_cert(other[0], other[1], key, sans)
    else:
        then = datetime.now(UTC) - timedelta(days=30)
        cert = pki.issue_server_cert(ca[0], ca[1], key, sans, days=10, now=then)
    files = {name: deployment.tmp / name for name in ("chain.pem", "key.pem", "ca.pem")}
    files["chain.pem"].write_bytes(cert)
    files["key.pem"].write_bytes(key)
    files["ca.pem"].write_bytes(ca[0])
    deployment.registry["tls"] = {
        "mode": "provided",
        "cert": {"file": str(files["chain.pem"])},
        "key": {"file": str(files["key.pem"])},
        "ca_cert": {"file": str(files["ca.pem"])},
    }
    deployment.write()
    result = deployment.run("up")
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: host 'localhost': registry.tls: provided certificate (file:")
    assert expected in lines[0]
    assert "PRIVATE" not in result.output
    assert not deployment.config.exists()
    assert deployment.client.containers.list(all=True, filters={"name": deployment.name}) == []


# --- ca: an organisation CA whose key has a passphrase ----------------------------------------------


def test_ca_mode_with_a_passphrase_protected_org_ca_key(deployment: Deployment) -> None:
    ca_cert, ca_key = _org_ca("Example Org Root")
    passphrase = "org-ca-passphrase-6d1f"
    encrypted = pki.load_private_key(ca_key).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )  # fmt: skip
    (deployment.tmp / "org-ca.crt").write_bytes(ca_cert)
    (deployment.tmp / "org-ca.key").write_bytes(encrypted)
    deployment.env["ORG_CA_PASSPHRASE"] = passphrase
    deployment.registry["tls"] = {
        "mode": "ca",
        "ca_cert": {"file": str(deployment.tmp / "org-ca.crt")},
        "ca_key": {"file": str(deployment.tmp / "org-ca.key")},
        "ca_key_passphrase": {"env": "ORG_CA_PASSPHRASE"},
    }
    deployment.write()
    report = deployment.run("up", "--json")
    assert report.exit_code == 0, report.output
    assert passphrase not in report.output
    assert deployment.ca == ca_cert  # clients trust the org CA itself
    peer = handshake(deployment.port, ca_cert)
    assert dict(x[0] for x in peer["issuer"])["commonName"] == "Example Org Root"
    assert deployment.api().request("GET", "/v2/").status == 200
    assert not (deployment.tmp / ".regdeploy" / "ca").exists()  # the org CA key is never copied
    assert deployment.up_json()["changed"] is False


# --- csr: signed elsewhere, imported, deployed -----------------------------------------------------


def test_csr_signed_externally_then_import_then_up(deployment: Deployment) -> None:
    deployment.registry["tls"] = {"mode": "csr"}
    deployment.write()
    not_yet = deployment.run("up")
    assert not_yet.exit_code == 2 and "no signed certificate imported yet" in not_yet.stderr

    out = deployment.tmp / "csr"
    made = deployment.run("certs", "csr", "--out", str(out))
    assert made.exit_code == 0, made.output
    csr = (out / "localhost.csr").read_bytes()
    assert b"PRIVATE" not in csr and b"PRIVATE" not in made.output.encode()
    state_key = deployment.tmp / ".regdeploy" / "hosts" / "localhost" / "next.key"
    assert state_key.stat().st_mode & 0o777 == 0o600

    # The "external CA": regdeploy never sees its key.
    corp_ca, corp_key = _org_ca("Corp Issuing CA")
    signed = deployment.tmp / "signed.pem"
    signed.write_bytes(pki.sign_csr(csr, corp_ca, corp_key, days=90) + corp_ca)
    imported = deployment.run("certs", "import", "localhost", str(signed))
    assert imported.exit_code == 0, imported.output

    report = deployment.up_json()
    assert ("container:" + deployment.name, "create") in changes(report)
    assert deployment.ca == corp_ca
    peer = handshake(deployment.port, corp_ca)
    assert dict(x[0] for x in peer["issuer"])["commonName"] == "Corp Issuing CA"
    assert deployment.api().request("GET", "/v2/").status == 200
    assert (deployment.config / "certs" / "server.key").stat().st_mode & 0o777 == 0o600
    assert deployment.up_json()["changed"] is False


# --- letsencrypt: rendered settings the real registry accepts -----------------------------------------


def test_letsencrypt_settings_start_the_real_registry(deployment: Deployment, tmp_path: Path) -> None:
    from regdeploy.deploy.render import render
    from regdeploy.materials.host import HostMaterials, UserEntry
    from regdeploy.spec.registry import parse_spec

    acme = {"email": "ops@example.com", "hosts": ["registry.example.com"]}
    spec = parse_spec("localhost", {"port": 443, "config_dir": str(tmp_path / "le"),
                                    "tls": {"mode": "letsencrypt", "letsencrypt": acme}})  # fmt: skip
    bcrypt_line = "$2b$04$" + "a" * 53  # never used: no request reaches auth here
    rendered = render(spec, HostMaterials("s3cret", (UserEntry("alice", bcrypt_line),), {}, (), None))
    for f in rendered.files:
        Path(f.path).parent.mkdir(parents=True, exist_ok=True)
        Path(f.path).write_bytes(f.data)
    container = deployment.client.containers.run(
        deployment.registry["image"], ["serve", "/etc/regdeploy/config.yml"], name=deployment.name,
        detach=True, volumes={str(tmp_path / "le"): {"bind": "/etc/regdeploy", "mode": "ro"}},
    )  # fmt: skip
    try:
        logs = b""
        for _ in range(50):
            logs = container.logs()
            if b"listening on" in logs:
                break
            container.reload()
            assert container.status == "running", logs.decode(errors="replace")[-2000:]
            time.sleep(0.1)
        assert b"listening on [::]:5000, tls" in logs, logs.decode(errors="replace")[-2000:]
    finally:
        container.remove(force=True, v=True)  # and the image's anonymous /var/lib/registry volume


def test_up_with_letsencrypt_waits_for_the_tls_listener_without_a_handshake(deployment: Deployment) -> None:
    """The registry gets its certificate from Let's Encrypt at the first TLS handshake, so `up` must
    see it serve without one: plain HTTP to its TLS listener answers 400 "HTTP request to an HTTPS
    server". (No handshake happens here: nothing asks Let's Encrypt for anything.)"""
    acme = {"email": "ops@example.com", "hosts": ["registry.example.com"]}
    deployment.registry["tls"] = {"mode": "letsencrypt", "letsencrypt": acme}
    deployment.write()
    report = deployment.up_json()
    assert report["ok"] and (f"container:{deployment.name}", "create") in changes(report)
    assert not (deployment.config / "certs").exists() or not any((deployment.config / "certs").iterdir())
    conn = http.client.HTTPConnection("127.0.0.1", deployment.port, timeout=5)
    try:
        conn.request("GET", "/")
        answer = conn.getresponse()
        assert answer.status == 400 and b"HTTP request to an HTTPS server" in answer.read()
    finally:
        conn.close()
    again = deployment.run("up")
    assert again.exit_code == 0 and "localhost: ok, no changes" in again.stdout, again.output
    # Published on a test port, not 443: the run says Let's Encrypt cannot validate it there.
    warning = "[localhost] warning: tls.mode letsencrypt: Let's Encrypt checks the host names on port 443"
    assert warning in again.stderr
