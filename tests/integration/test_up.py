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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from deploytools import TOKEN, WEBHOOK, Deployment, changes, deployment, push_small_image, wait_for

__all__ = ["deployment"]  # the fixture, used by name

pytestmark = pytest.mark.integration

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


def test_config_edited_on_the_host_is_put_back_and_read(deployment: Deployment) -> None:
    """Someone drops auth from config.yml on the host and restarts the registry: it serves anyone.
    `up` rewrites the file and restarts the container, so auth is back; then nothing is left to do."""
    import yaml

    deployment.up_json()
    config = deployment.config / "config.yml"
    edited = yaml.safe_load(config.read_text())
    del edited["auth"]
    config.write_text(yaml.safe_dump(edited))
    deployment.client.api.restart(deployment.name, timeout=5)
    wait_for(lambda: deployment.api(user=None).request("GET", "/v2/").status == 200)
    before = deployment.container()

    report = deployment.up_json()
    assert changes(report) == [(f"file:{config}", "update"), (f"container:{deployment.name}", "restart")]
    after = deployment.container()
    assert after["Id"] == before["Id"] and after["State"]["StartedAt"] != before["State"]["StartedAt"]
    assert deployment.api(user=None).request("GET", "/v2/").status == 401
    assert deployment.api().request("GET", "/v2/").status == 200
    assert deployment.up_json()["changed"] is False


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


def test_broken_template_is_refused_before_any_change(deployment: Deployment) -> None:
    templates = deployment.tmp / "templates"
    templates.mkdir()
    (templates / "config.yml.j2").write_text("version: 0.1\n{% if %}\n")
    deployment.registry["templates_dir"] = str(templates)
    deployment.write()
    assert_refused(deployment, "config.yml.j2")


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
    foreign = deployment.client.containers.create(registry_image, name=deployment.name)
    # The image declares VOLUME /var/lib/registry: adopting keeps that anonymous volume on purpose
    # (it may hold someone's data), so the test removes it itself.
    volumes = [m["Name"] for m in foreign.attrs["Mounts"] if m.get("Type") == "volume"]
    try:
        _adopt(deployment)
    finally:
        for volume in volumes:
            with contextlib.suppress(Exception):
                deployment.client.api.remove_container(deployment.name, force=True)
                deployment.client.volumes.get(volume).remove(force=True)


def _adopt(deployment: Deployment) -> None:
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
