"""`regdeploy gc` on the real engine (registry 2.8.2): bytes freed, kept images intact, pushes refused
while it runs, and a re-push of a collected image works afterwards (no stale cache)."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest
from deploytools import Deployment, deployment, image_config, push_small_image

from regdeploy.verify.registry_api import RegistryClient

__all__ = ["deployment"]

pytestmark = pytest.mark.integration

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def push(api: RegistryClient, repo: str, tag: str, layer: bytes) -> str:
    config = image_config(created=f"2026-01-01T00:00:0{len(tag)}Z", diff_ids=[tag])
    return push_small_image(api, repo, layer, tag, config)


def pulls(api: RegistryClient, repo: str, tag: str) -> str | None:
    got = api.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST})
    return got.headers.get("docker-content-digest") if got.status == 200 else None


def test_gc_frees_the_deleted_image_and_keeps_the_rest(deployment: Deployment) -> None:
    d = deployment
    d.up_json()
    api = d.api()
    big = b"collected layer " * 65536  # 1 MiB that only the deleted image references
    gone = push(api, "team/app", "old", big)
    kept = push(api, "team/app", "new", b"kept layer")
    assert api.request("DELETE", f"/v2/team/app/manifests/{gone}").status == 202

    dry = d.run("gc", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    dry_host = json.loads(dry.stdout)["hosts"]["localhost"]
    assert dry_host["blobs"] >= 2 and dry_host["dry_run"]  # the big layer and its config
    assert dry_host["bytes_after"] == dry_host["bytes_before"]

    refusals: list[int] = []
    stop = threading.Event()

    def keep_pushing() -> None:
        # Pushes while gc runs: each is refused while the registry is read-only (or restarting).
        while not stop.is_set():
            try:
                start = d.api().request("POST", "/v2/team/during/blobs/uploads/")
                if start.status >= 400:
                    refusals.append(start.status)
            except OSError:
                pass
            time.sleep(0.05)

    pulled = {"ok": 0, "failed": 0}

    def keep_pulling() -> None:
        while not stop.is_set():
            try:
                ok = pulls(d.api(), "team/app", "new") == kept
            except OSError:
                ok = False
            pulled["ok" if ok else "failed"] += 1
            time.sleep(0.02)

    threads = [threading.Thread(target=keep_pushing), threading.Thread(target=keep_pulling)]
    for thread in threads:
        thread.start()
    try:
        done = d.run("gc", "--json")
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    # Pulls keep working through the read-only window; only the two restarts (into and out of
    # read-only) interrupt them, for about a second each.
    print(f"pulls during gc: {pulled['ok']} ok, {pulled['failed']} failed")
    assert pulled["ok"] > 0
    assert done.exit_code == 0, done.output
    host = json.loads(done.stdout)["hosts"]["localhost"]
    assert host["blobs"] >= 2
    assert host["freed"] >= len(big)  # the data dir shrank by the collected layer at least
    assert refusals, "no push was refused during the read-only window"
    assert pulls(api, "team/app", "new") == kept  # what is referenced is intact
    assert pulls(api, "team/app", "old") is None
    # The registry is writable again, and a re-push of the collected image works: the
    # blob-descriptor cache was cleared (else the upload would claim the blob exists).
    assert push(api, "team/app", "old", big) == gone
    assert pulls(api, "team/app", "old") == gone
    blob = api.request("GET", f"/v2/team/app/blobs/sha256:{hashlib.sha256(big).hexdigest()}")
    assert blob.status in (200, 307) and (blob.status == 307 or blob.body == big)
    config = (d.config / "config.yml").read_text()
    assert "readonly:\n      enabled: false" in config
    assert d.up_json()["changed"] is False


def test_a_gc_schedule_is_a_cron_entry_whose_script_collects_and_leaves_the_registry_writable(
    deployment: Deployment,
) -> None:
    import subprocess

    d = deployment
    cron = d.tmp / "cron.d"
    # February 31st: a schedule that never fires, should a cron daemon read this directory.
    d.registry["gc"] = {"schedule": "0 0 31 2 *", "cron_dir": str(cron)}
    d.write()
    d.up_json()
    entry = cron / f"regdeploy-gc-{d.name}"
    script = d.config / "gc" / "regdeploy-gc"
    assert entry.stat().st_mode & 0o777 == 0o644 and script.stat().st_mode & 0o777 == 0o700
    assert entry.read_text().splitlines()[-1] == (
        f"0 0 31 2 * root /bin/sh {script} >>/var/log/regdeploy-gc-{d.name}.log 2>&1"
    )
    assert d.password() not in script.read_text()
    api = d.api()
    gone = push(api, "team/app", "old", b"scheduled collection " * 65536)
    kept = push(api, "team/app", "new", b"kept layer")
    assert api.request("DELETE", f"/v2/team/app/manifests/{gone}").status == 202
    config = (d.config / "config.yml").read_bytes()
    started = d.container()["State"]["StartedAt"]
    before = sum(p.stat().st_size for p in (d.tmp / "data").rglob("*") if p.is_file())

    ran = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, timeout=180, check=False)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (
        "read-only" in ran.stdout and "garbage-collect done" in ran.stdout and "writable again" in ran.stdout
    )
    after = sum(p.stat().st_size for p in (d.tmp / "data").rglob("*") if p.is_file())
    assert before - after >= 65536 * len(b"scheduled collection ")
    assert (d.config / "config.yml").read_bytes() == config  # put back byte for byte
    assert not (d.config / "gc" / "config-writable.yml").exists()
    assert d.container()["State"]["StartedAt"] != started  # restarted: its cache is cleared
    assert pulls(d.api(), "team/app", "new") == kept and pulls(d.api(), "team/app", "old") is None
    assert push(d.api(), "team/app", "again", b"written after gc")  # writable
    again = d.up_json()
    assert again["changed"] is False, again
    # Without the schedule, the next `up` removes the entry and the script.
    d.registry.pop("gc")
    d.registry["gc"] = None
    d.write()
    removed = d.up_json()
    gone_files = {c["resource"] for c in removed["hosts"]["localhost"]["changes"] if c["action"] == "remove"}
    assert f"file:{script}" in gone_files and not script.exists()
    assert entry.exists()  # a cron_dir of its own is not known once gc is gone: documented
    entry.unlink()


def test_a_gc_schedule_on_a_cluster_or_with_a_bad_expression_is_refused(deployment: Deployment) -> None:
    d = deployment
    for gc, message in (
        ({"schedule": "every sunday"}, "registry.gc.schedule: 'every sunday' is not a cron schedule"),
        ({"schedule": "@weekly", "untagged": "yes"}, "registry.gc.untagged"),
    ):
        d.registry["gc"] = gc
        d.write()
        result = d.run("up")
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not d.config.exists()  # nothing was changed


def test_gc_of_a_registry_nothing_was_pushed_to_collects_nothing(deployment: Deployment) -> None:
    # distribution's garbage-collect fails on a storage without repositories ("Path not found").
    d = deployment
    d.up_json()
    result = d.run("gc", "--json")
    assert result.exit_code == 0, result.output
    host = json.loads(result.stdout)["hosts"]["localhost"]
    assert host["ok"] and host["blobs"] == 0, host
    assert "nothing to collect" in result.stderr
