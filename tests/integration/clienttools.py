"""Shared by integration tests that run `certs trust` / `clients mirror` on this machine: what they may
leave in the runtimes' system directories, and taking it away again; real clients (ctr, skopeo,
podman) with private credentials."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CERTS_DIRS = (Path("/etc/docker/certs.d"), Path("/etc/containerd/certs.d"), Path("/etc/containers/certs.d"))
REGISTRIES_CONF_D = Path("/etc/containers/registries.conf.d")
CTR_SOCK = "/var/run/docker/containerd/containerd.sock"  # dockerd's own containerd


def registry_ports(registry: dict[str, Any]) -> set[int]:
    """Every port `certs trust` trusts for this `registry:` mapping: its own, the token server's and
    the proxies'."""
    ports = {int(registry["port"])}
    token = (registry.get("auth") or {}).get("token") or {}
    if "port" in token:
        ports.add(int(token["port"]))
    ports |= {int(p["port"]) for p in registry.get("proxies") or []}
    return ports


class ClientFilesGuard:
    """Remembers which runtime directories existed; :meth:`cleanup` removes every entry for
    :attr:`ports` (certs.d/HOST:PORT), the drop-ins of :attr:`proxies`, and the directories it saw made."""

    def __init__(self) -> None:
        self.ports: set[int] = set()
        self.proxies: set[str] = set()
        self._existed = {d: d.exists() for d in (*CERTS_DIRS, REGISTRIES_CONF_D)}

    def cleanup(self) -> None:
        suffixes = tuple(f":{p}" for p in self.ports)
        for directory in CERTS_DIRS:
            if directory.exists() and suffixes:
                for entry in directory.iterdir():
                    if entry.name.endswith(suffixes):
                        shutil.rmtree(entry, ignore_errors=True)
        for name in self.proxies:
            (REGISTRIES_CONF_D / f"50-regdeploy-{name}.conf").unlink(missing_ok=True)
        for directory, existed in self._existed.items():
            if not existed:
                with contextlib.suppress(OSError):  # not empty: another test's entries, leave them
                    directory.rmdir()


def auth_file(path: Path, registries: list[str], user: str, password: str) -> Path:
    """A containers-auth.json (0600) for skopeo and podman: the password never goes on argv."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {r: {"auth": token} for r in registries}}))
    path.chmod(0o600)
    return path


def ctr_pull(ref: str, namespace: str, user: str, password: str) -> subprocess.CompletedProcess[str]:
    """``ctr images pull --hosts-dir /etc/containerd/certs.d --user USER REF``: ctr asks for the password
    on a terminal, so it gets one (a pty) rather than the password on argv."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            ["ctr", "-a", CTR_SOCK, "-n", namespace, "images", "pull",
             "--hosts-dir", "/etc/containerd/certs.d", "--user", user, ref],
            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        os.close(slave)
        slave = -1
        os.write(master, f"{password}\n".encode())
        out, err = proc.communicate(timeout=120)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)


def ctr_forget(namespace: str, *refs: str) -> None:
    """Remove the images and the namespace a test pulled into."""
    for ref in refs:
        subprocess.run(["ctr", "-a", CTR_SOCK, "-n", namespace, "images", "rm", ref], capture_output=True)
    subprocess.run(["ctr", "-a", CTR_SOCK, "namespaces", "rm", namespace], capture_output=True)


class Podman:
    """podman with storage of its own under a temp dir (vfs: nothing mounted), so the test's images
    never reach the machine's podman storage and go with the directory."""

    def __init__(self, tmp: Path) -> None:
        self.storage = tmp / "podman-storage"
        # podman takes a runroot of 50 characters at most: tmp_path's are longer
        self.run_root = Path(tempfile.mkdtemp(prefix="regdeploy-podman-"))

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        base = ["podman", "--root", str(self.storage), "--runroot", str(self.run_root),
                "--storage-driver", "vfs", "--events-backend", "none"]  # fmt: skip
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=180)

    def cleanup(self) -> None:
        if self.storage.exists():
            self("rmi", "--all", "--force")
        shutil.rmtree(self.storage, ignore_errors=True)
        shutil.rmtree(self.run_root, ignore_errors=True)
