"""How the control machine's Docker engine decides to trust a registry, and lending it the inventory's CA.

The engine reads CA certificates for ``NAME:PORT`` from ``/etc/docker/certs.d/NAME:PORT/*.crt`` — but
only for registries it considers secure. Like the daemon (``isSecureIndex`` in moby's registry package),
a registry is insecure when it is listed in ``IndexConfigs`` as not secure, or when its name resolves
into one of ``InsecureRegistryCIDRs``; the daemon always adds ``127.0.0.0/8`` to those, so for
``localhost:PORT`` it skips certificate verification entirely and ignores certs.d.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regdeploy.verify.model import CheckFailed

CERTS_D = Path("/etc/docker/certs.d")

Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    """Addresses of *host* as the daemon would find them (literal addresses resolve to themselves)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def split_host(registry: str) -> str:
    """``name:port`` / ``[v6]:port`` -> the host part."""
    if registry.startswith("["):
        return registry[1:].partition("]")[0]
    return registry.rpartition(":")[0] if registry.count(":") == 1 else registry


def insecure_because(
    registry_config: Mapping[str, Any], registry: str, resolver: Resolver = resolve
) -> str | None:
    """Why the engine treats *registry* (``name:port``) as insecure, or None when it verifies TLS."""
    indexes = registry_config.get("IndexConfigs") or {}
    if registry in indexes:
        secure = bool((indexes[registry] or {}).get("Secure", True))
        return None if secure else f"{registry} is in the engine's insecure-registries"
    host = split_host(registry)
    networks = []
    for cidr in registry_config.get("InsecureRegistryCIDRs") or []:
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(cidr, strict=False))
    for addr in resolver(host):
        try:
            ip = ipaddress.ip_address(addr.partition("%")[0])
        except ValueError:
            continue
        for net in networks:
            if ip.version == net.version and ip in net:
                where = host if host == addr else f"{host} ({addr})"
                return f"{where} is in the engine's insecure-registry range {net}"
    return None


@dataclass
class Trust:
    note: str  # how the engine came to trust the registry, for the check's detail
    file: Path | None  # the certs.d file the engine reads, when there is one
    left_behind: str | None = None  # what could not be removed afterwards


def _same_pem(a: bytes, b: bytes) -> bool:
    return a.strip().replace(b"\r\n", b"\n") == b.strip().replace(b"\r\n", b"\n")


@contextlib.contextmanager
def ca_in_certs_d(registry: str, ca_pem: bytes, root: Path = CERTS_D) -> Iterator[Trust]:
    """Make the engine trust *ca_pem* for *registry* for the duration, as a client machine would.

    An existing ``ca.crt`` is never changed: if it holds another CA, that is what this machine's clients
    trust, and the push shows the result. What this adds (the file, directories it had to create) is
    removed afterwards; ``Trust.left_behind`` says if that failed.
    """
    directory = root / registry
    target = directory / "ca.crt"
    try:
        existing = target.read_bytes()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise CheckFailed(f"cannot read {target}: {exc.strerror}") from None
    if existing is not None:
        if _same_pem(existing, ca_pem):
            yield Trust(f"trusted through the existing {target}", target)
        else:
            yield Trust(f"{target} holds another CA than the inventory's (left as it is)", target)
        return
    created: list[Path] = []
    wrote = False
    try:
        for parent in reversed([directory, *directory.parents]):
            if not parent.exists():
                parent.mkdir(mode=0o755)
                created.append(parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        wrote = True
        with os.fdopen(fd, "wb") as fh:
            fh.write(ca_pem)
    except OSError as exc:
        _remove(target if wrote else None, created)
        raise CheckFailed(
            f"cannot give the engine the inventory's CA at {target}: {exc.strerror} "
            "(run as root, or install the CA there yourself)"
        ) from None
    trust = Trust(f"trusted through the inventory's CA, put in {target} for this run", target)
    try:
        yield trust
    finally:
        trust.left_behind = _remove(target, created)


def _remove(file: Path | None, created_dirs: list[Path]) -> str | None:
    """Remove what was added; the reason when the file itself could not be removed."""
    problem = None
    if file is not None:
        try:
            file.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            problem = f"{file}: {exc.strerror}"
    for directory in reversed(created_dirs):
        with contextlib.suppress(OSError):  # not empty: someone else put something there meanwhile
            directory.rmdir()
    return problem
