"""`regdeploy gc` on one host whose registry a local balancer fronts (registry.cluster and
registry_lb on that host): a read-only standby serves while the registry restarts, so a loop of
pulls through the balancer during gc has no failure — on the real engine, registry 2.8.2 and
haproxy, each pull a fresh connection."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from deploytools import Deployment, deployment, image_config, push_small_image

from regdeploy.verify.registry_api import RegistryClient

__all__ = ["deployment"]

pytestmark = pytest.mark.integration

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def fronted(d: Deployment, port: int, haproxy_image: str) -> None:
    d.registry["cluster"] = d.name
    d.write(registry_lb={"cluster": d.name, "port": port, "name": f"{d.name}-lb", "image": haproxy_image})


def pull(api: RegistryClient, tag: str) -> str:
    """A pull as a client makes it: the manifest, then every blob it names; the manifest digest."""
    got = api.request("GET", f"/v2/team/app/manifests/{tag}", headers={"Accept": MANIFEST})
    assert got.status == 200, got
    manifest = json.loads(got.body)
    for blob in [manifest["config"], *manifest["layers"]]:
        assert api.request("GET", f"/v2/team/app/blobs/{blob['digest']}").status == 200
    return str(got.headers["docker-content-digest"])


def loop(stop: threading.Event, step: Callable[[], None], seconds: float = 240.0) -> threading.Thread:
    """*step* again and again on a thread of its own until *stop* (bounded in time)."""

    def run() -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            step()
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_pulls_through_a_local_balancer_never_fail_during_gc(
    deployment: Deployment, free_port: Callable[[], int], haproxy_image: str, docker_client: Any
) -> None:
    d = deployment
    lb_port = free_port()
    fronted(d, lb_port, haproxy_image)
    d.up_json()
    lb = d.api(port=lb_port)
    big = b"collected layer " * 65536
    config = image_config(created="2026-01-01T00:00:00Z", diff_ids=["old"])
    gone = push_small_image(lb, "team/app", big, "old", config)
    kept = push_small_image(lb, "team/app", b"kept layer", "new", image_config(diff_ids=["new"]))
    assert lb.request("DELETE", f"/v2/team/app/manifests/{gone}").status == 202

    pulls = {"ok": 0}
    failures: list[str] = []
    refusals: list[int] = []

    def one_pull() -> None:
        api = d.api(port=lb_port)
        try:
            assert pull(api, "new") == kept
            pulls["ok"] += 1
        except Exception as exc:  # every failure counts, whatever it is
            failures.append(f"{type(exc).__name__}: {exc}"[:200])
        finally:
            api.close()

    def one_push() -> None:
        api = d.api(port=lb_port)
        try:
            start = api.request("POST", "/v2/team/during/blobs/uploads/")
            if start.status >= 400:
                refusals.append(start.status)
        except OSError as exc:
            failures.append(f"push: {type(exc).__name__}: {exc}"[:200])
        finally:
            api.close()

    stop = threading.Event()
    threads = [loop(stop, one_pull), loop(stop, one_push)]
    try:
        done = d.run("gc", "--json")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    print(f"pulls through the balancer during gc: {pulls['ok']} ok, {len(failures)} failed")
    assert done.exit_code == 0, done.output
    assert failures == [], failures[:5]
    assert pulls["ok"] >= 20, pulls
    assert refusals and set(refusals) == {405}, refusals  # the read-only refusal, never a 503
    host = json.loads(done.stdout)["hosts"]["localhost"]
    assert host["blobs"] >= 2 and host["freed"] >= len(big), host
    assert "a read-only standby serves pulls" in done.stderr
    assert not docker_client.containers.list(all=True, filters={"name": f"{d.name}-standby"})
    # Writable again, cache clear: the collected image pushes anew and pulls.
    assert push_small_image(lb, "team/app", big, "old", config) == gone
    assert pull(lb, "old") == gone
    assert d.up_json()["changed"] is False


def test_up_after_a_gc_killed_in_its_window_removes_the_standby_and_is_writable(
    deployment: Deployment, free_port: Callable[[], int], haproxy_image: str, docker_client: Any
) -> None:
    import os
    import signal
    import subprocess
    import sys

    d = deployment
    lb_port = free_port()
    fronted(d, lb_port, haproxy_image)
    d.up_json()
    lb = d.api(port=lb_port)
    push_small_image(lb, "team/app", b"a layer", "v1", image_config(diff_ids=["v1"]))
    standby = f"{d.name}-standby"
    gc = subprocess.Popen(
        [sys.executable, "-m", "regdeploy", "gc", "-i", str(d.inventory)],
        env={**os.environ, **d.env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "readonly:\n      enabled: true" not in (d.config / "config.yml").read_text():
            assert gc.poll() is None and time.monotonic() < deadline, "gc never went read-only"
            time.sleep(0.1)
        os.kill(gc.pid, signal.SIGKILL)  # in the window: the standby runs, the registry is read-only
    finally:
        gc.wait(30)
    assert docker_client.containers.list(filters={"name": standby})
    status = d.run("status", "--json")
    units = {u["name"]: u for u in json.loads(status.stdout)["hosts"]["localhost"]["units"]}
    assert units[standby]["role"].startswith("standby (read-only") and units[standby]["running"], units
    report = d.up_json()
    removal = [c for c in report["hosts"]["localhost"]["changes"] if c["resource"] == f"container:{standby}"]
    assert [c["action"] for c in removal] == ["remove"], report
    assert "interrupted gc or backup" in removal[0]["reason"]
    assert not docker_client.containers.list(all=True, filters={"name": standby})
    for _ in range(6):  # every push lands on the writable registry now, never on a read-only one
        api = d.api(port=lb_port)
        try:
            assert api.request("POST", "/v2/team/after/blobs/uploads/").status == 202
        finally:
            api.close()
    assert d.up_json()["changed"] is False
