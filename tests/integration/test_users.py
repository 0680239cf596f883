"""`regdeploy users`: changes reach a real registry with no restart and no failed request."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from deploytools import Deployment, deployment, push_small_image

from regdeploy.cli import cli

__all__ = ["deployment"]

pytestmark = pytest.mark.integration


def add_bob(d: Deployment) -> Result:
    args = ["users", "add", "bob", "--password-stdin", "-i", str(d.inventory)]
    return CliRunner().invoke(cli, args, input="bob-password-42\n")


def identity(d: Deployment) -> tuple[str, str]:
    info = d.container()
    return info["Id"], info["State"]["StartedAt"]


def status(d: Deployment, user: str, password: str) -> int:
    return d.api(user, password).request("GET", "/v2/").status


def test_rotate_changes_the_password_without_restart(deployment: Deployment, tmp_path: Path) -> None:
    deployment.up_json()
    before = identity(deployment)
    old = deployment.password()
    out = tmp_path / "creds.json"
    result = deployment.run("users", "rotate", "alice", "--output", str(out), "--format", "docker-config")
    assert result.exit_code == 0, result.output
    new = deployment.password()
    assert new != old
    assert old not in result.output and new not in result.output
    assert out.stat().st_mode & 0o777 == 0o600
    auths = json.loads(out.read_text())["auths"]
    assert list(auths) == [f"localhost:{deployment.port}"]
    assert status(deployment, "alice", old) == 401
    assert status(deployment, "alice", new) == 200
    assert identity(deployment) == before
    assert deployment.up_json()["changed"] is False


def test_rotate_shows_new_credentials_once_on_the_terminal(deployment: Deployment) -> None:
    deployment.up_json()
    result = deployment.run("users", "rotate", "alice")
    assert result.exit_code == 0, result.output
    assert f"alice: {deployment.password()}" in result.output
    as_json = deployment.run("users", "rotate", "alice", "--json")
    assert as_json.exit_code == 2 and "--json never prints passwords" in as_json.output


def test_add_and_remove_take_effect_without_restart(deployment: Deployment) -> None:
    deployment.up_json()
    before = identity(deployment)
    added = add_bob(deployment)
    assert added.exit_code == 0, added.output
    assert "bob-password-42" not in added.output
    assert status(deployment, "bob", "bob-password-42") == 200
    listed = deployment.run("users", "list", "--json")
    rows = {r["name"]: r["status"] for r in json.loads(listed.stdout)["hosts"]["localhost"]["users"]}
    assert rows == {"alice": "ok", "bob": "ok"}
    assert deployment.up_json()["changed"] is False
    removed = deployment.run("users", "remove", "bob")
    assert removed.exit_code == 0, removed.output
    assert status(deployment, "bob", "bob-password-42") == 401
    assert status(deployment, "alice", deployment.password()) == 200
    assert identity(deployment) == before


def test_rotation_drops_no_request_of_other_users(deployment: Deployment) -> None:
    deployment.up_json()
    added = add_bob(deployment)
    assert added.exit_code == 0, added.output
    push_small_image(deployment.api("bob", "bob-password-42"), "team/app")
    bob = deployment.api("bob", "bob-password-42")
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    failures: list[int] = []
    done = threading.Event()
    pulls = 0

    def pull_loop() -> None:
        nonlocal pulls
        while pulls < 200:  # bounded: 200 manifest+blob pulls
            manifest = bob.request("GET", "/v2/team/app/manifests/v1", headers=accept)
            layer = manifest.json()["layers"][0]["digest"] if manifest.status == 200 else None
            blob = bob.request("GET", f"/v2/team/app/blobs/{layer}") if layer else None
            if manifest.status != 200 or blob is None or blob.status != 200:
                failures.append(manifest.status)
            pulls += 1
        done.set()

    thread = threading.Thread(target=pull_loop)
    thread.start()
    try:
        for _ in range(3):
            result = deployment.run("users", "rotate", "alice")
            assert result.exit_code == 0, result.output
    finally:
        thread.join(timeout=120)
    assert done.is_set()
    print(f"bob: {pulls} pulls during 3 rotations of alice, {len(failures)} failed")
    assert pulls == 200 and failures == []


def test_bad_input_is_refused(deployment: Deployment) -> None:
    deployment.up_json()
    argv = deployment.run("users", "add", "eve", "--password", "on-argv")
    assert argv.exit_code == 2 and "No such option '--password'" in argv.output
    inv = ["-i", str(deployment.inventory)]
    long = CliRunner().invoke(cli, ["users", "add", "eve", "--password-stdin", *inv], input="x" * 73 + "\n")
    assert long.exit_code == 2 and "73 bytes; bcrypt uses at most 72" in long.output
    colon = deployment.run("users", "add", "ev:e")
    assert colon.exit_code == 2 and "user name 'ev:e'" in colon.output
    twice = deployment.run("users", "add", "alice")
    assert twice.exit_code == 2 and "defined in the inventory" in twice.output
    from_env = deployment.registry["auth"]["users"].append({"name": "carol", "password": {"env": "CAROL"}})
    assert from_env is None
    deployment.env["CAROL"] = "carol-password"
    deployment.write()
    refused = deployment.run("users", "rotate", "carol")
    assert refused.exit_code == 2 and "comes from env:CAROL; change it there" in refused.output


def test_list_shows_drift_and_non_bcrypt_lines(deployment: Deployment) -> None:
    deployment.up_json()
    htpasswd = deployment.config / "auth" / "htpasswd"
    htpasswd.write_text(htpasswd.read_text() + "mallory:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    result = deployment.run("users", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["hosts"]["localhost"]["users"]}
    assert rows["alice"]["status"] == "ok" and rows["alice"]["password"] == "generated"
    assert rows["mallory"]["status"].startswith("unmanaged") and "not bcrypt" in rows["mallory"]["status"]
    assert "$2" not in result.stdout  # never a hash
