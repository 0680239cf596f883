"""`regdeploy verify` against registries deployed by `regdeploy up` on the real local engine.

Traffic goes to loopback, to the test's own registry containers, and to the docker bridge gateway
(172.17.0.1: the registry's webhooks reach the test's receiver there, and the engine check uses it as a
registry name the engine does verify certificates for — it never does for loopback names).
Everything created is removed: containers, data, smoke images, certs.d entries.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from regdeploy import pki
from regdeploy.cli import cli
from regdeploy.deploy.health import http_probe
from regdeploy.verify.registry_api import RegistryClient

pytestmark = pytest.mark.integration

BRIDGE_GATEWAY = "172.17.0.1"  # the default bridge's gateway: the docker host, seen from containers
CERTS_D = Path("/etc/docker/certs.d")
ALL_CHECKS = ["tcp", "tls", "auth", "engine", "api", "catalog", "notifications", "cleanup"]


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------------------
# A webhook receiver on the docker host, reachable from the registry container via the bridge gateway
# --------------------------------------------------------------------------------------------------------


class Receiver:
    """Answers webhook POSTs with ``status``; remembers each event's action and repository."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.events: list[tuple[str, str]] = []
        self.authorization: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.authorization.append(self.headers.get("Authorization") or "")
                with contextlib.suppress(ValueError):
                    for event in json.loads(body).get("events", []):
                        receiver.events.append((event["action"], event["target"]["repository"]))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        # 0.0.0.0: the registry container connects from the bridge, not from loopback.
        self.server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{BRIDGE_GATEWAY}:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------------------------
# A registry deployed with the real CLI
# --------------------------------------------------------------------------------------------------------


@dataclass
class Deployment:
    root: Path
    name: str
    port: int
    receiver: Receiver
    token: str  # the webhook's Authorization header value: a secret that must never be printed
    inventory: Path = field(init=False)

    def __post_init__(self) -> None:
        self.inventory = self.root / "hosts.yml"

    @property
    def password_file(self) -> Path:
        return self.root / ".regdeploy" / "secrets" / "users" / "alice"

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    @property
    def ca(self) -> bytes:
        return (self.root / ".regdeploy" / "ca" / "ca.crt").read_bytes()

    def verify(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["verify", "-i", str(self.inventory), *args])

    def verify_json(self, *args: str) -> tuple[int, dict[str, Any], Result]:
        result = self.verify("--json", *args)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result.exit_code, json.loads(result.stdout), result

    def client(self) -> RegistryClient:
        return RegistryClient("127.0.0.1", self.port, self.ca, "alice", self.password, "localhost")

    def secret_values(self) -> list[str]:
        return [self.password, self.token]


def _inventory(root: Path, receiver: Receiver, **registry: Any) -> Deployment:
    root.mkdir(parents=True, exist_ok=True)
    name = f"regdeploy-test-{secrets.token_hex(4)}"
    dep = Deployment(root, name, _free_port(), receiver, f"Bearer tok-{secrets.token_hex(12)}")
    spec: dict[str, Any] = {
        "name": name,
        "image": "regdeploy-test/registry:2.8.2",
        "port": dep.port,
        "config_dir": str(root / "config"),
        "data_dir": str(root / "data"),
        "debug": {"port": _free_port()},
        "storage": {"delete": True, "readonly": False},
        # The gateway as an extra name: the engine check can then push through a name the engine verifies.
        "tls": {"mode": "selfsigned", "sans": [BRIDGE_GATEWAY]},
        "auth": {"users": [{"name": "alice"}]},
        "notifications": {
            "endpoints": [
                {
                    "name": "hook",
                    "url": receiver.url,
                    "headers": {"Authorization": dep.token},
                    "timeout": "1s",
                    "threshold": 3,
                    "backoff": "1s",
                }
            ]
        },
    }
    for key, value in registry.items():
        spec[key] = value
    inventory = {"all": {"hosts": {"localhost": {"ansible_connection": "local", "registry": spec}}}}
    dep.inventory.write_text(yaml.safe_dump(inventory))
    return dep


def _teardown(dep: Deployment, docker_client: Any) -> None:
    CliRunner().invoke(cli, ["down", "-i", str(dep.inventory), "--purge-data", "--yes"])
    with contextlib.suppress(Exception):
        docker_client.containers.get(dep.name).remove(force=True)
    shutil.rmtree(dep.root, ignore_errors=True)


@contextlib.contextmanager
def _deployed(root: Path, docker_client: Any, status: int = 200, **registry: Any) -> Iterator[Deployment]:
    receiver = Receiver(status)
    try:
        dep = _inventory(root, receiver, **registry)
        try:
            result = CliRunner().invoke(cli, ["up", "-i", str(dep.inventory), "--json"])
            assert result.exit_code == 0, result.output
            yield dep
        finally:
            _teardown(dep, docker_client)  # also after a failed up: it may have created the container
    finally:
        receiver.close()


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, docker_client: Any, registry_image: str
) -> Iterator[Deployment]:
    """One default registry for the tests that change nothing, or put back what they change."""
    with _deployed(tmp_path_factory.mktemp("verify-shared"), docker_client) as dep:
        yield dep


@pytest.fixture
def own(tmp_path: Path, docker_client: Any, registry_image: str) -> Any:
    """``own(status=..., **registry)``: a registry of the test's own, removed afterwards."""
    with contextlib.ExitStack() as stack:
        yield lambda status=200, **registry: stack.enter_context(
            _deployed(tmp_path / "dep", docker_client, status, **registry)
        )


def _checks(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (host,) = payload["hosts"].values()
    return {c["name"]: c for c in host["checks"]}


def _assert_no_secrets(dep: Deployment, result: Result) -> None:
    for secret in dep.secret_values():
        assert secret not in result.output
        assert secret not in result.stderr


def _smoke_images(docker_client: Any, dep: Deployment) -> list[str]:
    """This registry's smoke images on the engine (other test runs may share the engine meanwhile)."""
    mine = f":{dep.port}/regdeploy-smoke:"
    return [tag for image in docker_client.images.list() for tag in image.tags if mine in tag]


# --------------------------------------------------------------------------------------------------------
# A healthy registry passes
# --------------------------------------------------------------------------------------------------------


def test_verify_passes_on_a_registry_deployed_by_up(shared, docker_client):
    before = len(shared.receiver.events)
    code, payload, result = shared.verify_json()
    assert code == 0, result.output
    assert set(payload) == {"ok", "hosts"} and payload["ok"] is True
    host = payload["hosts"]["localhost"]
    assert host["ok"] is True
    assert [c["name"] for c in host["checks"]] == ALL_CHECKS
    for check in host["checks"]:
        assert set(check) == {"name", "ok", "seconds", "detail"}
        assert check["ok"] is True, check
        assert isinstance(check["seconds"], float) and 0 <= check["seconds"] < 30
        assert isinstance(check["detail"], str) and check["detail"]
    checks = _checks(payload)
    assert checks["tls"]["detail"].startswith("TLSv1.")
    assert "valid for localhost" in checks["tls"]["detail"] and "expires in 39" in checks["tls"]["detail"]
    assert checks["auth"]["detail"] == (
        'anonymous 401 (Basic realm="regdeploy"), wrong password 401, '
        "alice 200 (Docker-Distribution-API-Version registry/2.0)"
    )
    # The engine does not check certificates for loopback names: verify says so instead of pretending.
    engine = checks["engine"]["detail"]
    assert f"pushed localhost:{shared.port}/regdeploy-smoke:engine-" in engine
    assert "127.0.0.0/8" in engine and "the tls check is what proves the CA" in engine
    assert "config monolithic, layer chunked" in checks["api"]["detail"]
    assert "tags/list has api-" in checks["catalog"]["detail"]
    assert checks["notifications"]["detail"].startswith("hook: delivered ")
    assert "(blobs stay on disk until garbage-collect)" in checks["cleanup"]["detail"]

    # The receiver really got this run's events, with the configured header.
    mine = shared.receiver.events[before:]
    assert ("push", "regdeploy-smoke") in mine and ("pull", "regdeploy-smoke") in mine
    assert set(shared.receiver.authorization) == {shared.token}
    _assert_no_secrets(shared, result)

    # Nothing left: no smoke tags on the registry or the engine, no certs.d entry for a loopback name.
    resp = shared.client().request("GET", "/v2/regdeploy-smoke/tags/list")
    assert resp.status == 200 and not resp.json()["tags"], resp.body
    assert _smoke_images(docker_client, shared) == []
    assert not (CERTS_D / f"localhost:{shared.port}").exists()


def test_table_output_and_check_subsets(shared):
    result = shared.verify()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "localhost: ok" and lines[-1] == "1 host: 1 ok, 0 failed"
    assert [line.split()[1] for line in lines[1:-1]] == ALL_CHECKS
    assert all(line.startswith("  PASS  ") for line in lines[1:-1])
    _assert_no_secrets(shared, result)

    code, payload, _ = shared.verify_json("--check", "tls")
    assert code == 0 and list(_checks(payload)) == ["tcp", "tls"]
    code, payload, _ = shared.verify_json("--check", "catalog")
    assert code == 0 and list(_checks(payload)) == ["tcp", "tls", "auth", "api", "catalog", "cleanup"]

    result = shared.verify("--check", "nope")
    assert result.exit_code == 2 and "'nope' is not one of" in result.output


def test_persistence_restarts_the_container_and_finds_the_images(shared, docker_client):
    started = docker_client.containers.get(shared.name).attrs["State"]["StartedAt"]
    code, payload, result = shared.verify_json("--persistence", "--check", "engine")
    assert code == 0, result.output
    checks = _checks(payload)
    assert list(checks) == ["tcp", "tls", "auth", "engine", "api", "persistence", "cleanup"]
    assert checks["persistence"]["detail"].startswith(
        f"restarted container '{shared.name}' (serving again after "
    )
    assert "regdeploy-smoke:api-" in checks["persistence"]["detail"]
    assert "regdeploy-smoke:engine-" in checks["persistence"]["detail"]
    assert docker_client.containers.get(shared.name).attrs["State"]["StartedAt"] != started


def test_the_engine_verifies_the_ca_through_certs_d_and_it_is_removed_afterwards(shared, docker_client):
    """172.17.0.1 is not loopback: the engine checks the certificate, with the CA verify lends it."""
    entry = CERTS_D / f"{BRIDGE_GATEWAY}:{shared.port}"
    assert not entry.exists()
    code, payload, result = shared.verify_json("--server-name", BRIDGE_GATEWAY, "--check", "engine")
    assert code == 0, result.output
    detail = _checks(payload)["engine"]["detail"]
    assert f"pushed {BRIDGE_GATEWAY}:{shared.port}/regdeploy-smoke:engine-" in detail
    assert f"trusted through the inventory's CA, put in {entry}/ca.crt for this run" in detail
    assert not entry.exists()
    assert _smoke_images(docker_client, shared) == []


def test_another_ca_in_certs_d_fails_the_engine_check_and_is_left_alone(shared):
    entry = CERTS_D / f"{BRIDGE_GATEWAY}:{shared.port}"
    foreign = pki.make_ca(pki.generate_key("ecdsa-p256"), days=30)
    created_root = not CERTS_D.exists()
    entry.mkdir(parents=True)
    (entry / "ca.crt").write_bytes(foreign)
    try:
        code, payload, _ = shared.verify_json("--server-name", BRIDGE_GATEWAY, "--check", "engine")
        assert code == 1
        checks = _checks(payload)
        assert checks["tls"]["ok"] and checks["auth"]["ok"]  # the registry is fine: this machine is not
        detail = checks["engine"]["detail"]
        assert detail.startswith(f"push {BRIDGE_GATEWAY}:{shared.port}/regdeploy-smoke:engine-")
        assert "x509: certificate signed by unknown authority" in detail
        assert f"{entry}/ca.crt holds another CA than the inventory's (left as it is)" in detail
        assert (entry / "ca.crt").read_bytes() == foreign
        assert checks["cleanup"]["ok"], checks["cleanup"]
    finally:
        shutil.rmtree(entry)
        if created_root:
            with contextlib.suppress(OSError):  # another run may have put something there meanwhile
                CERTS_D.rmdir()


# --------------------------------------------------------------------------------------------------------
# Each way it fails, with its precise reason
# --------------------------------------------------------------------------------------------------------


def test_wrong_ca(shared):
    """The inventory's state holds another CA than the one that signed the running certificate."""
    ca_dir = shared.root / ".regdeploy" / "ca"
    saved = {name: (ca_dir / name).read_bytes() for name in ("ca.crt", "ca.key")}
    key = pki.generate_key("ecdsa-p256")
    (ca_dir / "ca.key").write_bytes(key)
    (ca_dir / "ca.crt").write_bytes(pki.make_ca(key, days=30))
    try:
        code, payload, _ = shared.verify_json()
    finally:
        for name, data in saved.items():
            (ca_dir / name).write_bytes(data)
    assert code == 1 and payload["ok"] is False
    checks = _checks(payload)
    assert checks["tcp"]["ok"]
    detail = checks["tls"]["detail"]
    assert detail.startswith("certificate verify failed: unable to get local issuer certificate; ")
    assert "the server's certificate was issued by CN=regdeploy CA (key id " in detail
    assert "not by the inventory's CA CN=regdeploy CA (key id " in detail
    for name in ("auth", "engine", "api"):
        assert checks[name] == {**checks[name], "ok": False, "seconds": 0.0}
        assert checks[name]["detail"] == "not run: tls failed"
    assert checks["catalog"]["detail"] == "not run: nothing was pushed (tls failed)"
    assert checks["cleanup"]["ok"]  # the smoke image prepared meanwhile is removed again


def test_hostname_not_in_the_certificate(shared):
    code, payload, _ = shared.verify_json("--server-name", "not-in-sans.example")
    assert code == 1
    detail = _checks(payload)["tls"]["detail"]
    assert detail == (
        "certificate verify failed: Hostname mismatch, certificate is not valid for 'not-in-sans.example'; "
        f"the certificate names localhost, 127.0.0.1, {BRIDGE_GATEWAY}: "
        "add 'not-in-sans.example' to registry.tls.sans and run regdeploy up"
    )


def test_wrong_password(shared):
    saved = shared.password_file.read_bytes()
    wrong = "wrong-" + secrets.token_urlsafe(16)
    shared.password_file.write_text(wrong)
    try:
        code, payload, result = shared.verify_json()
        table = shared.verify()
    finally:
        shared.password_file.write_bytes(saved)
    assert code == 1 and table.exit_code == 1
    checks = _checks(payload)
    assert checks["tls"]["ok"]
    assert checks["auth"]["detail"] == (
        "user 'alice' was refused (401): the registry's htpasswd does not hold the inventory's password "
        "for this user (changed since the last regdeploy up?)"
    )
    assert checks["engine"]["detail"] == checks["api"]["detail"] == "not run: auth failed"
    for out in (result.output, table.output):
        assert wrong not in out and saved.decode().strip() not in out


def test_registry_stopped(shared, docker_client):
    container = docker_client.containers.get(shared.name)
    container.stop(timeout=5)
    try:
        code, payload, _ = shared.verify_json()
    finally:
        container.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if http_probe("127.0.0.1", shared.port, shared.ca) == 200:
                    break
            time.sleep(0.1)
    assert code == 1
    checks = _checks(payload)
    assert checks["tcp"]["detail"].startswith(
        f"127.0.0.1:{shared.port}: connection refused (container '{shared.name}' is exited"
    )
    assert checks["tls"]["detail"] == "not run: tcp failed"
    assert checks["auth"]["detail"] == checks["engine"]["detail"] == "not run: tcp failed"
    assert checks["notifications"]["detail"] == "not run: nothing was pushed (tcp failed)"
    assert checks["cleanup"]["ok"] and _smoke_images(docker_client, shared) == []


def test_delete_disabled_keeps_the_smoke_manifests_and_says_which(own, docker_client):
    dep = own(storage={"delete": False, "readonly": False})
    code, payload, _ = dep.verify_json()
    assert code == 1
    checks = _checks(payload)
    assert [n for n, c in checks.items() if not c["ok"]] == ["cleanup"]
    detail = checks["cleanup"]["detail"]
    assert detail.startswith(
        "DELETE answered 405 UNSUPPORTED: The operation is unsupported. (storage.delete is disabled): "
        "left on the registry: regdeploy-smoke:api-"
    ), detail
    assert ", regdeploy-smoke:engine-" in detail
    assert f"removed local image localhost:{dep.port}/regdeploy-smoke:engine-" in detail
    tags = dep.client().request("GET", "/v2/regdeploy-smoke/tags/list").json()["tags"]
    assert sorted(t.split("-")[0] for t in tags) == ["api", "engine"]
    assert all(t in detail for t in tags)
    assert _smoke_images(docker_client, dep) == []


def test_read_only_registry_refuses_the_push(own, docker_client):
    dep = own(storage={"delete": True, "readonly": True})
    code, payload, _ = dep.verify_json()
    assert code == 1
    checks = _checks(payload)
    assert checks["auth"]["ok"]
    engine = checks["engine"]["detail"]
    assert engine.startswith(f"push localhost:{dep.port}/regdeploy-smoke:engine-")
    # The engine's own words: 2.8 answers writes in read-only mode with a plain-text 405.
    assert "refused: error parsing HTTP 405 response body" in engine and "Method not allowed" in engine
    assert engine.endswith("(storage.readonly is true: the registry refuses every write)"), engine
    assert checks["api"]["detail"] == (
        "push refused: POST /v2/regdeploy-smoke/blobs/uploads/ answered 405 Method not allowed "
        "(storage.readonly is true: the registry refuses every write)"
    )
    assert checks["catalog"]["detail"] == "not run: nothing was pushed (engine and api failed)"
    assert checks["cleanup"]["ok"] and _smoke_images(docker_client, dep) == []


def test_webhook_endpoint_refusing_events(own):
    dep = own(status=500)
    code, payload, result = dep.verify_json()
    assert code == 1
    checks = _checks(payload)
    assert [n for n, c in checks.items() if not c["ok"]] == ["notifications"]
    detail = checks["notifications"]["detail"]
    assert detail.startswith("hook: refused ") and "(answered 500 Internal Server Error x" in detail
    assert "delivered 0 of " in detail
    assert dep.receiver.events  # the registry did try: the endpoint said no
    _assert_no_secrets(dep, result)
