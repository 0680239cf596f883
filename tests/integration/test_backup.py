"""`regdeploy backup` / `restore` on the real engine: backup, `down --purge-data`, restore, `up`, and
every digest pulls again with the same CA and users; bad input refused before anything changes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from deploytools import Deployment, deployment, push_small_image

__all__ = ["deployment"]

pytestmark = pytest.mark.integration

ACCEPT = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}


def test_backup_purge_restore_up_and_every_digest_pulls(deployment: Deployment, tmp_path: Path) -> None:
    d = deployment
    d.up_json()
    digests = {repo: push_small_image(d.api(), repo) for repo in ("team/a", "team/b")}
    ca = d.ca
    password = d.password()
    to = tmp_path / "backup"
    made = d.run("backup", "--to", str(to), "--json")
    assert made.exit_code == 0, made.output
    assert (to.stat().st_mode & 0o777) == 0o700
    manifest = json.loads((to / "regdeploy-backup.json").read_text())
    assert manifest["hosts"]["localhost"]["registry"] == d.name
    assert (to / "state" / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert "readonly:\n      enabled: false" in (d.config / "config.yml").read_text()  # writable again

    purged = d.run("down", "--purge-data", "--yes")
    assert purged.exit_code == 0, purged.output
    shutil.rmtree(d.tmp / ".regdeploy")  # a fresh control machine: the state comes from the backup
    assert not (d.tmp / "data").exists()

    restored = d.run("restore", "--from", str(to), "--json")
    assert restored.exit_code == 0, restored.output
    assert "ca/ca.key" in json.loads(restored.stdout)["state_files"]
    assert (d.tmp / "data").stat().st_uid == 65532
    d.up_json()
    assert d.ca == ca and d.password() == password  # the same CA and users, clients need nothing new
    for repo, digest in digests.items():
        got = d.api().request("GET", f"/v2/{repo}/manifests/v1", headers=ACCEPT)
        assert got.status == 200 and got.headers["docker-content-digest"] == digest, repo
    push_small_image(d.api(), "team/after")  # writable, owned right


def test_restore_refuses_what_is_no_backup_or_not_this_registrys(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    nothing = tmp_path / "empty"
    nothing.mkdir()
    refused = d.run("restore", "--from", str(nothing))
    assert refused.exit_code == 2 and "not a regdeploy backup" in refused.output
    assert len(refused.output.strip().splitlines()) == 1

    d.up_json()
    push_small_image(d.api(), "team/kept")
    to = tmp_path / "backup"
    assert d.run("backup", "--to", str(to)).exit_code == 0
    other = dict(json.loads((to / "regdeploy-backup.json").read_text()))
    other["hosts"]["localhost"]["registry"] = "another-registry"
    (to / "regdeploy-backup.json").write_text(json.dumps(other))
    d.run("down")
    wrong = d.run("restore", "--from", str(to))
    assert wrong.exit_code == 2 and "holds registry 'another-registry'" in wrong.output
    other["hosts"]["localhost"]["registry"] = d.name
    (to / "regdeploy-backup.json").write_text(json.dumps(other))
    full = d.run("restore", "--from", str(to))  # the data dir still has the data: not without --force
    assert full.exit_code == 2 and "not empty" in full.output
