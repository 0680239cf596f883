"""Benchmark a cluster: pulls/s through the haproxy balancer with 1 replica and then 3, and the time of a
rolling `up` of the 3 replicas after a config change and of the idempotent `up` after it, in one run.

Starts its own 4 lab hosts (tests/integration/lab.py: Docker-in-Docker containers with sshd and dockerd
on a private internal network; the lab image is built once and kept) and a real S3 server on lab4
(SeaweedFS's `weed`, tests/integration/s3server.py). The inventory is the one tests/integration/
test_cluster.py writes: replicas in the group `registries` (`registry.cluster: main`, S3 storage on
weed, redis on lab1), the balancer (`registry_lb`, port 443) on lab4, every image shipped over SSH.

1. Only lab1 in the cluster, `up`; one small image pushed through the balancer; then `wrk` (Debian's
   package) loads `GET /v2/team/app/manifests/v1` (Basic auth of the inventory's user, the Docker v2
   manifest Accept header) and `GET` of its layer blob through the balancer, --connections for
   --seconds each, after a --warmup. Then lab2 and lab3 join, `up` again (the balancer is re-rendered
   with 3 members) and the same loads run. With htpasswd every request pays a bcrypt compare on a
   replica (--bcrypt-cost, default 10): the machine's CPU use during each load, per lab host, is
   printed, with what one bcrypt compare costs here, to tell which bound applies.
2. `registry.log_level: warn` (config.yml changes: every replica is replaced, one at a time), the rolling
   `up` timed as a whole CLI process, with when each new replica started; then the idempotent `up`
   (median of --runs).

Traffic goes only to the lab's network (and loopback). Everything it creates -- lab containers, their
network and volumes, weed, temp dirs -- is removed at the end, on failure and on Ctrl-C too. Needs root,
the engine and packages of scripts/setup.sh, and wrk (`apt-get install wrk`: setup.sh does not install it).

    .venv/bin/python bench/cluster.py [--seconds 10] [--connections 8] [--bcrypt-cost 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from common import REGDEPLOY, cli_env
from deploytools import push_small_image
from lab import LAB_LABEL, Lab, LabHost, start_lab
from s3server import S3Server, start_on_lab

from regdeploy.verify.registry_api import RegistryClient

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
REDIS_BINARY = Path("/usr/bin/redis-server")
HAPROXY_BINARY = Path("/usr/sbin/haproxy")
IMAGES = {
    "registry": "regdeploy-test/registry:2.8.2",
    "redis": "regdeploy-test/redis:7",
    "haproxy": "regdeploy-test/haproxy:2.6",
}
LB_PORT = 443
REPO = "team/app"
USER = "alice"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
UP_TIMEOUT = 900.0  # seconds: one CLI process, a rolling update included
HEALTH_WAIT = 60.0  # seconds for the balancer to report every member up
NOISY = 0.25  # CPU seconds per second used outside this run during a load: the machine was not quiet


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


# --- images -------------------------------------------------------------------------------------------


def ensure_images(client: Any) -> dict[str, str]:
    """The test images, built from Debian's binaries as the test fixtures build them (cached by content)."""
    from regdeploy.image.build import build_from_binary
    from regdeploy.image.services import build_service_image

    for binary in (REGISTRY_BINARY, REDIS_BINARY, HAPROXY_BINARY):
        if not binary.exists():
            sys.exit(f"{binary} is missing: run `bash scripts/setup.sh` first")
    build_from_binary(client, REGISTRY_BINARY, IMAGES["registry"])
    build_service_image(client, "redis", REDIS_BINARY, IMAGES["redis"])
    build_service_image(client, "haproxy", HAPROXY_BINARY, IMAGES["haproxy"])
    return dict(IMAGES)


# --- the inventory and the CLI ------------------------------------------------------------------------


@dataclass
class Cluster:
    """An inventory of replicas (lab1..lab3, as many as ``replicas`` says) and a balancer on lab4."""

    root: Path
    lab: Lab
    s3: S3Server
    images: dict[str, str]
    bcrypt_cost: int
    env: dict[str, str]
    replicas: int = 1
    registry: dict[str, Any] = field(default_factory=dict)
    stderr: str = ""  # the progress lines of the last CLI run

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.registry = {
            "image": self.images["registry"],
            "port": 5000,
            "cluster": "main",
            "tls": {"mode": "selfsigned"},
            "auth": {"users": [{"name": USER}], "bcrypt_cost": self.bcrypt_cost},
            "health_timeout": "30s",
            "storage": {
                "s3": {
                    "bucket": self.s3.bucket,
                    "region": "us-east-1",
                    "regionendpoint": self.s3.url,
                    "accesskey": {"env": "BENCH_S3_ACCESS"},
                    "secretkey": {"env": "BENCH_S3_SECRET"},
                    "rootdirectory": "/registry",
                }
            },
            "cache": {"redis": {"deploy_on": "lab1", "image": self.images["redis"]}},
        }
        self.env = {**self.env, "BENCH_S3_ACCESS": self.s3.access, "BENCH_S3_SECRET": self.s3.secret}

    @property
    def members(self) -> list[LabHost]:
        return self.lab.hosts[: self.replicas]

    @property
    def lb(self) -> LabHost:
        return self.lab.hosts[3]

    @property
    def inventory(self) -> Path:
        return self.root / "hosts.yml"

    def write(self) -> None:
        lab = self.lab
        conn = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(lab.key.private),
            "regdeploy_known_hosts": str(lab.known_hosts),
            "regdeploy_ssh_config": str(lab.tmp / "ssh_config"),
            "ansible_ssh_timeout": 5,
        }
        inventory = {
            "all": {
                "vars": conn,
                "children": {
                    "registries": {
                        "hosts": {h.name: {"ansible_host": h.ip} for h in self.members},
                        "vars": {"registry": self.registry},
                    },
                    "registry_lbs": {
                        "hosts": {self.lb.name: {"ansible_host": self.lb.ip}},
                        "vars": {"registry_lb": {"cluster": "main", "port": LB_PORT,
                                                 "image": self.images["haproxy"]}},
                    },
                },
            }
        }  # fmt: skip
        self.inventory.write_text(yaml.safe_dump(inventory))

    def cli(self, *args: str, timeout: float = UP_TIMEOUT) -> tuple[float, dict[str, Any]]:
        """Wall seconds of one whole `regdeploy ARGS --json` process, and its report; exits when it fails."""
        self.write()
        argv = [*REGDEPLOY, *args, "-i", str(self.inventory), "--json"]
        start = time.perf_counter()
        proc = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        elapsed = time.perf_counter() - start
        self.stderr = proc.stderr
        if proc.returncode != 0:
            command = " ".join(args)
            raise SystemExit(f"`regdeploy {command}` failed ({proc.returncode}) after {elapsed:.1f}s:\n"
                             f"{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}")  # fmt: skip
        return elapsed, dict(json.loads(proc.stdout))

    def password(self) -> str:
        return (self.root / ".regdeploy" / "secrets" / "users" / USER).read_text()

    def through_lb(self) -> RegistryClient:
        ca = (self.root / ".regdeploy" / "ca" / "ca.crt").read_bytes()
        return RegistryClient(self.lb.ip, LB_PORT, ca, USER, self.password(), server_hostname=self.lb.ip)

    def wait_members_up(self) -> None:
        """Until `status` says the balancer sees every member up (bounded)."""
        deadline = time.monotonic() + HEALTH_WAIT
        while True:
            _, status = self.cli("status", timeout=120)
            members = status["hosts"][self.lb.name]["cluster"]["members"]
            health = {m["host"]: m["health"] for m in members}
            if len(health) == self.replicas and all(h == "up" for h in health.values()):
                return
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the balancer does not see every member up after {HEALTH_WAIT:.0f}s: {health}"
                )
            time.sleep(1)


def changed_hosts(report: dict[str, Any]) -> list[str]:
    return [name for name, host in report.get("hosts", {}).items() if host.get("changed")]


# --- load and CPU -------------------------------------------------------------------------------------


def _cgroup_cpu_seconds(*ids: str) -> float | None:
    """CPU seconds a container's cgroup has used, what runs in it included. *ids* nest: a lab host's
    id, or a lab host's id and the id of a container its own engine runs (cgroup v1: under the lab
    host's cgroup, at docker/ID)."""
    nested = "".join(f"/docker/{i}" for i in ids)
    for root in ("/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"):
        with contextlib.suppress(OSError, ValueError):
            return int(Path(f"{root}{nested}/cpuacct.usage").read_text()) / 1e9
    inner = "".join(f"/docker/{i}" for i in ids[1:])
    for base in (f"/sys/fs/cgroup/system.slice/docker-{ids[0]}.scope", f"/sys/fs/cgroup/docker/{ids[0]}"):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"{base}{inner}/cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
    return None


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) seconds of all CPUs since boot, from /proc/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


@dataclass
class Load:
    rate: float  # requests/s
    latency: str  # wrk's average latency, as it prints it
    busy: float  # fraction of all CPUs busy during the load
    per_host: dict[str, float]  # CPU seconds per second of load, by lab host ("wrk" for wrk itself)
    units: dict[str, float]  # the same by container inside a lab host ("lab4:rest": weed, engine, sshd)
    served: dict[str, int]  # requests each replica logged during the load


def _inner_containers(host: LabHost) -> dict[str, str]:
    """name -> full id of the containers the lab host's engine runs."""
    out = host.docker("ps --no-trunc --format '{{.Names}} {{.ID}}'")
    return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)


@contextlib.contextmanager
def cpu_meter(lab: Lab, out: dict[str, Any]) -> Iterator[None]:
    hosts = {h.name: h.container.id for h in lab.hosts}
    inner = {h.name: _inner_containers(h) for h in lab.hosts}
    keys: list[tuple[str, str, tuple[str, ...]]] = [(n, "", (cid,)) for n, cid in hosts.items()]
    keys += [(n, unit, (hosts[n], uid)) for n, units in inner.items() for unit, uid in units.items()]
    before = {(n, u): _cgroup_cpu_seconds(*ids) for n, u, ids in keys}
    machine = _machine_cpu()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    yield
    wall = time.perf_counter() - start
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy, total = (a - b for a, b in zip(_machine_cpu(), machine, strict=True))
    out["busy"] = busy / total if total else 0.0
    used: dict[tuple[str, str], float] = {}
    for n, u, ids in keys:
        now, then = _cgroup_cpu_seconds(*ids), before[(n, u)]
        if now is not None and then is not None:
            used[(n, u)] = (now - then) / wall
    per_host = {n: s for (n, u), s in used.items() if not u}
    units: dict[str, float] = {}
    for n in per_host:
        mine = {u: s for (host, u), s in used.items() if host == n and u}
        units.update({f"{n}:{u}": s for u, s in mine.items()})
        units[f"{n}:rest"] = max(0.0, per_host[n] - sum(mine.values()))
    per_host["wrk"] = (
        after_children.ru_utime - children.ru_utime + after_children.ru_stime - children.ru_stime
    ) / wall
    # Whatever else used the CPUs meanwhile (this machine's engine and kernel work for the lab, and
    # anything not of this run): a large figure means the machine was not quiet.
    if len(per_host) == len(hosts) + 1:  # every lab host's cgroup was readable
        cpus = os.cpu_count() or 1
        per_host["other"] = max(0.0, out["busy"] * cpus - sum(per_host.values()))
    out["per_host"] = per_host
    out["units"] = units


def wrk(url: str, headers: list[str], seconds: int, connections: int) -> tuple[float, str]:
    args = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s"]
    for header in headers:
        args += ["-H", header]
    proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60, check=False)
    out = proc.stdout
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{out}\n{proc.stderr}")
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if refused:
        raise SystemExit(f"wrk saw {refused.group(1)} failed requests against {url}:\n{out}")
    errors = re.search(r"Socket errors: .*", out)
    if errors:
        say(f"wrk: {errors.group(0)}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    latency = re.search(r"Latency\s+(\S+)", out)
    if not rate or not latency:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return float(rate.group(1)), latency.group(1)


def access_lines(host: LabHost, path: str) -> int:
    """How many requests for *path* the registry on *host* has logged (distribution's access log)."""
    out = host.sh(f"docker logs registry 2>&1 | grep -c '\"GET {path} ' || true")
    return int(out.strip() or 0)


def load(cluster: Cluster, path: str, args: argparse.Namespace) -> Load:
    auth = base64.b64encode(f"{USER}:{cluster.password()}".encode()).decode()
    headers = [f"Authorization: Basic {auth}", f"Accept: {MANIFEST}"]
    url = f"https://{cluster.lb.ip}:{LB_PORT}{path}"
    if args.warmup:
        wrk(url, headers, args.warmup, args.connections)
    before = {h.name: access_lines(h, path) for h in cluster.members}
    cpu: dict[str, Any] = {}
    with cpu_meter(cluster.lab, cpu):
        rate, latency = wrk(url, headers, args.seconds, args.connections)
    served = {h.name: access_lines(h, path) - before[h.name] for h in cluster.members}
    return Load(rate, latency, cpu["busy"], cpu["per_host"], cpu["units"], served)


def bcrypt_compare_seconds(cost: int) -> float:
    """One bcrypt compare at *cost* on this CPU (Python's bcrypt; distribution's Go one is close)."""
    import bcrypt

    hashed = bcrypt.hashpw(b"p" * 32, bcrypt.gensalt(rounds=cost))
    runs = min(50, 1 << max(0, 12 - cost))
    start = time.perf_counter()
    for _ in range(runs):
        bcrypt.checkpw(b"p" * 32, hashed)
    return (time.perf_counter() - start) / runs


# --- the rolling update -------------------------------------------------------------------------------


def container_id(host: LabHost, name: str = "registry") -> str:
    return host.docker(f"inspect -f '{{{{.Id}}}}' {name}").strip()


def started_at(host: LabHost, name: str = "registry") -> float:
    """When the container started, in epoch seconds (the lab hosts share this machine's clock)."""
    text = host.docker(f"inspect -f '{{{{.State.StartedAt}}}}' {name}").strip()
    head, _, frac = text.rstrip("Z").partition(".")
    stamp = datetime.fromisoformat(head + "+00:00").timestamp()
    return stamp + float(f"0.{frac[:6]}" if frac else 0)


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class Results:
    cpus: int
    bcrypt: float
    loads: dict[tuple[str, int], Load] = field(default_factory=dict)  # (what, replicas) -> load
    ups: list[tuple[str, float, str]] = field(default_factory=list)  # (what, seconds, note)
    idempotent: list[float] = field(default_factory=list)
    timeline: str = ""
    machine: str = ""  # how busy the machine was when the run started
    rolling_notes: list[str] = field(default_factory=list)  # the rolling up's drain lines and warnings


def bench(cluster: Cluster, args: argparse.Namespace, results: Results) -> None:
    say("up: cluster of 1 replica (lab1, with redis) + balancer (lab4)")
    took, report = cluster.cli("up")
    results.ups.append(("first up: 1 replica + redis + balancer (images shipped)", took,
                        f"changed: {', '.join(changed_hosts(report))}"))  # fmt: skip
    cluster.wait_members_up()
    client = cluster.through_lb()
    try:
        push_small_image(client, REPO)
        got = client.request("GET", f"/v2/{REPO}/manifests/v1", headers={"Accept": MANIFEST})
        if got.status != 200:
            raise SystemExit(f"the pushed manifest does not come back through the balancer: {got.status}")
        layer = json.loads(got.body)["layers"][0]["digest"]
    finally:
        client.close()
    paths = {"manifest": f"/v2/{REPO}/manifests/v1", "blob": f"/v2/{REPO}/blobs/{layer}"}

    def measure(replicas: int) -> None:
        for what, path in paths.items():
            say(f"wrk: {what} GETs through the balancer, {replicas} replica(s), "
                f"{args.connections} connections x {args.seconds}s")  # fmt: skip
            results.loads[(what, replicas)] = load(cluster, path, args)

    measure(1)

    say("up: lab2 and lab3 join the cluster")
    cluster.replicas = 3
    took, report = cluster.cli("up")
    results.ups.append(("grow 1 -> 3 replicas (2 shipped, balancer re-rendered)", took,
                        f"changed: {', '.join(changed_hosts(report))}"))  # fmt: skip
    cluster.wait_members_up()
    measure(3)

    say("up: registry.log_level: warn, a rolling update of 3 replicas")
    before = {h.name: container_id(h) for h in cluster.members}
    cluster.registry["log_level"] = "warn"
    start = time.time()
    took, report = cluster.cli("up")
    replaced = [h for h in cluster.members if container_id(h) != before[h.name]]
    if len(replaced) != len(cluster.members):
        raise SystemExit(f"the rolling up replaced only {[h.name for h in replaced]}: {report}")
    offsets = ", ".join(f"{h.name} +{started_at(h) - start:.1f}s" for h in cluster.members)
    results.timeline = f"new replicas started at {offsets}; the CLI exited at +{took:.1f}s"
    results.rolling_notes = [
        " ".join(line.split())
        for line in cluster.stderr.splitlines()
        if "drain" in line or "warning" in line.lower()
    ][:12]
    results.ups.append(("rolling up, 3 replicas replaced (registry.log_level: warn)", took,
                        f"changed: {', '.join(changed_hosts(report))}"))  # fmt: skip
    for _ in range(args.runs):
        took, report = cluster.cli("up")
        if report.get("changed"):
            raise SystemExit(f"the `up` after the rolling one changed something: {changed_hosts(report)}")
        results.idempotent.append(took)


def replica_ms(result: Load) -> float:
    """CPU milliseconds the replicas' lab hosts (lab1 with redis) spent per request of a load."""
    spent = sum(s for name, s in result.per_host.items() if name in result.served)
    return spent / result.rate * 1000 if result.rate else 0.0


def print_results(results: Results, args: argparse.Namespace, lab: Lab) -> None:
    print()
    print(f"cluster on lab hosts: replicas lab1..lab3 (S3 storage on weed at lab4, redis on lab1), haproxy "
          f"on lab4 (TLS passes through to the replicas); {results.cpus} CPUs on this machine")  # fmt: skip
    built = f"lab image built in {lab.image_seconds:.0f}s" if lab.image_seconds else "lab image cached"
    print(f"lab: {len(lab.hosts)} hosts created in {lab.seconds:.1f}s ({built}); machine: {results.machine}")
    print(f"load: wrk -t 2 -c {args.connections} -d {args.seconds}s (after a {args.warmup}s warm-up), "
          f"htpasswd auth with bcrypt cost {args.bcrypt_cost}")  # fmt: skip
    print()
    print(f"{'GETs/s through the balancer':<36}{'1 replica':>12}{'3 replicas':>12}{'3 / 1':>8}")
    for what in ("manifest", "blob"):
        measured = [(n, results.loads[(what, n)]) for n in (1, 3) if (what, n) in results.loads]
        if not measured:
            continue
        row = {n: r for n, r in measured}

        def cells(fmt: str, get: Any, row: dict[int, Load] = row) -> str:
            return "".join(f"{(fmt.format(get(row[n])) if n in row else '-'):>12}" for n in (1, 3))

        ratio = f"{row[3].rate / row[1].rate:>8.2f}" if len(row) == 2 else f"{'-':>8}"
        print(f"{what + ' GET':<36}{cells('{:.1f}', lambda r: r.rate)}{ratio}")
        print(f"{'  average latency':<36}{cells('{}', lambda r: r.latency)}")
        print(f"{'  CPU busy, all cores':<36}{cells('{:.0%}', lambda r: r.busy)}")
        print(f"{'  replica hosts CPU ms per request':<36}{cells('{:.1f}', replica_ms)}")
        for replicas, result in measured:
            spent = ", ".join(f"{n} {s:.2f}" for n, s in result.per_host.items())
            total = sum(result.served.values()) or 1
            shares = ", ".join(f"{n} {c / total:.0%}" for n, c in result.served.items())
            print(f"    {replicas} replica(s): CPU s/s by host: {spent}; requests by replica: {shares}")
            split = ", ".join(f"{n} {s:.2f}" for n, s in result.units.items() if s >= 0.01)
            print(f"      by unit (lab4:rest is weed): {split}")
            if result.per_host.get("other", 0.0) > NOISY:
                other = result.per_host["other"]
                print(f"      NOISY: {other:.2f} CPU s/s outside the lab hosts and wrk (over {NOISY}: "
                      "another job on the machine?): do not trust this figure")  # fmt: skip
    ceiling = results.cpus / results.bcrypt
    print(
        f"bcrypt compare at cost {args.bcrypt_cost} here: {results.bcrypt * 1000:.1f} ms of one core -> "
        f"at most ~{ceiling:.0f} authenticated requests/s on {results.cpus} cores, however many replicas"
    )
    print()
    print(f"{'regdeploy (whole CLI process)':<62}{'seconds':>8}")
    for what, seconds, note in results.ups:
        print(f"{what:<62}{seconds:>8.2f}   {note}")
    if results.timeline:
        print(f"  {results.timeline}")
    for note in results.rolling_notes:
        print(f"  | {note}")
    if results.idempotent:
        walls = results.idempotent
        print(f"{f'idempotent up after it (median of {len(walls)})':<62}{statistics.median(walls):>8.2f}   "
              f"min {min(walls):.2f}, max {max(walls):.2f}")  # fmt: skip


def leftovers(client: Any, prefix: str) -> list[str]:
    """Lab objects of this run still on the engine (should be none)."""
    found: list[str] = []
    with contextlib.suppress(Exception):
        label = {"label": LAB_LABEL}
        found += [f"container {c.name}" for c in client.containers.list(all=True, filters=label)
                  if c.name.startswith(prefix)]  # fmt: skip
        found += [f"volume {v.name}" for v in client.volumes.list(filters=label) if v.name.startswith(prefix)]
        found += [
            f"network {n.name}" for n in client.networks.list(filters=label) if n.name.startswith(prefix)
        ]
    return found


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(f"bench: stopped by signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="each wrk load (default 10)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each load (default 2)")
    parser.add_argument("--bcrypt-cost", type=int, default=10, help="auth.bcrypt_cost (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="idempotent `up` runs (median; default 3)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/cluster.py needs wrk: apt-get install wrk (scripts/setup.sh does not install it)")
    if os.geteuid() != 0:
        sys.exit("bench/cluster.py needs root (lab hosts): run it as root")

    import docker

    # Ctrl-C (and SIGINT even where the shell started this with it ignored, as a background job) and
    # SIGTERM end the run through the cleanup below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    client = docker.from_env()
    images = ensure_images(client)
    cpus = os.cpu_count() or 1
    results = Results(cpus, bcrypt_compare_seconds(args.bcrypt_cost))
    others = [c.name for c in client.containers.list(filters={"label": LAB_LABEL})]
    results.machine = f"load average {os.getloadavg()[0]:.2f} at the start" + (
        f"; {len(others)} other lab host(s) running ({', '.join(others[:4])}): figures may be noisy"
        if others
        else ""
    )
    tmp = Path(tempfile.mkdtemp(prefix="regdeploy-bench-cluster-"))
    prefix = f"regdeploy-bench-cluster-{secrets.token_hex(3)}"
    lab: Lab | None = None
    s3: S3Server | None = None
    failed = True
    try:
        lab = start_lab(client, 4, tmp / "lab", prefix=prefix)
        s3 = start_on_lab(lab.hosts[3], tmp)
        cluster = Cluster(tmp / "inventory", lab, s3, images, args.bcrypt_cost, cli_env(tmp))
        bench(cluster, args, results)
        failed = False
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("removing the lab hosts, their network and volumes, weed and the temp dir")
        if s3 is not None:
            with contextlib.suppress(Exception):
                s3.close()
        if lab is not None:
            lab.close()
        shutil.rmtree(tmp, ignore_errors=True)
        left = leftovers(client, prefix)
        if left:
            say(f"WARNING: left on the engine: {', '.join(left)}")
        if failed and lab is not None and (results.loads or results.ups):
            say("partial results:")
            print_results(results, args, lab)
    assert lab is not None
    print_results(results, args, lab)


if __name__ == "__main__":
    main()
