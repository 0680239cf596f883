"""Scale-out (issue 14): three registry replicas on lab hosts sharing a real S3 server (SeaweedFS,
on a fourth lab host), a redis unit on the first replica, an haproxy unit on the fourth host in
front of them — all reached over SSH, every image shipped (the lab hosts cannot pull).

Traffic goes only to the lab's own network, which the module creates and removes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from deploytools import push_small_image
from lab import Lab, LabHost, lab_fixture
from s3server import S3Server, start_on_lab

from regdeploy.cli import cli
from regdeploy.verify.registry_api import RegistryClient

pytestmark = pytest.mark.integration

lab = lab_fixture(4)

LB_PORT = 443
REPO = "team/app"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


class Cluster:
    """An inventory of three replicas (lab1-3) and a balancer (lab4), and the CLI run against it."""

    def __init__(self, root: Path, lab: Lab, s3: S3Server, images: dict[str, str]) -> None:
        self.root = root
        self.lab = lab
        self.s3 = s3
        self.replicas = lab.hosts[:3]
        self.lb = lab.hosts[3]
        self.registry: dict[str, Any] = {
            "image": images["registry"],
            "port": 5000,
            "cluster": "main",
            "tls": {"mode": "selfsigned"},
            "auth": {"users": [{"name": "alice"}], "bcrypt_cost": 5},
            "health_timeout": "30s",
            "storage": {
                "s3": {
                    "bucket": s3.bucket,
                    "region": "us-east-1",
                    "regionendpoint": s3.url,
                    "accesskey": {"env": "TEST_S3_ACCESS"},
                    "secretkey": {"env": "TEST_S3_SECRET"},
                    "rootdirectory": "/registry",
                }
            },
            "cache": {"redis": {"deploy_on": "lab1", "image": images["redis"]}},
        }
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.lb_vars: dict[str, Any] = {"cluster": "main", "port": LB_PORT, "image": images["haproxy"]}
        self.conn = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(lab.key.private),
            "regdeploy_known_hosts": str(lab.known_hosts),
            "regdeploy_ssh_config": str(lab.tmp / "ssh_config"),
            "ansible_ssh_timeout": 5,
        }

    def write(self) -> None:
        replicas = {h.name: {"ansible_host": h.ip, **self.host_vars.get(h.name, {})} for h in self.replicas}
        inventory = {
            "all": {
                "vars": self.conn,
                "children": {
                    "registries": {"hosts": replicas, "vars": {"registry": self.registry}},
                    "registry_lbs": {
                        "hosts": {self.lb.name: {"ansible_host": self.lb.ip}},
                        "vars": {"registry_lb": self.lb_vars},
                    },
                },
            }
        }
        (self.root / "hosts.yml").write_text(yaml.safe_dump(inventory))

    def run(self, *args: str) -> Result:
        self.write()
        env = {"TEST_S3_ACCESS": self.s3.access, "TEST_S3_SECRET": self.s3.secret}
        return CliRunner(env=env).invoke(
            cli, [*args, "-i", str(self.root / "hosts.yml")], catch_exceptions=False
        )

    def json(self, *args: str, code: int = 0) -> dict[str, Any]:
        result = self.run(*args, "--json")
        assert result.exit_code == code, result.output
        return dict(json.loads(result.stdout))

    def client(self, host: LabHost, port: int) -> RegistryClient:
        ca = (self.root / ".regdeploy" / "ca" / "ca.crt").read_bytes()
        password = (self.root / ".regdeploy" / "secrets" / "users" / "alice").read_text()
        return RegistryClient(host.ip, port, ca, "alice", password, server_hostname=host.ip)

    def through_lb(self) -> RegistryClient:
        return self.client(self.lb, LB_PORT)


def pull(client: RegistryClient, repo: str = REPO, tag: str = "v1") -> str:
    """A pull as a client makes it: the manifest, then every blob it names; the manifest digest."""
    resp = client.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST})
    assert resp.status == 200, resp
    manifest = json.loads(resp.body)
    for blob in [manifest["config"], *manifest["layers"]]:
        got = client.request("GET", f"/v2/{repo}/blobs/{blob['digest']}")
        assert got.status == 200, got
    return str(resp.headers["docker-content-digest"])


@dataclass
class PullLoop:
    """Pulls through the balancer, one fresh connection each, until stopped (bounded in count and time)."""

    cluster: Cluster
    limit: int = 2000
    seconds: float = 300.0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> PullLoop:
        def loop() -> None:
            deadline = time.monotonic() + self.seconds
            while (
                not self._stop.is_set()
                and time.monotonic() < deadline
                and self.ok + len(self.failures) < self.limit
            ):
                client = self.cluster.through_lb()
                try:
                    pull(client)
                    self.ok += 1
                except Exception as exc:  # every failure counts, whatever it is
                    self.failures.append(f"{type(exc).__name__}: {exc}"[:200])
                finally:
                    client.close()
                time.sleep(0.02)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(30)


@pytest.fixture(scope="module")
def images(registry_image: str, redis_image: str, haproxy_image: str) -> dict[str, str]:
    return {"registry": registry_image, "redis": redis_image, "haproxy": haproxy_image}


@pytest.fixture(scope="module")
def cluster(lab: Lab, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    s3 = start_on_lab(lab.hosts[3], tmp_path_factory.mktemp("s3"))
    root = tmp_path_factory.mktemp("cluster")
    c = Cluster(root, lab, s3, images)
    try:
        first = c.run("up")
        assert first.exit_code == 0, first.output
        c.first_up = first  # type: ignore[attr-defined]
        yield c
    finally:
        c.run("down", "--purge-data", "--yes")
        s3.close()


def test_up_runs_redis_replicas_and_the_balancer_hardened(cluster: Cluster) -> None:
    out = cluster.first_up.output  # type: ignore[attr-defined]
    for host in ("lab1", "lab2", "lab3", "lab4"):
        assert f"{host}" in out
    assert "storage s3://registry/registry" in out and "writable" in out  # checked before each switch
    lab1, lab2, _, lab4 = cluster.lab.hosts
    names = set(lab1.docker("ps --format '{{.Names}}'").split())
    assert {"registry", "registry-redis"} <= names
    assert set(lab2.docker("ps --format '{{.Names}}'").split()) == {"registry"}
    assert set(lab4.docker("ps --format '{{.Names}}'").split()) == {"registry-lb"}
    for host, name in ((lab1, "registry-redis"), (lab4, "registry-lb")):
        info = json.loads(host.docker(f"inspect {name}"))[0]
        hc = info["HostConfig"]
        assert info["Config"]["User"] == "65532:65532"
        assert hc["ReadonlyRootfs"] is True and hc["CapDrop"] == ["ALL"]
        assert "no-new-privileges:true" in hc["SecurityOpt"]
        assert hc["Memory"] > 0 and hc["PidsLimit"] > 0
        assert not [e for e in info["Config"]["Env"] if "PASS" in e or "SECRET" in e]
    redis_password = (cluster.root / ".regdeploy" / "secrets" / "redis" / "main").read_text()
    secret = cluster.s3.secret
    for host in cluster.lab.hosts:
        for name in host.docker("ps --format '{{.Names}}'").split():
            logs = host.sh(f"docker logs {name} 2>&1")
            assert redis_password not in logs and secret not in logs
    assert redis_password not in out and secret not in out


def test_push_through_the_balancer_pull_the_same_digest_from_each_replica(cluster: Cluster) -> None:
    lb = cluster.through_lb()
    digest = push_small_image(lb, REPO)
    assert pull(lb) == digest
    for host in cluster.replicas:
        assert pull(cluster.client(host, 5000)) == digest
    # The blobs are in the bucket, not on any replica's disk.
    assert any(k.startswith("registry/docker/registry/v2/blobs/") for k in cluster.s3.keys("registry/"))


def test_second_up_changes_nothing_and_verify_checks_replicas_and_storage(cluster: Cluster) -> None:
    again = cluster.json("up")
    assert again["changed"] is False, again
    report = cluster.json("verify")
    assert report["ok"], report
    for host in ("lab1", "lab2", "lab3", "lab4"):
        checks = {c["name"]: c for c in report["hosts"][host]["checks"]}
        assert checks["replicas"]["ok"] and "3 replicas" in checks["replicas"]["detail"], checks
        if host != "lab4":
            assert checks["storage"]["ok"], checks


def test_status_shows_members_health_and_storage(cluster: Cluster) -> None:
    status = cluster.json("status")
    lb = status["hosts"]["lab4"]["cluster"]
    assert [m["host"] for m in lb["members"]] == ["lab1", "lab2", "lab3"]
    assert all(m["health"] == "up" for m in lb["members"]) and lb["balancers"][0]["health"] == "up"
    assert status["hosts"]["lab2"]["storage"].startswith("s3://registry/registry at http://")
    text = cluster.run("status").output
    assert "replica" in text and "balancer" in text


def test_a_rolling_config_change_fails_no_pull_through_the_balancer(cluster: Cluster) -> None:
    push_small_image(cluster.through_lb(), REPO)
    before = {h.name: h.docker("inspect -f '{{.Id}}' registry").strip() for h in cluster.replicas}
    cluster.registry["log_level"] = "warn"  # config.yml changes: every replica is replaced
    try:
        with PullLoop(cluster) as loop:
            time.sleep(1)
            started = time.monotonic()
            result = cluster.run("up")
            took = time.monotonic() - started
            time.sleep(1)
        assert result.exit_code == 0, result.output
        after = {h.name: h.docker("inspect -f '{{.Id}}' registry").strip() for h in cluster.replicas}
        assert all(after[n] != before[n] for n in before), "every replica was replaced"
        assert loop.failures == [], loop.failures[:5]
        assert loop.ok >= 20, f"only {loop.ok} pulls in {took:.0f}s"
        print(f"rolling up of 3 replicas: {took:.1f}s; {loop.ok} pulls through the balancer, 0 failed")
    finally:
        cluster.registry.pop("log_level")
        assert cluster.run("up").exit_code == 0


def test_pulls_through_the_balancer_survive_a_killed_replica(cluster: Cluster) -> None:
    push_small_image(cluster.through_lb(), REPO)
    lab2 = cluster.replicas[1]
    lab2.docker("kill registry")
    try:
        for _ in range(12):
            assert pull(cluster.through_lb())
    finally:
        assert cluster.run("up", "--limit", "lab2").exit_code == 0


def test_down_on_one_replica_leaves_the_others_serving(cluster: Cluster) -> None:
    digest = push_small_image(cluster.through_lb(), REPO)
    down = cluster.run("down", "--limit", "lab3")
    assert down.exit_code == 0, down.output
    try:
        for _ in range(6):
            assert pull(cluster.through_lb()) == digest
        for host in cluster.replicas[:2]:
            assert pull(cluster.client(host, 5000)) == digest
    finally:
        assert cluster.run("up", "--limit", "lab3").exit_code == 0
    assert pull(cluster.client(cluster.replicas[2], 5000)) == digest


def test_storage_down_fails_verify_and_up_does_not_switch_a_replica(cluster: Cluster) -> None:
    lab2 = cluster.replicas[1]
    before = lab2.docker("inspect -f '{{.Id}}' registry").strip()
    cluster.s3.stop()
    try:
        report = cluster.json("verify", "--limit", "lab2", code=1)
        checks = {c["name"]: c for c in report["hosts"]["lab2"]["checks"]}
        assert not checks["storage"]["ok"] and "cannot reach" in checks["storage"]["detail"], checks
        cluster.host_vars["lab2"] = {"registry": {"log_level": "error"}}
        result = cluster.json("up", "--limit", "lab2", code=1)
        error = result["hosts"]["lab2"]["error"]
        assert error.startswith("storage:") and "not switched" in error, error
        assert lab2.docker("inspect -f '{{.Id}}' registry").strip() == before
    finally:
        cluster.host_vars.pop("lab2", None)
        cluster.s3.start()
    assert cluster.json("up")["changed"] is False
    # Every replica's storage health check failed meanwhile (GET / answers 503 after three failed
    # 10 s checks): the balancer took them all out, and takes them back once their checks pass.
    deadline = time.monotonic() + 90
    while True:
        try:
            resp = cluster.through_lb().request("GET", "/")
            if resp.status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the replicas did not come back behind the balancer"
        time.sleep(1)


def test_gc_of_the_cluster_frees_the_bucket_while_pulls_through_the_balancer_go_on(cluster: Cluster) -> None:
    import secrets as pysecrets

    lb = cluster.through_lb()
    kept = push_small_image(lb, REPO)  # what the pull loop pulls (team/app:v1)
    layer = pysecrets.token_bytes(256 * 1024)  # big enough to see in the bucket's size
    doomed = push_small_image(lb, "team/old", layer=layer, tag="old")
    delete = lb.request("DELETE", f"/v2/team/old/manifests/{doomed}")
    assert delete.status == 202, delete
    with PullLoop(cluster) as loop:
        time.sleep(1)
        result = cluster.run("gc", "--json")
        time.sleep(1)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    gc = report["hosts"]["lab2"]
    assert gc["cluster"] == "main" and gc["ran_on"] == "lab1" and gc["blobs"] >= 1, gc
    assert gc["freed"] >= len(layer), gc  # the bucket lost at least the deleted layer
    assert "lab4" not in report["hosts"]  # a balancer holds no storage
    assert loop.failures == [], loop.failures[:5]
    assert loop.ok >= 20
    # Every replica was read-only before garbage-collect ran, and writable after it.
    lines = result.stderr.splitlines()
    gc_at = next(i for i, line in enumerate(lines) if "garbage-collect" in line and "[lab1]" in line)
    for host in ("lab1", "lab2", "lab3"):
        ro = next(i for i, line in enumerate(lines) if f"[{host}] read-only for gc" in line)
        back = next(i for i, line in enumerate(lines) if f"[{host}] writable again" in line)
        assert ro < gc_at < back, (host, ro, gc_at, back)
    # What was kept pulls from every replica; the deleted layer pushed again works (redis flushed).
    for host in cluster.replicas:
        assert pull(cluster.client(host, 5000)) == kept
    again = push_small_image(lb, "team/old", layer=layer, tag="old")
    assert again == doomed
    for host in cluster.replicas:
        assert pull(cluster.client(host, 5000), "team/old", "old") == doomed


def test_gc_keeps_a_young_unfinished_upload_and_deletes_it_once_a_week_old(cluster: Cluster) -> None:
    """The registry's upload purger is off on S3 (it panicked 2.8.2 on SeaweedFS at start, about
    one start in sixty): gc deletes the uploads a week old, by the keys the registry really wrote."""
    from datetime import UTC, datetime, timedelta

    from regdeploy.storage.uploads import delete, find_stale

    lb = cluster.through_lb()
    start = lb.request("POST", "/v2/team/unfinished/blobs/uploads/")
    assert start.status == 202, start
    location = start.headers["location"]
    path = location[location.index("/v2/") :]
    chunk = lb.request("PATCH", path, body=b"x" * 4096, headers={"Content-Type": "application/octet-stream"})
    assert chunk.status == 202, chunk
    uploads = "registry/docker/registry/v2/repositories/team/unfinished/_uploads/"
    written = cluster.s3.keys(uploads)
    assert any(k.endswith("/startedat") for k in written), written
    for host in cluster.replicas:
        config = yaml.safe_load(host.sh("cat /etc/regdeploy/config.yml"))
        assert config["storage"]["maintenance"]["uploadpurging"] == {"enabled": False}

    result = cluster.run("gc", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hosts"]["lab1"]["uploads"] == 0
    assert cluster.s3.keys(uploads) == written  # a day-old upload may still be finished: kept

    target = cluster.s3.target(rootdirectory="/registry")
    assert find_stale(target, datetime.now(UTC) + timedelta(days=6)) == []
    found = find_stale(target, datetime.now(UTC) + timedelta(days=8))
    assert [u.directory for u in found] == [uploads + location.split("/uploads/")[1].split("?")[0] + "/"]
    assert sorted(found[0].keys) == sorted(written)
    assert delete(target, found) == len(written)
    assert cluster.s3.keys_settled([], uploads) == []
    assert pull(cluster.through_lb()) is not None  # what was kept still pulls
