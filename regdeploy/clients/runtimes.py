"""Which container runtimes a client has, and where each one's files live.

Detected from the client's filesystem only (the same over SSH as here, and under a ``--root``):
a runtime is present when one of its binaries is in a standard ``PATH`` directory or its
configuration directory exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from regdeploy.certs.trust import ClientFiles
from regdeploy.errors import InputError

RUNTIMES = ("docker", "containerd", "podman", "k3s")

# The directories a login shell's PATH holds on Debian, Ubuntu, RHEL and Fedora.
PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

# runtime -> (binaries, configuration directories): any one of them means the runtime is there.
SIGNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "docker": (("docker", "dockerd"), ("/etc/docker",)),
    "containerd": (("containerd", "ctr"), ("/etc/containerd",)),
    "podman": (("podman", "skopeo", "buildah", "crio"), ("/etc/containers",)),
    "k3s": ((), ("/etc/rancher/k3s",)),
}


@dataclass(frozen=True)
class ClientPaths:
    """Where each runtime reads its registry settings on a client (paths on the client itself)."""

    docker_certs_d: str = "/etc/docker/certs.d"
    docker_daemon_json: str = "/etc/docker/daemon.json"
    containerd_certs_d: str = "/etc/containerd/certs.d"
    containerd_config: str = "/etc/containerd/config.toml"
    containers_certs_d: str = "/etc/containers/certs.d"
    registries_conf_d: str = "/etc/containers/registries.conf.d"
    k3s_registries: str = "/etc/rancher/k3s/registries.yaml"
    k3s_certs: str = "/etc/rancher/k3s/regdeploy"  # k3s needs a file for tls.ca_file: regdeploy's own


def parse_runtimes(text: str | None) -> tuple[str, ...] | None:
    """``--runtime docker,containerd``: the runtimes in :data:`RUNTIMES` order; None when not given."""
    if text is None:
        return None
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown or not names:
        what = f"unknown runtime {unknown[0]!r}" if unknown else "no runtime named"
        choices = ", ".join(RUNTIMES)
        raise InputError(f"--runtime: {what}: choose from {choices} (podman: CRI-O, skopeo, buildah too)")
    return tuple(r for r in RUNTIMES if r in names)


def detect(files: ClientFiles) -> tuple[str, ...]:
    """The runtimes present on the client *files* reaches, in :data:`RUNTIMES` order."""
    probes: dict[str, str] = {}
    for runtime, (binaries, dirs) in SIGNS.items():
        for path in [f"{d}/{b}" for b in binaries for d in PATH_DIRS] + list(dirs):
            probes[path] = runtime
    found = files.existing(list(probes))
    return tuple(r for r in RUNTIMES if any(probes[p] == r for p in found))
