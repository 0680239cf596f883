"""`regdeploy gc` on one host whose registry a local balancer fronts (registry.cluster and
registry_lb on that host): a read-only standby serves while the registry restarts, so a loop of
pulls through the balancer during gc has no failure — on the real engine, registry 2.8.2 and
haproxy, each pull a fresh connection."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from deploytools import Deployment, deployment, image_config, push_small_image

from regdeploy.deploy.units import STANDBY_ENV
from regdeploy.verify.registry_api import RegistryClient

__all__ = ["deployment"]

pytestmark = pytest.mark.integration

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def fronted(d: Deployment, port: int, haproxy_image: str) -> None:
    d.registry["cluster"] = d.name
    d.write(registry_lb={"cluster": d.name, "port": port, "name": f"{d.name}-lb", "image": haproxy_image})


def deployed_with_kept(d: Deployment, port: int, haproxy_image: str) -> str:
    """The fronted registry up, "team/app:new" pushed through the balancer; its digest."""
    fronted(d, port, haproxy_image)
    d.up_json()
    lb = d.api(port=port)
    try:
        return push_small_image(lb, "team/app", b"kept layer", "new", image_config(diff_ids=["new"]))
    finally:
        lb.close()  # an idle keep-alive connection would hold a drain for its 10 s


def pull(api: RegistryClient, tag: str) -> str:
    """A pull as a client makes it: the manifest, then every blob it names; the manifest digest."""
    got = api.request("GET", f"/v2/team/app/manifests/{tag}", headers={"Accept": MANIFEST})
    assert got.status == 200, got
    manifest = json.loads(got.body)
    for blob in [manifest["config"], *manifest["layers"]]:
        assert api.request("GET", f"/v2/team/app/blobs/{blob['digest']}").status == 200
    return str(got.headers["docker-content-digest"])


class Traffic:
    """Pulls (manifest and blobs) and push starts through the balancer on threads of their own, one
    fresh connection each, while the block runs (bounded in time); what failed, what was refused."""

    def __init__(self, d: Deployment, port: int, digest: str, seconds: float = 240.0) -> None:
        self.d, self.port, self.digest, self.seconds = d, port, digest, seconds
        self.pulls = 0
        self.failures: list[str] = []
        self.refusals: list[int] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _pull(self) -> None:
        api = self.d.api(port=self.port)
        try:
            assert pull(api, "new") == self.digest
            self.pulls += 1
        except Exception as exc:  # every failure counts, whatever it is
            self.failures.append(f"{type(exc).__name__}: {exc}"[:200])
        finally:
            api.close()

    def _push(self) -> None:
        api = self.d.api(port=self.port)
        try:
            start = api.request("POST", "/v2/team/during/blobs/uploads/")
            if start.status >= 400:
                self.refusals.append(start.status)
        except OSError as exc:
            self.failures.append(f"push: {type(exc).__name__}: {exc}"[:200])
        finally:
            api.close()

    def _loop(self, step: Callable[[], None]) -> None:
        deadline = time.monotonic() + self.seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            step()
            time.sleep(0.02)

    def __enter__(self) -> Traffic:
        for step in (self._pull, self._push):
            self._threads.append(threading.Thread(target=self._loop, args=(step,), daemon=True))
            self._threads[-1].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def check(self, what: str, window: bool = True, least: int = 20) -> None:
        print(f"pulls through the balancer during {what}: {self.pulls} ok, {len(self.failures)} failed")
        assert self.failures == [], self.failures[:5]
        assert self.pulls >= least, self.pulls
        if window:  # pushes get the read-only refusal in it, never a 503
            assert self.refusals and set(self.refusals) == {405}, self.refusals
        else:  # a replacement: pushes reaching the standby are refused the same way
            assert set(self.refusals) <= {405}, self.refusals


def test_pulls_through_a_local_balancer_never_fail_during_gc(
    deployment: Deployment, free_port: Callable[[], int], haproxy_image: str, docker_client: Any
) -> None:
    d = deployment
    lb_port = free_port()
    kept = deployed_with_kept(d, lb_port, haproxy_image)
    lb = d.api(port=lb_port)
    big = b"collected layer " * 65536
    config = image_config(created="2026-01-01T00:00:00Z", diff_ids=["old"])
    gone = push_small_image(lb, "team/app", big, "old", config)
    assert lb.request("DELETE", f"/v2/team/app/manifests/{gone}").status == 202
    lb.close()

    with Traffic(d, lb_port, kept) as traffic:
        done = d.run("gc", "--json")
    assert done.exit_code == 0, done.output
    traffic.check("gc")
    host = json.loads(done.stdout)["hosts"]["localhost"]
    assert host["blobs"] >= 2 and host["freed"] >= len(big), host
    assert "a read-only standby serves pulls" in done.stderr and "standby removed" in done.stderr
    assert "warning" not in done.stderr, done.stderr
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
    kept = deployed_with_kept(d, lb_port, haproxy_image)
    standby = f"{d.name}-standby"
    gc = subprocess.Popen(
        [sys.executable, "-m", "regdeploy", "gc", "-i", str(d.inventory)],
        env={**os.environ, **d.env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert gc.stderr is not None
        for line in gc.stderr:  # killed the moment the standby serves at the balancer
            if "a read-only standby serves pulls" in line:
                os.kill(gc.pid, signal.SIGKILL)
                break
        else:
            pytest.fail("gc never started its standby")
    finally:
        gc.wait(30)
    (left,) = docker_client.containers.list(filters={"name": standby})
    hc, config = left.attrs["HostConfig"], left.attrs["Config"]  # hardened as every unit
    assert config["User"] == "65532:65532" and hc["ReadonlyRootfs"] is True and hc["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in hc["SecurityOpt"] and hc["Memory"] > 0 and hc["PidsLimit"] > 0
    names = {e.split("=")[0] for e in config["Env"]} - {"PATH"}  # the image's own PATH aside
    assert not hc["PortBindings"] and names == set(STANDBY_ENV), names
    password = d.password()
    assert password not in left.logs().decode() and password not in json.dumps(left.attrs)
    status = d.run("status", "--json")
    units = {u["name"]: u for u in json.loads(status.stdout)["hosts"]["localhost"]["units"]}
    assert units[standby]["role"].startswith("standby (read-only") and units[standby]["running"], units
    with Traffic(d, lb_port, kept) as traffic:  # the leftover goes, the registry is replaced: no pause
        recovered = d.run("up", "--json")
    assert recovered.exit_code == 0, recovered.output
    # A short run: the registry did not change, the leftover only goes (drained first).
    traffic.check("the up after a killed gc", window=False, least=2)
    assert "taking the standby left by an earlier run out of the balancer" in recovered.stderr
    report = json.loads(recovered.stdout)
    removal = [c for c in report["hosts"]["localhost"]["changes"] if c["resource"] == f"container:{standby}"]
    assert [c["action"] for c in removal] == ["remove"], report
    assert "an interrupted run left" in removal[0]["reason"]
    assert not docker_client.containers.list(all=True, filters={"name": standby})
    for _ in range(6):  # every push lands on the writable registry now, never on a read-only one
        api = d.api(port=lb_port)
        try:
            assert api.request("POST", "/v2/team/after/blobs/uploads/").status == 202
        finally:
            api.close()
    assert d.up_json()["changed"] is False


def test_pulls_through_a_local_balancer_never_fail_during_backup(
    deployment: Deployment, free_port: Callable[[], int], haproxy_image: str, tmp_path: Path
) -> None:
    d = deployment
    lb_port = free_port()
    kept = deployed_with_kept(d, lb_port, haproxy_image)
    checked = d.run("verify", "--json")  # directly and through the balancer
    assert checked.exit_code == 0, checked.output
    with Traffic(d, lb_port, kept) as traffic:
        made = d.run("backup", "--to", str(tmp_path / "backup"), "--json")
    assert made.exit_code == 0, made.output
    traffic.check("backup")
    assert (tmp_path / "backup" / "regdeploy-backup.json").exists()
    assert "readonly:\n      enabled: false" in (d.config / "config.yml").read_text()


def test_pulls_through_a_local_balancer_never_fail_while_up_or_rollback_replaces_the_registry(
    deployment: Deployment, free_port: Callable[[], int], haproxy_image: str
) -> None:
    d = deployment
    lb_port = free_port()
    kept = deployed_with_kept(d, lb_port, haproxy_image)
    d.registry["log_level"] = "warn"  # config.yml changes: the registry is replaced
    fronted(d, lb_port, haproxy_image)
    with Traffic(d, lb_port, kept) as traffic:
        changed = d.run("up", "--json")
    assert changed.exit_code == 0, changed.output
    traffic.check("up", window=False)
    assert "a read-only standby serves pulls" in changed.stderr and "standby removed" in changed.stderr
    assert 'level: "warn"' in (d.config / "config.yml").read_text()
    with Traffic(d, lb_port, kept) as traffic:
        back = d.run("rollback", "--json")
    assert back.exit_code == 0, back.output
    traffic.check("rollback", window=False)
    assert "standby removed" in back.stderr
    assert 'level: "info"' in (d.config / "config.yml").read_text()  # the previous config is back
