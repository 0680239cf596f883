"""podman, CRI-O, skopeo, buildah: mirrors in ``/etc/containers/registries.conf.d/*.conf``.

containers/image reads the drop-ins in name order on every command (CRI-O on reload); a
``[[registry]]`` of a later file replaces one with the same ``prefix`` (they are not merged), so all
mirrors of one upstream go into one ``[[registry]]``. regdeploy's drop-ins are
``50-regdeploy-<proxy name>.conf`` and start with :data:`MARKER`; it reads back only those.
Certificates are not here: a mirror ``HOST:PORT`` is verified with ``/etc/containers/certs.d/HOST:PORT/``
(``certs trust`` writes it).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass

MARKER = "# Written by regdeploy"
HEADER = (
    f"{MARKER} (clients mirror): `regdeploy clients mirror --remove` takes away the mirrors it added.\n"
    "# Edits here are overwritten.\n"
)


def dropin_name(proxy: str) -> str:
    return f"50-regdeploy-{proxy}.conf"


@dataclass(frozen=True)
class Mirror:
    location: str  # HOST:PORT
    insecure: bool = False  # plain HTTP (a registry with tls.mode none)


@dataclass(frozen=True)
class Registry:
    prefix: str  # the upstream as image names write it: docker.io, ghcr.io, reg1:5000
    mirrors: tuple[Mirror, ...] = ()


def render(registries: Iterable[Registry]) -> str:
    parts = [HEADER.rstrip("\n")]
    for r in registries:
        block = ["[[registry]]", f"prefix = {json.dumps(r.prefix)}", f"location = {json.dumps(r.prefix)}"]
        for m in r.mirrors:
            block += ["", "[[registry.mirror]]", f"location = {json.dumps(m.location)}"]
            if m.insecure:
                block.append("insecure = true")
        parts.append("\n".join(block))
    return "\n\n".join(parts) + "\n"


def parse(text: str) -> tuple[Registry, ...] | None:
    """A drop-in regdeploy wrote, read back; None for anyone else's."""
    if not text.startswith(MARKER):
        return None
    try:
        data = tomllib.loads(text)
        return tuple(
            Registry(
                str(r["prefix"]),
                tuple(
                    Mirror(str(m["location"]), bool(m.get("insecure", False))) for m in r.get("mirror", [])
                ),
            )
            for r in data.get("registry", [])
        )
    except (tomllib.TOMLDecodeError, KeyError, AttributeError, TypeError):
        return None


def add_mirrors(existing: Iterable[Registry], prefix: str, mirrors: Iterable[Mirror]) -> tuple[Registry, ...]:
    """*mirrors* for *prefix* added (after the ones already there, replacing one with the same location)."""
    out = list(existing)
    at = next((i for i, r in enumerate(out) if r.prefix == prefix), None)
    current = list(out[at].mirrors) if at is not None else []
    for m in mirrors:
        current = [c for c in current if c.location != m.location] + [m]
    entry = Registry(prefix, tuple(current))
    if at is None:
        out.append(entry)
    else:
        out[at] = entry
    return tuple(out)


def remove_mirrors(existing: Iterable[Registry], locations: Iterable[str]) -> tuple[Registry, ...]:
    """The mirrors at *locations* taken out; a registry with no mirror left goes."""
    gone = set(locations)
    out = []
    for r in existing:
        left = tuple(m for m in r.mirrors if m.location not in gone)
        if left:
            out.append(Registry(r.prefix, left))
    return tuple(out)
