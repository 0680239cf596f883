"""`regdeploy backup` / `restore` for registries on SSH hosts: two lab hosts (sshd + dockerd, no way
to pull), lab1 reached as root, lab2 as `deploy` through sudo.

Backup from lab1, `down --purge-data`, a fresh control machine (no state dir), restore, `up`, and
every digest pulls with the same CA and users; the same backup restores onto lab2, a host that never
ran a registry. A push while the backup runs gets the read-only refusal. Broken archives (truncated;
a damaged header; damaged data) change nothing on the host. Everything lives in one temporary
directory and the module's own lab (network, containers, volumes), all removed at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from deploytools import image_config, push_small_image
from lab import Lab, LabHost, lab_hosts

from regdeploy.cli import cli
from regdeploy.verify.registry_api import RegistryClient

pytestmark = pytest.mark.integration

NAME = "bkreg"
PORT = 5041
DATA = "/var/lib/regdeploy"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LISTING = f"cd {DATA} && find . -printf '%P %y %m %u:%g\\n' | sort"
SUMS = f"cd {DATA} && find . -type f -exec sha256sum {{}} + | sort"


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="regdeploy-test-backup-ssh-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def lab(docker_client: Any, work: Path) -> Iterator[Lab]:
    with lab_hosts(docker_client, 2, work / "lab") as lab:
        yield lab


class Fleet:
    def __init__(self, root: Path, lab: Lab, image: str) -> None:
        self.root = root
        self.lab = lab
        lab1, lab2 = lab.hosts
        registry = {"name": NAME, "image": image, "port": PORT, "tls": {"mode": "selfsigned"},
                    "auth": {"users": [{"name": "alice"}], "bcrypt_cost": 5},
                    "health_timeout": "30s"}  # fmt: skip
        group = {"ansible_ssh_private_key_file": str(lab.key.private), "ansible_ssh_timeout": 5,
                 "regdeploy_known_hosts": str(lab.known_hosts),
                 "regdeploy_ssh_config": str(lab.tmp / "ssh_config"), "registry": registry}  # fmt: skip
        hosts = {
            "lab1": {"ansible_host": lab1.ip, "ansible_user": "root"},
            "lab2": {"ansible_host": lab2.ip, "ansible_user": "deploy", "ansible_become": True},
        }
        root.mkdir(parents=True)
        (root / "group_vars").mkdir()
        (root / "group_vars" / "registries.yml").write_text(yaml.safe_dump(group))
        (root / "hosts.yml").write_text(
            yaml.safe_dump({"all": {"children": {"registries": {"hosts": hosts}}}})
        )

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(cli, [*args, "-i", str(self.root)], catch_exceptions=False)

    def ok(self, *args: str) -> dict[str, Any]:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        self.last = result
        return dict(json.loads(result.stdout))

    @property
    def state(self) -> Path:
        return self.root / ".regdeploy"

    def api(self, host: LabHost) -> RegistryClient:
        ca = (self.state / "ca" / "ca.crt").read_bytes()
        password = (self.state / "secrets" / "users" / "alice").read_text()
        return RegistryClient(host.ip, PORT, ca, "alice", password, server_hostname=host.ip, timeout=30)


@pytest.fixture(scope="module")
def fleet(lab: Lab, registry_image: str, work: Path) -> Iterator[Fleet]:
    f = Fleet(work / "inventory", lab, registry_image)
    yield f
    f.run("down", "--purge-data", "--yes")


def push(api: RegistryClient, repo: str, layer: bytes) -> str:
    return push_small_image(api, repo, layer, "v1", image_config(diff_ids=[repo]))


def pulls(api: RegistryClient, repo: str, digest: str) -> None:
    """The manifest by digest and every blob it names, each matching its digest."""
    got = api.request("GET", f"/v2/{repo}/manifests/{digest}", headers={"Accept": MANIFEST})
    assert got.status == 200, (repo, got.status)
    assert "sha256:" + hashlib.sha256(got.body).hexdigest() == digest
    manifest = json.loads(got.body)
    for blob in [manifest["config"], *manifest["layers"]]:
        body = api.request("GET", f"/v2/{repo}/blobs/{blob['digest']}")
        assert body.status == 200, (repo, blob["digest"], body.status)
        assert "sha256:" + hashlib.sha256(body.body).hexdigest() == blob["digest"]


def timed(f: Fleet, *args: str) -> tuple[dict[str, Any], float]:
    start = time.monotonic()
    report = f.ok(*args)
    return report, time.monotonic() - start


def test_backup_purge_restore_up_and_every_digest_pulls_on_lab1_and_on_a_fresh_lab2(
    fleet: Fleet, lab: Lab, work: Path
) -> None:
    f = fleet
    lab1, lab2 = lab.hosts
    f.ok("up", "--limit", "lab1")
    images = {"team/big": os.urandom(24 << 20), "team/small": os.urandom(4 << 20)}
    digests = {repo: push(f.api(lab1), repo, layer) for repo, layer in images.items()}
    ca = (f.state / "ca" / "ca.crt").read_bytes()
    users = (f.state / "secrets" / "users" / "alice").read_text()
    listing = lab1.sh(LISTING)

    to = work / "backup-1"
    made, backup_seconds = timed(f, "backup", "--limit", "lab1", "--to", str(to))
    progress = f.last.stderr
    print(progress)
    for line in ("[lab1] read-only while the data is copied", "[lab1] copying /var/lib/regdeploy (~",
                 "[lab1] copied ", "MB/s)", "[lab1] writable again"):  # fmt: skip
        assert line in progress, progress
    assert users not in f.last.output
    entry = made["hosts"]["lab1"]
    archive = to / "lab1" / "data.tar"
    assert entry["data"] == "lab1/data.tar" and entry["bytes"] == archive.stat().st_size
    assert entry["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (to.stat().st_mode & 0o777, archive.stat().st_mode & 0o777) == (0o700, 0o600)
    assert (to / "state" / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    manifest = json.loads((to / "regdeploy-backup.json").read_text())
    assert manifest["hosts"]["lab1"]["registry"] == NAME and list(manifest["hosts"]) == ["lab1"]
    with tarfile.open(archive) as tar:  # the local backup's layout: the data dir's content at "."
        members = tar.getmembers()
    assert {m.uid for m in members} == {65532} and "./docker/registry/v2/repositories/team/big" in {
        m.name for m in members
    }
    assert "readonly:\n      enabled: false" in lab1.sh("cat /etc/regdeploy/config.yml")  # writable again

    f.ok("down", "--purge-data", "--yes", "--limit", "lab1")
    assert lab1.sh(f"test -e {DATA} && echo present || echo gone").strip() == "gone"
    shutil.rmtree(f.state)  # a fresh control machine: the state comes from the backup

    restored, restore_seconds = timed(f, "restore", "--from", str(to), "--limit", "lab1")
    print(f.last.stderr)
    assert "[lab1] restored " in f.last.stderr and "MB/s)" in f.last.stderr
    assert users not in f.last.output
    assert "ca/ca.key" in restored["state_files"]
    assert restored["hosts"]["lab1"]["bytes"] == entry["bytes"]
    assert lab1.sh(LISTING) == listing  # every entry back with its mode and owner (65532)
    assert lab1.sh(f"ls -a {os.path.dirname(DATA)} | grep regdeploy").split() == ["regdeploy"]
    f.ok("up", "--limit", "lab1")
    assert (f.state / "ca" / "ca.crt").read_bytes() == ca  # same CA and users: clients need nothing new
    assert (f.state / "secrets" / "users" / "alice").read_text() == users
    for repo, digest in digests.items():
        pulls(f.api(lab1), repo, digest)
    push(f.api(lab1), "team/after", os.urandom(1024))  # writable, owned right

    # The same backup onto lab2, which never ran a registry (reached as `deploy`, through sudo).
    other = f.run("restore", "--from", str(to), "--limit", "lab2")
    assert other.exit_code == 2 and "--from-host" in other.output
    assert len(other.output.strip().splitlines()) == 1
    onto, onto_seconds = timed(f, "restore", "--from", str(to), "--limit", "lab2", "--from-host", "lab1")
    assert onto["hosts"]["lab2"]["from_host"] == "lab1"
    assert lab2.sh(LISTING) == listing
    f.ok("up", "--limit", "lab2")
    for repo, digest in digests.items():
        pulls(f.api(lab2), repo, digest)
    print(
        f"\nbackup of lab1: {entry['bytes'] / 1e6:.1f} MB archive in {backup_seconds:.1f}s "
        f"(host entry {entry['seconds']}s, read-only window included); restore onto lab1: "
        f"{restore_seconds:.1f}s; onto lab2 (sudo): {onto_seconds:.1f}s"
    )


def test_a_push_during_the_backup_is_refused_read_only(fleet: Fleet, lab: Lab, work: Path) -> None:
    f = fleet
    lab1 = lab.hosts[0]
    f.ok("up", "--limit", "lab1")
    kept = push(f.api(lab1), "team/kept", os.urandom(64 << 20))  # a copy long enough to push into
    refusals: list[tuple[int, bytes]] = []
    pulled = {"ok": 0, "failed": 0}
    result: dict[str, Result] = {}

    def backup() -> None:
        result["backup"] = f.run("backup", "--limit", "lab1", "--to", str(work / "backup-2"), "--json")

    thread = threading.Thread(target=backup)
    thread.start()
    try:
        while thread.is_alive():
            try:
                start = f.api(lab1).request("POST", "/v2/team/during/blobs/uploads/")
                if start.status >= 400:
                    refusals.append((start.status, start.body))
                got = f.api(lab1).request("GET", f"/v2/team/kept/manifests/{kept}",
                                          headers={"Accept": MANIFEST})  # fmt: skip
                pulled["ok" if got.status == 200 else "failed"] += 1
            except OSError:
                pulled["failed"] += 1  # the restarts into and out of read-only
            time.sleep(0.02)
    finally:
        thread.join(120)
    done = result["backup"]
    assert done.exit_code == 0, done.output
    print(f"\nduring the backup: {len(refusals)} pushes refused; pulls: {pulled['ok']} ok, "
          f"{pulled['failed']} failed (the two restarts)")  # fmt: skip
    assert refusals and all(status == 405 for status, _ in refusals), refusals[:3]
    assert b"Method not allowed" in refusals[0][1]  # 2.8's plain-text read-only refusal
    assert pulled["ok"] > 0
    assert "readonly:\n      enabled: false" in lab1.sh("cat /etc/regdeploy/config.yml")
    push(f.api(lab1), "team/during", os.urandom(1024))  # writable again


def test_a_broken_restore_leaves_the_data_as_it_was(fleet: Fleet, lab: Lab, work: Path) -> None:
    f = fleet
    lab1 = lab.hosts[0]
    f.ok("up", "--limit", "lab1")
    push(f.api(lab1), "team/before", os.urandom(2 << 20))
    good = work / "backup-3"
    f.ok("backup", "--limit", "lab1", "--to", str(good))
    after = push(f.api(lab1), "team/newer", os.urandom(1 << 20))  # data the backup does not have
    f.ok("down", "--limit", "lab1")
    sums, listing = lab1.sh(SUMS), lab1.sh(LISTING)

    refused = f.run("restore", "--from", str(good), "--limit", "lab1")
    assert refused.exit_code == 2 and "not empty" in refused.output and "--force" in refused.output
    assert len(refused.output.strip().splitlines()) == 1

    def broken(name: str, damage: Any) -> Path:
        copy = work / name
        shutil.copytree(good, copy)
        archive = copy / "lab1" / "data.tar"
        raw = bytearray(archive.read_bytes())
        damage(raw, archive)
        archive.write_bytes(bytes(raw))
        return copy

    def header_of_a_blob(raw: bytearray, archive: Path) -> None:
        with tarfile.open(archive) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/data") and m.size > 1 << 20)
        raw[member.offset + 10] ^= 0xFF  # tar on the host: "Skipping to next header", exit 2

    def inside_a_blob(raw: bytearray, archive: Path) -> None:
        with tarfile.open(archive) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/data") and m.size > 1 << 20)
        raw[member.offset_data + 1000] ^= 0xFF  # only the digest can tell

    truncated = broken("truncated", lambda raw, _: raw.__delitem__(slice(len(raw) // 2, None)))
    cut = f.run("restore", "--from", str(truncated), "--limit", "lab1", "--force")
    assert cut.exit_code == 2 and "truncated or replaced" in cut.output, cut.output
    assert len(cut.output.strip().splitlines()) == 1

    for name, damage, says in (("header", header_of_a_blob, "Skipping to next header"),
                               ("data", inside_a_blob, "sha256")):  # fmt: skip
        source = str(broken(name, damage))
        failed = f.run("restore", "--from", source, "--limit", "lab1", "--force", "--json")
        assert failed.exit_code == 1, failed.output
        error = json.loads(failed.stdout)["hosts"]["lab1"]["error"]
        assert says in error and "nothing replaced" in error, error
        assert lab1.sh(SUMS) == sums and lab1.sh(LISTING) == listing  # the data as it was
        assert lab1.sh(f"ls -a {os.path.dirname(DATA)} | grep regdeploy").split() == ["regdeploy"]

    f.ok("up", "--limit", "lab1")
    pulls(f.api(lab1), "team/newer", after)


def test_a_registry_on_s3_is_backed_up_as_its_state_only(
    lab: Lab, registry_image: str, work: Path
) -> None:
    from s3server import start_on_lab

    lab2 = lab.hosts[1]
    (work / "s3-tmp").mkdir()
    s3 = start_on_lab(lab2, work / "s3-tmp")
    root = work / "s3-inventory"
    root.mkdir()
    s3_settings = {"bucket": s3.bucket, "region": "us-east-1", "regionendpoint": s3.url,
                   "accesskey": {"env": "TEST_S3_ACCESS"}, "secretkey": {"env": "TEST_S3_SECRET"},
                   "rootdirectory": "/bks3"}  # fmt: skip
    registry = {"name": "bks3", "image": registry_image, "port": PORT + 1, "tls": {"mode": "selfsigned"},
                "auth": {"users": [{"name": "alice"}], "bcrypt_cost": 5}, "health_timeout": "30s",
                "storage": {"s3": s3_settings}}  # fmt: skip
    host = {"ansible_host": lab2.ip, "ansible_user": "root", "ansible_ssh_timeout": 5,
            "ansible_ssh_private_key_file": str(lab.key.private),
            "regdeploy_known_hosts": str(lab.known_hosts),
            "regdeploy_ssh_config": str(lab.tmp / "ssh_config"), "registry": registry}  # fmt: skip
    (root / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"lab2": host}}}))
    env = {"TEST_S3_ACCESS": s3.access, "TEST_S3_SECRET": s3.secret}

    def run(*args: str) -> Result:
        return CliRunner(env=env).invoke(cli, [*args, "-i", str(root / "hosts.yml")], catch_exceptions=False)

    try:
        up = run("up")
        assert up.exit_code == 0, up.output
        started = lab2.docker("inspect --format '{{.State.StartedAt}}' bks3")
        to = work / "backup-s3"
        made = run("backup", "--to", str(to))
        assert made.exit_code == 0, made.output
        assert f"lab2: state only (its data is on s3://{s3.bucket}/bks3 at {s3.url}" in made.stdout
        assert "storage's own means" in made.output
        assert s3.secret not in made.output and s3.access not in made.output
        entry = json.loads((to / "regdeploy-backup.json").read_text())["hosts"]["lab2"]
        assert entry["data"] is None and entry["storage"].startswith(f"s3://{s3.bucket}")
        assert not (to / "lab2").exists() and (to / "state" / "ca" / "ca.key").exists()
        # No read-only window: the registry was not switched (nor restarted).
        assert lab2.docker("inspect --format '{{.State.StartedAt}}' bks3") == started
        down = run("down")
        assert down.exit_code == 0, down.output
        restored = run("restore", "--from", str(to))
        assert restored.exit_code == 0, restored.output
        assert "state only" in restored.output
    finally:
        run("down", "--purge-data", "--yes")
        s3.close()
