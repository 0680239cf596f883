"""`regdeploy` against a fleet: three lab hosts (Docker-in-Docker, sshd + dockerd, no way to pull)
reached over SSH, from an inventory with group_vars and host_vars.

Issue 6's "done when": all three deployed in parallel, different users and ports per host; a second
`up` changes nothing; `--limit` touches only the named host; a host whose sshd is stopped fails with
one clear line while the others succeed; `verify` passes on all three; the registry image reaches
hosts that cannot pull. Then the faults, each a one-line per-host error with no change elsewhere.

Traffic goes only to loopback and to the lab's own network, which this module creates and removes.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from deploytools import push_small_image
from lab import Lab, LabHost, lab_fixture
from standins import StandIn, wait_until

from regdeploy.cli import cli
from regdeploy.verify.registry_api import RegistryClient

pytestmark = pytest.mark.integration

lab = lab_fixture(3)

PORTS = {"lab1": 5001, "lab2": 5002, "lab3": 5003}
HTPASSWD_MTIME = (
    "stat -c %Y /etc/regdeploy/auth/htpasswd /home/ops/regdeploy/config/auth/htpasswd 2>/dev/null; true"
)


class Fleet:
    """An inventory directory for (some of) the lab hosts, and the CLI run against it."""

    def __init__(self, root: Path, lab: Lab, image: str, name: str = "registry") -> None:
        self.root = root
        self.lab = lab
        root.mkdir(parents=True, exist_ok=True)
        self.group_vars: dict[str, Any] = {
            "ansible_ssh_private_key_file": str(lab.key.private),
            "regdeploy_known_hosts": str(lab.known_hosts),
            "regdeploy_ssh_config": str(lab.tmp / "ssh_config"),
            "ansible_ssh_timeout": 5,
            "registry": {
                "name": name,
                "image": image,
                "port": 5001,
                "tls": {"mode": "selfsigned"},
                "auth": {"users": [{"name": "alice"}], "bcrypt_cost": 5},
                "health_timeout": "30s",
            },
        }
        self.host_vars: dict[str, dict[str, Any]] = {}

    def host(self, host: LabHost, **variables: Any) -> None:
        self.host_vars[host.name] = {"ansible_host": host.ip, **variables}

    def write(self) -> None:
        hosts = {name: None for name in self.host_vars}
        (self.root / "hosts.yml").write_text(
            yaml.safe_dump({"all": {"children": {"registries": {"hosts": hosts}}}})
        )
        (self.root / "group_vars").mkdir(exist_ok=True)
        (self.root / "group_vars" / "registries.yml").write_text(yaml.safe_dump(self.group_vars))
        (self.root / "host_vars").mkdir(exist_ok=True)
        for name, variables in self.host_vars.items():
            (self.root / "host_vars" / f"{name}.yml").write_text(yaml.safe_dump(variables))

    def run(self, *args: str) -> Result:
        self.write()
        return CliRunner().invoke(cli, [*args, "-i", str(self.root)], catch_exceptions=False)

    def json(self, *args: str, code: int = 0) -> dict[str, Any]:
        result = self.run(*args, "--json")
        assert result.exit_code == code, result.output
        return dict(json.loads(result.stdout))

    def password(self, user: str = "alice") -> str:
        return (self.root / ".regdeploy" / "secrets" / "users" / user).read_text()

    def api(self, host: LabHost, port: int) -> RegistryClient:
        ca = (self.root / ".regdeploy" / "ca" / "ca.crt").read_bytes()
        return RegistryClient(host.ip, port, ca, "alice", self.password(), server_hostname=host.ip)

    def cleanup(self) -> None:
        CliRunner().invoke(cli, ["down", "--purge-data", "--yes", "-i", str(self.root)])


@pytest.fixture(scope="module")
def fleet(
    lab: Lab, registry_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Fleet, Result, float]]:
    """The three hosts deployed once: root on lab1, `deploy` with sudo on lab2, `ops` (docker group,
    files in its home) on lab3; each on its own port. Yields the fleet, the first `up` and its time."""
    lab1, lab2, lab3 = lab.hosts
    f = Fleet(tmp_path_factory.mktemp("fleet"), lab, registry_image)
    f.host(lab1, ansible_user="root")
    f.host(lab2, ansible_user="deploy", ansible_become=True, registry={"port": PORTS["lab2"]})
    home = {"config_dir": "/home/ops/regdeploy/config", "data_dir": "/home/ops/regdeploy/data"}
    f.host(lab3, ansible_user="ops", registry={"port": PORTS["lab3"], **home})
    start = time.monotonic()
    first = f.run("up")
    elapsed = time.monotonic() - start
    yield f, first, elapsed
    f.cleanup()


def host_named(lab: Lab, name: str) -> LabHost:
    return next(h for h in lab.hosts if h.name == name)


# --- done when ------------------------------------------------------------------------------------------


def test_up_deploys_all_three_in_parallel_and_a_rerun_changes_nothing(
    fleet: tuple[Fleet, Result, float], lab: Lab, docker_client: Any, registry_image: str
) -> None:
    f, first, elapsed = fleet
    assert first.exit_code == 0, first.output
    assert "3 hosts: 3 ok, 3 changed, 0 failed" in first.stdout
    print(f"first up of 3 lab hosts (image shipped to each): {elapsed:.1f}s")
    # In parallel: every host started shipping before the first one finished.
    lines = first.stderr.splitlines()
    started = [i for i, ln in enumerate(lines) if ") from the control machine" in ln]
    finished = [i for i, ln in enumerate(lines) if "] shipped " in ln]
    assert len(started) == 3 and len(finished) == 3 and max(started) < min(finished), first.stderr

    wanted_id = docker_client.images.get(registry_image).id
    for host in lab.hosts:
        port = PORTS[host.name]
        assert f.api(host, port).request("GET", "/v2/").status == 200
        assert host.docker(f"image inspect --format '{{{{.Id}}}}' {registry_image}").strip() == wanted_id
        config = "/home/ops/regdeploy/config" if host.name == "lab3" else "/etc/regdeploy"
        owner, mode = host.sh(f"stat -c '%u %a' {config}/certs/server.key").split()
        # The registry's user owns what it reads: 65532 where regdeploy works as root (lab2: via
        # sudo); ops itself on lab3, which cannot hand files to another uid (its registry runs as ops).
        ops_uid = host.sh("id -u ops").strip()
        assert owner == {"lab1": "65532", "lab2": "65532", "lab3": ops_uid}[host.name]
        assert mode == "600"
        user = host.docker("inspect --format '{{.Config.User}}' registry").strip()
        assert user == ("65532:65532" if host.name != "lab3" else f"{ops_uid}:{host.sh('id -g ops').strip()}")

    before = {h.name: h.docker("inspect --format '{{.Id}} {{.State.StartedAt}}' registry") for h in lab.hosts}
    start = time.monotonic()
    again = f.json("up")
    rerun = time.monotonic() - start
    print(f"idempotent up of 3 lab hosts: {rerun:.2f}s")
    assert again == {"ok": True, "changed": False, "hosts": {
        name: {"ok": True, "changed": False, "changes": [], "error": None} for name in PORTS}}  # fmt: skip
    assert {
        h.name: h.docker("inspect --format '{{.Id}} {{.State.StartedAt}}' registry") for h in lab.hosts
    } == before


def test_the_image_reached_hosts_that_cannot_pull(fleet: tuple[Fleet, Result, float], lab: Lab) -> None:
    _, first, _ = fleet
    for host in lab.hosts:
        code, out = host.container.exec_run(["docker", "pull", "busybox:latest"])
        assert code != 0 and b"connection refused" in out  # no name server, no route out: no pulls
    assert (
        first.stderr.count("cannot pull regdeploy-test/registry:2.8.2: shipping it from the control machine")
        == 3
    )


def test_verify_passes_on_all_three(fleet: tuple[Fleet, Result, float]) -> None:
    f, _, _ = fleet
    report = f.json("verify")
    assert report["ok"], json.dumps(report, indent=1)
    for name, host in report["hosts"].items():
        passed = {c["name"] for c in host["checks"] if c["ok"]}
        assert {"tls", "auth", "engine", "api"} <= passed, (name, host)


def test_limit_touches_only_the_named_host(fleet: tuple[Fleet, Result, float], lab: Lab) -> None:
    f, _, _ = fleet
    lab2, lab3 = host_named(lab, "lab2"), host_named(lab, "lab3")
    untouched = {h.name: h.sh(HTPASSWD_MTIME)
                 for h in (lab2, lab3)}  # fmt: skip
    f.group_vars["registry"]["auth"]["users"].append({"name": "bob"})
    limited = f.json("up", "--limit", "lab1")
    assert list(limited["hosts"]) == ["lab1"]
    assert [c["resource"] for c in limited["hosts"]["lab1"]["changes"]] == [
        "file:/etc/regdeploy/auth/htpasswd"
    ]
    pending = f.json("plan")
    assert pending["hosts"]["lab1"]["changed"] is False
    assert pending["hosts"]["lab2"]["changed"] and pending["hosts"]["lab3"]["changed"]
    assert {h.name: h.sh(HTPASSWD_MTIME)
            for h in (lab2, lab3)} == untouched  # fmt: skip
    assert f.json("up")["changed"] is True
    assert f.json("up")["changed"] is False


def test_a_host_whose_sshd_is_stopped_fails_alone(fleet: tuple[Fleet, Result, float], lab: Lab) -> None:
    f, _, _ = fleet
    lab2 = host_named(lab, "lab2")
    lab2.stop_sshd()
    try:
        result = f.run("up")
    finally:
        lab2.start_sshd()
    assert result.exit_code == 1, result.output
    failed = [ln for ln in result.stdout.splitlines() if "FAILED" in ln]
    assert failed == [f"lab2: FAILED: connection refused by {lab2.ip}:22 (is sshd running on that port?)"]
    assert "lab1: ok, no changes" in result.stdout and "lab3: ok, no changes" in result.stdout
    assert "3 hosts: 2 ok, 0 changed, 1 failed" in result.stdout
    assert f.json("up")["changed"] is False  # back: nothing was half-done


def test_same_image_id_is_not_shipped_again(
    fleet: tuple[Fleet, Result, float], lab: Lab, registry_image: str
) -> None:
    f, _, _ = fleet
    lab1 = host_named(lab, "lab1")
    lab1.docker(f"rmi -f {registry_image}")  # the tag goes; the image stays (the registry runs it)
    result = f.run("up", "--limit", "lab1")
    assert result.exit_code == 0, result.output
    assert "tagged, nothing shipped" in result.stderr and "] shipped " not in result.stderr
    assert "lab1: ok, no changes" in f.run("up", "--limit", "lab1").stdout


# --- faults: one clear line for the host, nothing changed -------------------------------------------------


def fault_fleet(tmp: Path, lab: Lab, image: str, host: LabHost, **variables: Any) -> Fleet:
    f = Fleet(tmp, lab, image, name="regdeploy-fault")
    f.group_vars["registry"].update(
        {"port": 5101, "config_dir": "/srv/fault/config", "data_dir": "/srv/fault/data"}
    )
    f.host(host, **variables)
    return f


def failure(f: Fleet, *args: str) -> str:
    result = f.run("up", *args)
    assert result.exit_code == 1, result.output
    (line,) = [ln for ln in result.stdout.splitlines() if "FAILED" in ln]
    return line


def assert_nothing_deployed(host: LabHost) -> None:
    assert host.sh("test -e /srv/fault && echo yes || echo no").strip() == "no"
    assert host.docker("ps -aq --filter name=regdeploy-fault").strip() == ""


@pytest.mark.parametrize("command", [["plan"], ["users", "list"]], ids=" ".join)
def test_unknown_host_key_is_refused_then_accepted_on_request(
    tmp_path: Path, lab: Lab, registry_image: str, fleet: tuple[Fleet, Result, float], command: list[str]
) -> None:
    lab3 = host_named(lab, "lab3")
    known = tmp_path / "known_hosts"
    f = fault_fleet(tmp_path / "inv", lab, registry_image, lab3, regdeploy_known_hosts=str(known))
    line = failure(f)
    assert line.startswith(f"lab3: FAILED: unknown SSH host key for {lab3.ip} (ssh-ed25519 SHA256:")
    assert "--accept-new-host-keys" in line
    assert_nothing_deployed(lab3)
    result = f.run(*command, "--accept-new-host-keys")
    assert result.exit_code == 0, result.output
    assert f"added the SSH host key of {lab3.ip}" in result.stderr
    assert known.read_text().split() == lab3.known_hosts_line.split()


def test_changed_host_key_is_always_refused(tmp_path: Path, lab: Lab, registry_image: str) -> None:
    lab1, lab2 = host_named(lab, "lab1"), host_named(lab, "lab2")
    known = tmp_path / "known_hosts"
    known.write_text(f"{lab1.ip} {lab2.host_key}\n")  # lab2's key recorded for lab1's address
    f = fault_fleet(tmp_path / "inv", lab, registry_image, lab1, regdeploy_known_hosts=str(known))
    line = failure(f, "--accept-new-host-keys")
    assert f"lab1: FAILED: the SSH host key of {lab1.ip} has CHANGED" in line
    assert_nothing_deployed(lab1)


def test_sudo_that_wants_a_password(tmp_path: Path, lab: Lab, registry_image: str) -> None:
    lab1 = host_named(lab, "lab1")
    f = fault_fleet(tmp_path, lab, registry_image, lab1, ansible_user="nopw", ansible_become=True)
    line = failure(f)
    assert line == (
        "lab1: FAILED: sudo on this host needs a password for nopw; regdeploy runs sudo non-interactively "
        "(sudo -n): allow nopw passwordless sudo (NOPASSWD), or connect as root"
    )
    assert_nothing_deployed(lab1)


def test_user_without_docker_access(tmp_path: Path, lab: Lab, registry_image: str) -> None:
    lab1 = host_named(lab, "lab1")
    f = fault_fleet(tmp_path, lab, registry_image, lab1, ansible_user="nopw")
    f.host_vars["lab1"]["registry"] = {"config_dir": "/home/nopw/rd/config", "data_dir": "/home/nopw/rd/data"}
    line = failure(f)
    assert line.startswith("lab1: FAILED: user nopw cannot use the Docker engine (not in the docker group?)")
    assert lab1.sh("test -e /home/nopw/rd && echo yes || echo no").strip() == "no"


def test_disk_full(tmp_path: Path, lab: Lab, registry_image: str) -> None:
    lab1 = host_named(lab, "lab1")
    lab1.sh("mkdir -p /srv/full && mount -t tmpfs -o size=1m tmpfs /srv/full")
    try:
        f = fault_fleet(tmp_path, lab, registry_image, lab1)
        f.group_vars["registry"]["data_dir"] = "/srv/full/data"
        line = failure(f)
    finally:
        lab1.sh("umount /srv/full && rmdir /srv/full")
    assert line.startswith("lab1: FAILED: disk full: 1.0 MiB free on the filesystem of /srv/full/data")
    assert_nothing_deployed(lab1)


def test_unreachable_host_fails_within_the_timeout(tmp_path: Path, lab: Lab, registry_image: str) -> None:
    lab1 = host_named(lab, "lab1")
    subnet = ipaddress.ip_network(lab.network.attrs["IPAM"]["Config"][0]["Subnet"])
    nobody = str(subnet.network_address + 250)  # in the lab's own network, no container there
    f = fault_fleet(tmp_path, lab, registry_image, lab1, ansible_host=nobody, ansible_ssh_timeout=2)
    start = time.monotonic()
    line = failure(f)
    assert time.monotonic() - start < 15
    assert line.startswith("lab1: FAILED: unreachable: ") and f"{nobody}" in line


def test_remote_engine_down(fleet: tuple[Fleet, Result, float], lab: Lab) -> None:
    f, _, _ = fleet
    lab3 = host_named(lab, "lab3")
    # The socket goes first, the pid file when the engine has finished stopping.
    lab3.sh("kill $(cat /var/run/docker.pid); while [ -e /var/run/docker.pid ]; do sleep 0.1; done")
    try:
        result = f.run("up")
    finally:
        lab3.sh("dockerd >/var/log/dockerd.log 2>&1 </dev/null & "
                "for i in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done")  # fmt: skip
    assert result.exit_code == 1
    (line,) = [ln for ln in result.stdout.splitlines() if "FAILED" in ln]
    assert line == "lab3: FAILED: the Docker engine is not running (/var/run/docker.sock does not exist)"
    assert "lab1: ok, no changes" in result.stdout and "lab2: ok, no changes" in result.stdout
    # The engine brings the registry back by itself (restart: unless-stopped); then all is as it was.
    running = "[ \"$(docker inspect -f '{{.State.Running}}' registry)\" = true ]"
    lab3.sh(f"for i in $(seq 100); do {running} && break; sleep 0.2; done")
    assert f.json("up")["changed"] is False


# --- a connection dropped mid-apply ----------------------------------------------------------------------


def big_image(client: Any, base: str, tag: str, megabytes: int) -> str:
    """*base* plus one layer of random bytes: something that takes a few seconds to ship."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dockerfile = f"FROM {base}\nCOPY ballast /ballast\n".encode()
        for name, data in (("Dockerfile", dockerfile), ("ballast", os.urandom(megabytes << 20))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    image, _ = client.images.build(fileobj=buf, custom_context=True, tag=tag, pull=False, rm=True)
    return str(image.id)


def test_connection_dropped_mid_apply_then_rerun_converges(
    tmp_path: Path, lab: Lab, registry_image: str, docker_client: Any
) -> None:
    lab2 = host_named(lab, "lab2")
    tag = f"regdeploy-test/registry:ballast-{os.getpid()}"
    big_image(docker_client, registry_image, tag, 256)
    f = fault_fleet(tmp_path, lab, tag, lab2, ansible_user="deploy", ansible_become=True)
    f.write()
    reset = "iptables -I INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset"
    try:
        proc = subprocess.Popen([sys.executable, "-m", "regdeploy", "up", "-i", str(f.root)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:
            # The image is being shipped (on a quiet machine 256 MB take about 2 s, so the reset,
            # a tenth of a second away, lands while bytes flow): cut the connection now.
            if f"shipping {tag} (" in line or " MB of ~" in line:
                lab2.sh(reset)
                break
        out, err = proc.communicate(timeout=120)
        lab2.sh(reset.replace("-I", "-D"))
        assert proc.returncode == 1, out + err
        (line,) = [ln for ln in out.splitlines() if "FAILED" in ln]
        # Where the reset lands decides which step notices it first: shipping the image, or the
        # SSH session under it. Either way the host fails with the broken connection named.
        assert line.startswith("lab2: FAILED: "), line
        assert "the connection to the host broke" in line, line
        assert_nothing_deployed(lab2)  # the image step comes first: no file, no container
        again = f.run("up")
        assert again.exit_code == 0, again.output
        assert "lab2: 11 changes made" in again.stdout or "changes made" in again.stdout
        assert f.json("up")["changed"] is False
    finally:
        with contextlib.suppress(Exception):
            lab2.sh(reset.replace("-I", "-D") + " 2>/dev/null; true")
        f.cleanup()
        with contextlib.suppress(Exception):
            docker_client.images.remove(tag, force=True)


def test_down_purges_hosts_and_says_when_it_may_not(fleet: tuple[Fleet, Result, float], lab: Lab) -> None:
    f, _, _ = fleet
    # Put one file of root's into ops' data dir, as a root-run registry of an earlier version left it.
    lab3 = host_named(lab, "lab3")
    lab3.sh("mkdir -p /home/ops/regdeploy/data/docker/old && touch /home/ops/regdeploy/data/docker/old/x")
    report = f.json("down", "--purge-data", "--yes", code=1)
    for host in lab.hosts:
        assert host.docker("ps -aq --filter name=^/registry$").strip() == ""
    for name in ("lab1", "lab2"):  # root, and deploy through sudo
        assert report["hosts"][name]["ok"] and report["hosts"][name]["changed"]
        assert host_named(lab, name).sh("ls -d /etc/regdeploy /var/lib/regdeploy 2>/dev/null; true") == ""
    # ops without sudo cannot delete root's files: a clear line, not a crash. As in `up --json`, the
    # error does not repeat the host name that keys it. What its registry wrote (as ops) is gone.
    assert report["hosts"]["lab3"]["error"] == (
        "cannot remove /home/ops/regdeploy/data: permission denied for ops (files there belong to "
        "another user): set ansible_become: true, or remove it as root"
    )
    lab3.sh("rm -rf /home/ops/regdeploy")


def test_certs_trust_over_ssh_installs_then_removes_the_ca(
    fleet: tuple[Fleet, Result, float], lab: Lab
) -> None:
    """A client reached over SSH (lab2, as a `clients` host of its own) gets lab1's CA under every address
    clients may use, for each runtime detected there (docker.io brings containerd along); --remove takes
    exactly those files away again, and their emptied directories."""
    f, _, _ = fleet
    lab1, lab2 = host_named(lab, "lab1"), host_named(lab, "lab2")
    client = {"ansible_host": lab2.ip, "ansible_user": "root", **{k: f.group_vars[k] for k in (
        "ansible_ssh_private_key_file", "regdeploy_known_hosts", "regdeploy_ssh_config")}}  # fmt: skip
    extra = f.root / "clients.yml"
    extra.write_text(yaml.safe_dump({"all": {"children": {"clients": {"hosts": {"lab2-client": client}}}}}))
    certs_d = "/etc/docker/certs.d"
    try:
        added = f.json("certs", "trust", "--limit", "lab2-client", "--registry", "lab1")
        assert {"docker", "containerd"} <= set(added["hosts"]["lab2-client"]["runtimes"]), added
        paths = [c["resource"].removeprefix("file:") for c in added["hosts"]["lab2-client"]["changes"]]
        assert f"{certs_d}/{lab1.ip}:5001/ca.crt" in paths, added
        assert f"/etc/containerd/certs.d/{lab1.ip}:5001/hosts.toml" in paths, added
        ca = (f.root / ".regdeploy" / "ca" / "ca.crt").read_text()
        for path in paths:
            content = lab2.sh(f"cat {path}")
            assert content == ca if path.endswith("ca.crt") else f'ca = "{path[:-10]}ca.crt"' in content
        removed = f.json("certs", "trust", "--limit", "lab2-client", "--registry", "lab1", "--remove")
        gone = [c["resource"].removeprefix("file:") for c in removed["hosts"]["lab2-client"]["changes"]]
        assert sorted(gone) == sorted(paths)
        for path in paths:
            directory = path.rsplit("/", 1)[0]
            assert lab2.sh(f"test -e {directory} && echo left || echo gone").strip() == "gone"
    finally:
        extra.unlink()
        lab2.sh(f"rm -rf {certs_d}/{lab1.ip}:5001 /etc/containerd/certs.d/{lab1.ip}:5001", check=False)


# --- units over SSH: the relay next to the registry on a lab host -----------------------------------------


def test_relay_unit_on_a_lab_host_relays_a_push_and_keeps_its_queue(
    tmp_path: Path, lab: Lab, registry_image: str, stand_ins: Any
) -> None:
    """The sidecar image is built here and shipped (the lab host cannot pull); the relay on the lab
    host delivers to a stand-in on the lab network's gateway (this machine), keeps an undelivered
    event across `down`/`up`, and a second `up` changes nothing."""
    lab1 = lab.hosts[0]
    gateway = lab.network.attrs["IPAM"]["Config"][0]["Gateway"]
    answer = {"status": 200}
    target: StandIn = stand_ins(gateway, lambda g: (answer["status"], b""))
    f = Fleet(tmp_path / "inv", lab, registry_image, name="relayed")
    relay = {
        "targets": [{"name": "ci", "type": "generic", "url": f"{target.base}/hook"}],
        "retry": {"initial": "200ms", "max": "1s"},
    }
    f.host(lab1, ansible_user="root", registry={
        "port": 5011, "config_dir": "/srv/relayed/config", "data_dir": "/srv/relayed/data", "relay": relay,
    })  # fmt: skip
    try:
        first = f.json("up")
        done = [(c["resource"], c["action"]) for c in first["hosts"]["lab1"]["changes"]]
        sidecar = next(r for r, a in done if r.startswith("image:regdeploy-sidecar:"))
        assert (sidecar, "build") in done
        containers = [r for r, _ in done if r.startswith("container:")]
        assert containers == ["container:relayed-relay", "container:relayed"]
        assert "relayed-relay" in lab1.docker("ps --format '{{.Names}}'")

        def delivered() -> list[Any]:
            return [g for g in target.at("/hook") if g.status == 200]

        api = f.api(lab1, 5011)
        digest = push_small_image(api, "team/app")
        wait_until(lambda: len(delivered()) == 1, "the relay's delivery")
        assert delivered()[0].json()["digest"] == digest
        assert f.json("up")["changed"] is False

        answer["status"] = 503
        queued = push_small_image(api, "team/later")
        wait_until(lambda: len(target.at("/hook")) >= 3, "a refused delivery")
        assert f.run("down").exit_code == 0
        answer["status"] = 200
        f.json("up")
        wait_until(lambda: len(delivered()) == 2, "the queued event after down/up")
        assert delivered()[1].json()["digest"] == queued
    finally:
        f.cleanup()
    assert "relayed" not in lab1.docker("ps -a --format '{{.Names}}'")
    assert "relayed-net" not in lab1.docker("network ls --format '{{.Name}}'")
