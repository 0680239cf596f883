"""``certs trust``: make Docker clients trust a registry's CA, and undo it.

Docker reads ``/etc/docker/certs.d/<host:port>/ca.crt`` on every connection (no daemon restart), for
the exact ``host:port`` written in the image reference. So the CA goes under every name a client may
use for the registry: its SANs with the registry's port, and the host of ``tls.external_url``.
The system trust store is optional (other tools read it; dockerd only at start).

podman, CRI-O, skopeo and buildah read ``/etc/containers/certs.d`` the same way (:func:`apply_trust`
with that directory); containerd and k3s have files of their own (``regdeploy.clients.trust``).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from regdeploy.certs.files import make_dir, write_file
from regdeploy.certs.store import fingerprint
from regdeploy.errors import HostError
from regdeploy.materials.host import host_sans
from regdeploy.spec.registry import RegistrySpec
from regdeploy.transport.address import host_port, is_loopback
from regdeploy.transport.base import Transport

DEFAULT_CERTS_D = "/etc/docker/certs.d"


@dataclass(frozen=True)
class TrustItem:
    registry: str  # inventory name of the registry host
    address: str  # "host:port" as transport.address.host_port writes it: the certs.d directory name
    ca: bytes


def registry_addresses(
    name: str, host_vars: Mapping[str, Any], spec: RegistrySpec, same_machine: bool
) -> list[str]:
    """Every ``host:port`` a client may pull from this registry by.

    Loopback names only on the registry's own machine: elsewhere "localhost:5000" is another registry.
    Wildcard SANs name no address. tls.external_url comes first, with its own port (default 443).
    """
    out: list[str] = []
    if spec.tls.external_url:
        parts = urlsplit(spec.tls.external_url)
        assert parts.hostname is not None  # the spec checked it
        out.append(host_port(parts.hostname, parts.port))
    for san in host_sans(name, host_vars, spec):
        if san.startswith("*.") or (is_loopback(san) and not same_machine):
            continue
        out.append(host_port(san, spec.port))
    return list(dict.fromkeys(out))


def service_ports(spec: RegistrySpec) -> list[int]:
    """The ports clients reach this registry's TLS services on, all with its CA: the registry, the
    built-in token server, and each pull-through cache (``registry.proxies``)."""
    ports = [spec.port]
    token = spec.auth.builtin_token
    if token is not None:
        ports.append(token.port)
    ports += [p.port for p in spec.proxies]
    return list(dict.fromkeys(ports))


def trusted_addresses(
    name: str, host_vars: Mapping[str, Any], spec: RegistrySpec, same_machine: bool
) -> list[str]:
    """Every ``host:port`` to trust the registry's CA at: :func:`registry_addresses`, then every SAN
    address with each other port of :func:`service_ports` (``tls.external_url`` names the registry only)."""
    out = registry_addresses(name, host_vars, spec, same_machine)
    for port in service_ports(spec)[1:]:
        for san in host_sans(name, host_vars, spec):
            if san.startswith("*.") or (is_loopback(san) and not same_machine):
                continue
            out.append(host_port(san, port))
    return list(dict.fromkeys(out))


class ClientFiles(Protocol):
    """The file operations trust needs on a client machine."""

    def read(self, path: str) -> bytes | None: ...

    def write(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Atomically, with *mode* (0644 unless said), creating parent directories 0755."""
        ...

    def mode(self, path: str) -> int | None:
        """The permission bits of file *path*, None when there is none."""
        ...

    def existing(self, paths: Sequence[str]) -> set[str]:
        """Which of *paths* exist (files or directories)."""
        ...

    def remove(self, path: str) -> None: ...

    def prune(self, directory: str) -> None:
        """Remove ``directory`` if it is empty (other files there are not ours)."""
        ...


class LocalFiles:
    """This machine's files."""

    def read(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise HostError(f"cannot read {path}: {exc.strerror}") from None

    def write(self, path: str, data: bytes, mode: int = 0o644) -> None:
        target = Path(path)
        make_dir(target.parent, 0o755)
        write_file(target, data, mode)

    def mode(self, path: str) -> int | None:
        try:
            return Path(path).stat().st_mode & 0o7777
        except OSError:
            return None

    def existing(self, paths: Sequence[str]) -> set[str]:
        return {p for p in paths if Path(p).exists()}

    def remove(self, path: str) -> None:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as exc:
            raise HostError(f"cannot remove {path}: {exc.strerror}") from None

    def prune(self, directory: str) -> None:
        # Not empty (a client certificate, another CA) or already gone: leave it.
        with contextlib.suppress(OSError):
            Path(directory).rmdir()


class TransportFiles:
    """A client reached through a regdeploy transport (SSH)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def read(self, path: str) -> bytes | None:
        return self._t.read_file(path)

    def write(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._t.makedirs(path.rsplit("/", 1)[0], 0o755)
        self._t.put_file(path, data, mode)

    def mode(self, path: str) -> int | None:
        state = self._t.stat_many([path])[path]
        return state.mode if state is not None and state.kind == "file" else None

    def existing(self, paths: Sequence[str]) -> set[str]:
        return {p for p, state in self._t.stat_many(list(paths)).items() if state is not None}

    def remove(self, path: str) -> None:
        self._t.remove_file(path)

    def prune(self, directory: str) -> None:
        self._t.remove_empty_dir(directory)


@dataclass(frozen=True)
class TrustChange:
    path: str
    action: str  # create | update | remove
    reason: str
    runtime: str = "docker"  # whose file: docker | containerd | podman | k3s | system

    def as_json(self) -> dict[str, str]:
        return {"resource": f"file:{self.path}", "action": self.action, "reason": self.reason,
                "runtime": self.runtime}  # fmt: skip


def apply_trust(
    files: ClientFiles, certs_d: str, items: Sequence[TrustItem], remove: bool, runtime: str = "docker"
) -> tuple[list[TrustChange], list[str]]:
    """Install (or remove) each item's ``ca.crt``; returns the changes and notes on what was left alone.

    Removal only deletes a ca.crt that is byte-for-byte the registry's CA, then its directory if
    that is empty: anything else there was put by someone else. *runtime* names whose directory
    *certs_d* is (docker, or podman for ``/etc/containers/certs.d``), for the changes.
    """
    changes: list[TrustChange] = []
    notes: list[str] = []
    for item in items:
        directory = f"{certs_d.rstrip('/')}/{item.address}"
        path = f"{directory}/ca.crt"
        current = files.read(path)
        if remove:
            if current is None:
                continue
            if current.strip() != item.ca.strip():
                notes.append(f"{path} is not {item.registry}'s CA: left in place")
                continue
            files.remove(path)
            files.prune(directory)
            changes.append(TrustChange(path, "remove", f"stop trusting {item.registry}'s CA", runtime))
        elif current != item.ca:
            files.write(path, item.ca)
            action, why = ("create", "trust") if current is None else ("update", "replace another CA with")
            changes.append(TrustChange(path, action, f"{why} {item.registry}'s CA", runtime))
    return changes, notes


@dataclass(frozen=True)
class SystemStore:
    """An OS trust store: a directory of anchors and the command that rebuilds the bundle."""

    anchors: Path
    refresh: tuple[str, ...]


def detect_system_store() -> SystemStore | None:
    """Debian/Ubuntu (update-ca-certificates) or RHEL/Fedora (update-ca-trust), else None."""
    if shutil.which("update-ca-certificates"):
        return SystemStore(Path("/usr/local/share/ca-certificates/regdeploy"), ("update-ca-certificates",))
    if shutil.which("update-ca-trust"):
        return SystemStore(Path("/etc/pki/ca-trust/source/anchors"), ("update-ca-trust", "extract"))
    return None


def apply_system_trust(store: SystemStore, cas: Mapping[str, bytes], remove: bool) -> list[TrustChange]:
    """Add (or remove) each registry's CA as ``regdeploy-<fingerprint>.crt``; refresh when changed."""
    files = LocalFiles()
    changes: list[TrustChange] = []
    for registry, ca in cas.items():
        path = str(store.anchors / f"regdeploy-{fingerprint(ca)[:16]}.crt")
        current = files.read(path)
        if remove and current is not None:
            files.remove(path)
            why = f"stop trusting {registry}'s CA system-wide"
            changes.append(TrustChange(path, "remove", why, "system"))
        elif not remove and current != ca:
            files.write(path, ca)
            changes.append(TrustChange(path, "create", f"trust {registry}'s CA system-wide", "system"))
    if changes:
        if remove:
            files.prune(str(store.anchors))
        try:
            subprocess.run(store.refresh, check=True, capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            tail = detail.decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
            raise HostError(f"{' '.join(store.refresh)} failed: {tail[0]}") from None
    return changes
