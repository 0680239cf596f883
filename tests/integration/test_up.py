"""`regdeploy up / plan / down / status` against the real Docker engine and a real registry.

Each test deploys its own registry: a unique container name, its own ports, its own config and data
dirs under tmp_path, and removes all of it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from regdeploy.cli import cli
from regdeploy.registry_api import RegistryClient

pytestmark = pytest.mark.integration

TOKEN = "tok-3f9c1a7e-secret-webhook-token"
# Port 9 (discard) on loopback: nothing listens, deliveries fail quietly and stay on this machine.
WEBHOOK = {"name": "ci", "url": "http://127.0.0.1:9/hook", "headers": {"Authorization": {"env": "CI_TOKEN"}}}


class Deployment:
    """One test registry: its inventory file, and helpers to run regdeploy against it."""

    def __init__(self, tmp: Path, name: str, port: int, image: str, client: Any) -> None:
        self.tmp = tmp
        self.name = name
        self.port = port
        self.client = client
        self.inventory = tmp / "hosts.yml"
        self.registry: dict[str, Any] = {
            "name": name,
            "image": image,
            "port": port,
            "config_dir": str(tmp / "config"),
            "data_dir": str(tmp / "data"),
            "tls": {"mode": "selfsigned"},
            "auth": {"users": [{"name": "alice"}]},
            "health_timeout": "20s",
        }
        self.env: dict[str, str] = {"CI_TOKEN": TOKEN}
        self.write()

    def write(self, **host_vars: Any) -> None:
        host = {"ansible_connection": "local", "registry": self.registry, **host_vars}
        self.inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host}}}))

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(
            cli, [*args, "-i", str(self.inventory)], env=self.env, catch_exceptions=False
        )

    def up_json(self, *args: str) -> dict[str, Any]:
        result = self.run("up", "--json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    @property
    def config(self) -> Path:
        return self.tmp / "config"

    @property
    def ca(self) -> bytes:
        return (self.config / "certs" / "ca.crt").read_bytes()

    def password(self, user: str = "alice") -> str:
        return (self.tmp / ".regdeploy" / "secrets" / "users" / user).read_text()

    def api(
        self, user: str | None = "alice", password: str | None = None, port: int | None = None
    ) -> RegistryClient:
        pw = password if password is not None else (self.password(user) if user else None)
        return RegistryClient("127.0.0.1", port or self.port, self.ca, user, pw, server_hostname="localhost")

    def container(self) -> dict[str, Any]:
        return dict(self.client.api.inspect_container(self.name))

    def file_times(self) -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for p in sorted(self.config.rglob("*"))}

    def cleanup(self) -> None:
        CliRunner().invoke(cli, ["down", "--purge-data", "--yes", "-i", str(self.inventory)], env=self.env)
        for cname in (self.name, self.name + "-regdeploy-old"):
            with contextlib.suppress(Exception):  # usually already gone: down removed it
                self.client.api.remove_container(cname, force=True)


@pytest.fixture
def deployment(tmp_path: Path, unique_name: str, free_port: Callable[[], int], registry_image: str,
               docker_client: Any) -> Iterator[Deployment]:  # fmt: skip
    d = Deployment(tmp_path, unique_name, free_port(), registry_image, docker_client)
    yield d
    d.cleanup()


def changes(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["resource"], c["action"]) for c in report["hosts"]["localhost"]["changes"]]


def push_small_image(api: RegistryClient, repo: str) -> str:
    """Push one blob, a config and a manifest through the HTTP API; return the manifest digest."""
    import hashlib

    def upload(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = api.request("POST", f"/v2/{repo}/blobs/uploads/")
        assert start.status == 202, start
        location = start.headers["location"]
        sep = "&" if "?" in location else "?"
        path = location.split("://", 1)[-1]
        path = path[path.index("/") :] if not location.startswith("/") else location
        done = api.request("PUT", f"{path}{sep}digest={digest}", body=data,
                           headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        assert done.status == 201, done
        return digest

    layer = b"regdeploy test layer"
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    config_digest = upload(config.encode())
    layer_digest = upload(layer)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer), "digest": layer_digest}],
    }).encode()  # fmt: skip
    manifest_type = "application/vnd.docker.distribution.manifest.v2+json"
    put = api.request(
        "PUT", f"/v2/{repo}/manifests/v1", body=manifest, headers={"Content-Type": manifest_type}
    )
    assert put.status == 201, put
    return put.headers["docker-content-digest"]


def test_up_from_nothing_serves_tls_and_auth_then_rerun_changes_nothing(deployment: Deployment) -> None:
    first = deployment.up_json()
    assert first["ok"] and first["changed"]
    assert ("container:" + deployment.name, "create") in changes(first)

    anonymous = deployment.api(user=None).request("GET", "/v2/")
    assert anonymous.status == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic realm=")
    authed = deployment.api().request("GET", "/v2/")
    assert authed.status == 200
    assert authed.headers["docker-distribution-api-version"] == "registry/2.0"
    assert deployment.api(password="wrong-password").request("GET", "/v2/").status == 401

    before_times = deployment.file_times()
    before = deployment.container()
    second = deployment.up_json()
    assert second == {"ok": True, "changed": False, "hosts": {"localhost": {
        "ok": True, "changed": False, "changes": [], "error": None}}}  # fmt: skip
    after = deployment.container()
    assert (after["Id"], after["State"]["StartedAt"]) == (before["Id"], before["State"]["StartedAt"])
    assert deployment.file_times() == before_times
    text = deployment.run("up")
    assert "localhost: ok, no changes" in text.output


def test_files_modes_and_no_secret_in_container_definition(deployment: Deployment) -> None:
    deployment.registry["notifications"] = {"endpoints": [WEBHOOK]}
    deployment.write()
    deployment.up_json()
    modes = {p.relative_to(deployment.config).as_posix(): p.stat().st_mode & 0o777
             for p in deployment.config.rglob("*")}  # fmt: skip
    assert modes["config.yml"] == 0o600
    assert modes["auth/htpasswd"] == 0o600
    assert modes["certs/server.key"] == 0o600
    assert modes["certs/ca.crt"] == 0o644
    state_key = deployment.tmp / ".regdeploy" / "ca" / "ca.key"
    assert state_key.stat().st_mode & 0o777 == 0o600
    assert (deployment.tmp / ".regdeploy").stat().st_mode & 0o777 == 0o700
    info = json.dumps(deployment.container())
    for secret in (TOKEN, deployment.password()):
        assert secret not in info
    assert TOKEN.encode() in (deployment.config / "config.yml").read_bytes()


def test_changed_port_recreates_only_the_container(
    deployment: Deployment, free_port: Callable[[], int]
) -> None:
    deployment.up_json()
    new_port = free_port()
    deployment.registry["port"] = new_port
    deployment.write()
    plan = deployment.run("plan", "--json")
    assert plan.exit_code == 0, plan.output
    planned = json.loads(plan.stdout)
    assert changes(planned) == [("container:" + deployment.name, "recreate")]
    assert f":{deployment.port} -> " in planned["hosts"]["localhost"]["changes"][0]["reason"]
    assert changes(deployment.up_json()) == [("container:" + deployment.name, "recreate")]
    assert deployment.api(port=new_port).request("GET", "/v2/").status == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", deployment.port), timeout=1).close()


def test_new_user_rewrites_htpasswd_without_restart(deployment: Deployment) -> None:
    deployment.up_json()
    before = deployment.container()
    deployment.registry["auth"]["users"].append({"name": "bob", "password": {"env": "BOB_PW"}})
    deployment.env["BOB_PW"] = "bob-password-1234"
    deployment.write()
    report = deployment.up_json()
    assert changes(report) == [(f"file:{deployment.config}/auth/htpasswd", "update")]
    after = deployment.container()
    assert (after["Id"], after["State"]["StartedAt"]) == (before["Id"], before["State"]["StartedAt"])
    assert deployment.api("bob", "bob-password-1234").request("GET", "/v2/").status == 200
    assert deployment.api().request("GET", "/v2/").status == 200


def test_webhook_change_is_planned_masked_and_applied(deployment: Deployment) -> None:
    deployment.up_json()
    deployment.registry["notifications"] = {"endpoints": [WEBHOOK]}
    deployment.write()
    plan = deployment.run("plan")
    assert plan.exit_code == 0, plan.output
    assert "notifications" in plan.output and "********" in plan.output
    assert TOKEN not in plan.output
    assert deployment.password() not in plan.output
    report = deployment.up_json()
    assert changes(report) == [
        (f"file:{deployment.config}/config.yml", "update"),
        ("container:" + deployment.name, "recreate"),
    ]
    assert deployment.up_json()["changed"] is False


def test_down_then_up_keeps_pushed_data(deployment: Deployment) -> None:
    deployment.up_json()
    digest = push_small_image(deployment.api(), "team/app")
    down = deployment.run("down", "--json")
    assert down.exit_code == 0, down.output
    assert json.loads(down.stdout)["hosts"]["localhost"]["changed"] is True
    assert deployment.client.containers.list(all=True, filters={"name": deployment.name}) == []
    assert (deployment.tmp / "data").is_dir()
    deployment.up_json()
    api = deployment.api()
    assert api.catalog() == ["team/app"]
    got = api.request("HEAD", "/v2/team/app/manifests/v1",
                      headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})  # fmt: skip
    assert got.headers["docker-content-digest"] == digest
    status = deployment.run("status", "--json")
    assert status.exit_code == 0, status.output
    host = json.loads(status.stdout)["hosts"]["localhost"]
    assert host["running"] and host["repositories"] == ["team/app"] and host["data_bytes"] > 0


def test_failed_start_puts_back_the_previous_files_and_container(deployment: Deployment) -> None:
    deployment.up_json()
    before = deployment.container()
    config_before = (deployment.config / "config.yml").read_bytes()
    templates = deployment.tmp / "templates"
    templates.mkdir()
    builtin = Path(__file__).resolve().parents[2] / "templates" / "config.yml.j2"
    # A storage driver the registry does not know: it refuses to start.
    broken = builtin.read_text().replace("  filesystem:\n", "  nosuchdriver:\n", 1)
    (templates / "config.yml.j2").write_text(broken)
    deployment.registry["templates_dir"] = str(templates)
    deployment.write()
    result = deployment.run("up")
    assert result.exit_code == 1
    assert "nosuchdriver" in result.output  # the registry's own complaint reaches the user
    assert "previous files were put back" in result.output
    assert (deployment.config / "config.yml").read_bytes() == config_before
    after = deployment.container()
    assert after["Id"] == before["Id"] and after["State"]["Running"]
    assert deployment.api().request("GET", "/v2/").status == 200


# --- bad input: exit 2, one line naming the problem, and nothing created on the host -------------


def assert_refused(deployment: Deployment, fragment: str, code: int = 2, *args: str) -> None:
    result = deployment.run("up", *args)
    assert result.exit_code == code, result.output
    if code == 2:  # bad input: one line on stderr, before any host is looked at
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    else:  # a host failed: its line in the report, and the summary
        lines = [ln for ln in result.stdout.splitlines() if ln.startswith("localhost: FAILED: ")]
        assert len(lines) == 1, result.stdout
        assert "0 ok, 0 changed, 1 failed" in result.stdout
    assert fragment in lines[0]
    assert not deployment.config.exists()
    assert not (deployment.tmp / "data").exists()
    assert deployment.client.containers.list(all=True, filters={"name": deployment.name}) == []


def test_invalid_yaml_names_the_line(deployment: Deployment) -> None:
    deployment.inventory.write_text("all:\n  hosts:\n    localhost: {ansible_connection: local\n  bad: [\n")
    result = deployment.run("up")
    assert result.exit_code == 2
    assert f"{deployment.inventory}:" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"prot": 5000}, "registry.prot: unknown key (did you mean 'port'?)"),
        ({"port": 70000}, "registry.port: 70000 is out of range 1..65535"),
        ({"tls": {"mode": "letsencrypt-ish"}}, "registry.tls.mode: unknown value 'letsencrypt-ish'"),
        ({"auth": {"users": [{"name": "al", "password": {"env": "REGDEPLOY_TEST_UNSET"}}]}},
         "environment variable REGDEPLOY_TEST_UNSET is not set"),
        ({"auth": {"users": [{"name": "al", "password": {"file": "/nonexistent/regdeploy/pw"}}]}},
         "secret file /nonexistent/regdeploy/pw does not exist"),
    ],
)  # fmt: skip
def test_bad_spec_is_refused_before_any_change(
    deployment: Deployment, change: dict[str, Any], fragment: str
) -> None:
    deployment.registry.update(change)
    deployment.write()
    assert_refused(deployment, fragment)


def test_port_taken_by_another_process(deployment: Deployment) -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", deployment.port))
        sock.listen()
        assert_refused(deployment, f"port {deployment.port} on 0.0.0.0 is already in use", code=1)


def test_docker_daemon_unreachable(deployment: Deployment) -> None:
    deployment.write(regdeploy_docker_host="unix:///nonexistent/docker.sock")
    assert_refused(deployment, "cannot reach the Docker engine at unix:///nonexistent/docker.sock", code=1)


def test_absent_image_that_cannot_be_pulled(deployment: Deployment) -> None:
    deployment.registry["image"] = "127.0.0.1:1/regdeploy-test/absent:2"
    deployment.write()
    assert_refused(deployment, "cannot be pulled", code=1)


def test_data_dir_that_cannot_be_created(deployment: Deployment) -> None:
    blocker = deployment.tmp / "afile"
    blocker.write_text("x")
    deployment.registry["data_dir"] = str(blocker / "data")
    deployment.write()
    assert_refused(
        deployment, f"cannot create {blocker}/data: {blocker} exists and is not a directory", code=1
    )


def test_foreign_container_is_refused_unless_adopted(deployment: Deployment, registry_image: str) -> None:
    deployment.client.containers.create(registry_image, name=deployment.name)
    result = deployment.run("up")
    assert result.exit_code == 1
    assert "was not created by regdeploy" in result.output and "--adopt" in result.output
    assert not deployment.config.exists()
    adopted = deployment.up_json("--adopt")
    assert ("container:" + deployment.name, "adopt") in changes(adopted)
    assert deployment.container()["Config"]["Labels"]["io.regdeploy.managed"] == "true"
    assert deployment.up_json()["changed"] is False


def test_plan_changes_nothing(deployment: Deployment) -> None:
    result = deployment.run("plan", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["changed"] is True
    assert ("container:" + deployment.name, "create") in changes(report)
    assert not deployment.config.exists()
    assert not (deployment.tmp / ".regdeploy").exists()
    assert deployment.client.containers.list(all=True, filters={"name": deployment.name}) == []


def test_ca_trusted_tls_handshake_with_stdlib(deployment: Deployment) -> None:
    deployment.up_json()
    ctx = ssl.create_default_context(cadata=deployment.ca.decode())
    with urllib.request.urlopen(f"https://localhost:{deployment.port}/", context=ctx, timeout=5) as resp:
        assert resp.status == 200
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(
            f"https://localhost:{deployment.port}/", context=ssl.create_default_context(), timeout=5
        )
    assert os.path.exists(deployment.config / "certs" / "server.crt")
