"""Lab hosts: Docker-in-Docker containers that behave like small servers (sshd + dockerd), on a
private network of their own, for fleet tests and bench/fleet.py. Not a conftest: test modules
import the ``lab`` fixture (or call :func:`start_lab`) explicitly.

LAB.md has the recipe and why: a debootstrapped Debian rootfs with docker.io and openssh-server,
``docker import``ed once as ``regdeploy-test/labhost:1`` and kept (about a minute to build; a test
session reuses it). Each lab host gets its own ed25519 host key, the session's authorized test key,
a volume for its /var/lib/docker, and the capability flags that work on this VM (``--privileged``
does not). The network is ``internal``: lab hosts reach nothing outside it, and their resolver
points at an address where nothing answers, so a pull fails at once instead of timing out -- the
registry image reaches them only by shipping, as it would an air-gapped server.

Users on every lab host: root; ``deploy`` (passwordless sudo, not in the docker group); ``ops``
(in the docker group, no sudo); ``nopw`` (sudo only with a password, no docker access).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import os
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sshd import KeyPair, make_key, wait_for_port

LAB_IMAGE = "regdeploy-test/labhost:1"
LAB_PACKAGES = "docker.io,openssh-server,iproute2,ca-certificates,sudo"
LAB_SUITE = "bookworm"
LAB_MIRROR = os.environ.get("REGDEPLOY_LAB_MIRROR", "http://deb.debian.org/debian")
LAB_LABEL = "io.regdeploy.test-lab"
LAB_USERS = ("root", "deploy", "ops", "nopw")
READY_TIMEOUT = 90.0

SSHD_CONFIG = """\
# regdeploy lab host: keys only, one host key per container, stream forwarding for the Docker socket.
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile /etc/ssh/authorized_keys/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
MaxStartups 100
LogLevel ERROR
"""

SUDOERS = """\
deploy ALL=(ALL) NOPASSWD: ALL
nopw ALL=(ALL) ALL
"""

# PID 1 is docker-init (--init); this script prepares the container and then idles, so that
# killing sshd (a fault test) leaves the host, its engine and its registry running.
LAB_INIT = r"""#!/bin/sh
# The inner engine needs writable cgroups: rw bind-remounts of our own subtree (cgroup v1), or
# the dind nesting dance (cgroup v2).
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mount -o remount,rw /sys/fs/cgroup 2>/dev/null || :
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
    sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \
        > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || :
else
    for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d" 2>/dev/null || :; done
fi
# Nothing answers on 127.0.0.1:53: name lookups (a pull) fail at once, and nothing leaves the lab.
echo "nameserver 127.0.0.1" > /etc/resolv.conf
mkdir -p /run/sshd
dockerd >/var/log/dockerd.log 2>&1 &
/usr/sbin/sshd -E /var/log/sshd.log
exec sleep infinity
"""


def _say(message: str) -> None:
    print(f"lab: {message}", flush=True)


def _add(tar: tarfile.TarFile, path: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(path.lstrip("/"))
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, (data, mode) in files.items():
            _add(tar, path, data, mode)
    return buf.getvalue()


def _run(argv: list[str], timeout: float, **kwargs: Any) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} … failed ({result.returncode}): {result.stderr[-2000:]}")


def ensure_lab_image(client: Any) -> float:
    """Build ``LAB_IMAGE`` unless the engine has it; the seconds the build took (0 when cached)."""
    import docker.errors

    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(LAB_IMAGE)
        return 0.0
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.fail(f"building {LAB_IMAGE} needs root and debootstrap: run scripts/setup.sh", pytrace=False)
    start = time.monotonic()
    _say(f"building {LAB_IMAGE} with debootstrap from {LAB_MIRROR} (about a minute, once)")
    with tempfile.TemporaryDirectory(prefix="regdeploy-labroot-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "rootfs"
        include = f"--include={LAB_PACKAGES}"
        _run(["debootstrap", "--variant=minbase", include, LAB_SUITE, str(root), LAB_MIRROR], timeout=900)
        for key in (root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()  # every lab host gets its own
        (root / "etc/ssh/sshd_config.d/regdeploy-lab.conf").write_text(SSHD_CONFIG)
        (root / "etc/ssh/authorized_keys").mkdir(mode=0o755)
        sudoers = root / "etc/sudoers.d/regdeploy-lab"
        sudoers.write_text(SUDOERS)
        sudoers.chmod(0o440)
        init = root / "usr/local/sbin/lab-init"
        init.write_text(LAB_INIT)
        init.chmod(0o755)
        # '*' as password: no password login, but not a locked account (sshd refuses those).
        for user, groups in (("deploy", []), ("ops", ["docker"]), ("nopw", [])):
            extra = ["-G", ",".join(groups)] if groups else []
            _run(["chroot", str(root), "useradd", "-m", "-s", "/bin/sh", "-p", "*", *extra, user], timeout=60)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        try:
            changes = ["--change", 'CMD ["/usr/local/sbin/lab-init"]', "--change", f"LABEL {LAB_LABEL}=image"]
            _run(["docker", "import", *changes, "-", LAB_IMAGE], timeout=600, stdin=tar.stdout)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
    seconds = time.monotonic() - start
    _say(f"built {LAB_IMAGE} in {seconds:.0f}s")
    return seconds


@dataclass
class LabHost:
    name: str
    container: Any
    ip: str
    host_key: str  # "ssh-ed25519 AAAA…"

    def sh(self, command: str, check: bool = True) -> str:
        code, out = self.container.exec_run(["sh", "-c", command])
        text = out.decode(errors="replace") if out else ""
        if check and code != 0:
            raise RuntimeError(f"{self.name}: `{command}` failed ({code}): {text[-1000:]}")
        return text

    @property
    def known_hosts_line(self) -> str:
        return f"{self.ip} {self.host_key}"

    def stop_sshd(self) -> None:
        """Stop the listening sshd (by its pid file), as a crashed or stopped sshd would be."""
        self.sh("kill $(cat /run/sshd.pid) && rm -f /run/sshd.pid")

    def start_sshd(self) -> None:
        self.sh("/usr/sbin/sshd -E /var/log/sshd.log")
        wait_for_port(self.ip, 22)

    def docker(self, args: str) -> str:
        return self.sh(f"docker {args}")


@dataclass
class Lab:
    client: Any
    network: Any
    tmp: Path
    key: KeyPair
    known_hosts: Path
    hosts: list[LabHost] = field(default_factory=list)
    volumes: list[Any] = field(default_factory=list)
    seconds: float = 0.0  # creating the hosts (image build excluded)
    image_seconds: float = 0.0  # building the lab image (0 when cached)

    def ssh_vars(self, host: LabHost, user: str = "root") -> dict[str, Any]:
        """Connection variables for one lab host, as an inventory sets them."""
        return {
            "ansible_host": host.ip,
            "ansible_user": user,
            "ansible_ssh_private_key_file": str(self.key.private),
            "regdeploy_known_hosts": str(self.known_hosts),
            "regdeploy_ssh_config": str(self.tmp / "ssh_config"),
        }

    def close(self) -> None:
        for host in self.hosts:
            with contextlib.suppress(Exception):
                host.container.remove(force=True)
        for volume in self.volumes:
            with contextlib.suppress(Exception):
                volume.remove(force=True)
        with contextlib.suppress(Exception):
            self.network.remove()


def _wait_ready(host: LabHost) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        code, _ = host.container.exec_run(["sh", "-c", "test -f /run/sshd.pid && docker info"])
        if code == 0:
            break
        host.container.reload()
        if host.container.status != "running" or time.monotonic() > deadline:
            logs = host.sh("tail -n 20 /var/log/dockerd.log /var/log/sshd.log", check=False)
            raise RuntimeError(f"lab host {host.name} did not come up: {host.container.status}\n{logs}")
        time.sleep(0.2)
    wait_for_port(host.ip, 22)


def start_lab(client: Any, count: int, tmp: Path, prefix: str | None = None) -> Lab:
    """*count* running lab hosts on a new internal network; ``Lab.close()`` removes everything."""
    image_seconds = ensure_lab_image(client)
    start = time.monotonic()
    prefix = prefix or f"regdeploy-test-lab-{secrets.token_hex(3)}"
    tmp.mkdir(parents=True, exist_ok=True)
    key = make_key(tmp / "id_ed25519", "regdeploy-lab-client")
    (tmp / "ssh_config").write_text("")  # the tests' own, empty: never the user's ~/.ssh/config
    network = client.networks.create(prefix, driver="bridge", internal=True, labels={LAB_LABEL: "network"})
    lab = Lab(client, network, tmp, key, tmp / "known_hosts", image_seconds=image_seconds)
    try:
        for i in range(1, count + 1):
            name = f"{prefix}-{i}"
            volume = client.volumes.create(name, labels={LAB_LABEL: "volume"})
            lab.volumes.append(volume)
            container = client.containers.create(
                LAB_IMAGE,
                name=name,
                hostname=f"lab{i}",
                network=network.name,
                cap_add=["ALL"],
                cap_drop=["SYS_RESOURCE"],
                security_opt=["seccomp=unconfined"],
                device_cgroup_rules=["a *:* rwm"],
                tmpfs={"/run": "", "/tmp": ""},
                volumes={volume.name: {"bind": "/var/lib/docker", "mode": "rw"}},
                init=True,
                labels={LAB_LABEL: "host"},
                detach=True,
            )
            host_key = make_key(tmp / f"host{i}_ed25519", f"lab{i}")
            files = {
                "/etc/ssh/ssh_host_ed25519_key": (host_key.private.read_bytes(), 0o600),
                "/etc/ssh/ssh_host_ed25519_key.pub": (host_key.public.encode() + b"\n", 0o644),
            }
            for user in LAB_USERS:
                files[f"/etc/ssh/authorized_keys/{user}"] = (key.public.encode() + b"\n", 0o644)
            container.put_archive("/", _tar(files))
            container.start()
            container.reload()
            ip = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
            lab.hosts.append(LabHost(f"lab{i}", container, ip, " ".join(host_key.public.split()[:2])))
        with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(_wait_ready, lab.hosts))
        lab.known_hosts.write_text("".join(h.known_hosts_line + "\n" for h in lab.hosts))
    except BaseException:
        lab.close()
        raise
    lab.seconds = time.monotonic() - start
    _say(f"{count} lab hosts up in {lab.seconds:.1f}s: {', '.join(f'{h.name}={h.ip}' for h in lab.hosts)}")
    return lab


@contextlib.contextmanager
def lab_hosts(client: Any, count: int, tmp: Path) -> Iterator[Lab]:
    lab = start_lab(client, count, tmp)
    try:
        yield lab
    finally:
        lab.close()


def lab_fixture(count: int) -> Callable[..., Iterator[Lab]]:
    """A module-scoped pytest fixture giving *count* lab hosts (import it into a test module)."""

    @pytest.fixture(scope="module")
    def fixture(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
        with lab_hosts(docker_client, count, tmp_path_factory.mktemp("lab")) as lab:
            yield lab

    return fixture
