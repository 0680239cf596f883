"""``certs trust``: make Docker clients trust a registry's CA, and undo it.

Docker reads ``/etc/docker/certs.d/<host:port>/ca.crt`` on every connection (no daemon restart), for
the exact ``host:port`` written in the image reference. So the CA goes under every name a client may
use for the registry: its SANs with the registry's port, and the host of ``tls.external_url``.
The system trust store is optional (other tools read it; dockerd only at start).
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


class ClientFiles(Protocol):
    """The file operations trust needs on a client machine."""

    def read(self, path: str) -> bytes | None: ...

    def write(self, path: str, data: bytes) -> None:
        """Atomically, 0644, creating parent directories 0755."""
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

    def write(self, path: str, data: bytes) -> None:
        target = Path(path)
        make_dir(target.parent, 0o755)
        write_file(target, data, 0o644)

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

    def write(self, path: str, data: bytes) -> None:
        self._t.makedirs(path.rsplit("/", 1)[0], 0o755)
        self._t.put_file(path, data, 0o644)

    def remove(self, path: str) -> None:
        self._t.remove_file(path)

    def prune(self, directory: str) -> None:
        self._t.remove_empty_dir(directory)


@dataclass(frozen=True)
class TrustChange:
    path: str
    action: str  # create | update | remove
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"resource": f"file:{self.path}", "action": self.action, "reason": self.reason}


def apply_trust(
    files: ClientFiles, certs_d: str, items: Sequence[TrustItem], remove: bool
) -> tuple[list[TrustChange], list[str]]:
    """Install (or remove) each item's ``ca.crt``; returns the changes and notes on what was left alone.

    Removal only deletes a ca.crt that is byte-for-byte the registry's CA, then its directory if
    that is empty: anything else there was put by someone else.
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
            changes.append(TrustChange(path, "remove", f"stop trusting {item.registry}'s CA"))
        elif current != item.ca:
            files.write(path, item.ca)
            action, why = ("create", "trust") if current is None else ("update", "replace another CA with")
            changes.append(TrustChange(path, action, f"{why} {item.registry}'s CA"))
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
            changes.append(TrustChange(path, "remove", f"stop trusting {registry}'s CA system-wide"))
        elif not remove and current != ca:
            files.write(path, ca)
            changes.append(TrustChange(path, "create", f"trust {registry}'s CA system-wide"))
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
