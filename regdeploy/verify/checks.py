"""The checks verify knows — names, order, what each builds on — and which of them a run selects.

Kept free of heavy imports: the CLI reads this table to build ``--check`` and its help on every start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CheckInfo:
    name: str
    needs: tuple[str, ...]  # selected along with this check, and must have passed for it to run
    summary: str
    needs_push: bool = False  # runs only if the engine or the api check put an image on the registry


CHECKS: tuple[CheckInfo, ...] = (
    CheckInfo("tcp", (), "the published port accepts connections"),
    CheckInfo("storage", (), "S3: the bucket answers a listing from this machine"),
    CheckInfo("tls", ("tcp",), "handshake with the inventory's CA, name match, TLS >= 1.2, expiry"),
    CheckInfo("auth", ("tls",), "no or wrong credentials: 401 + Basic challenge; a user: 200"),
    CheckInfo("engine", ("auth",), "push, remove, pull through this machine's Docker engine"),
    CheckInfo("api", ("auth",), "blob uploads (monolithic, chunked), manifest, fetch back"),
    CheckInfo("catalog", ("api",), "the smoke repository in the paged catalog and tags list", True),
    CheckInfo("replicas", ("api",), "cluster: the pushed images have the same digest on every replica", True),
    CheckInfo("notifications", ("api",), "each webhook endpoint got this run's events", True),
    CheckInfo("persistence", ("api",), "restart the container, pushed images remain (opt-in)", True),
    CheckInfo("proxies", ("auth",), "each pull-through cache answers; check_image pulls through it"),
    CheckInfo("cleanup", ("api",), "delete the smoke manifests and local images"),
)
BY_NAME = {c.name: c for c in CHECKS}
CHECK_NAMES = tuple(BY_NAME)
OPT_IN = ("persistence",)
PUSHERS = ("engine", "api")
# Checks of one phase run at once (catalog starts when the pushes are done, while the pulls go on);
# cleanup is in no phase: it runs last, whatever happened.
PHASES: tuple[tuple[str, ...], ...] = (
    ("tcp", "storage"), ("tls",), ("auth",), (*PUSHERS, "catalog", "replicas", "proxies"), ("notifications",),
    ("persistence",),
)  # fmt: skip


def select_checks(names: Sequence[str], persistence: bool = False) -> list[str]:
    """The checks to run, in order: the named ones (all but opt-in ones when none are named), plus
    everything they build on, plus cleanup whenever something will be pushed."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(unknown)}")
    wanted = set(names) if names else {n for n in CHECK_NAMES if n not in OPT_IN}
    if persistence:
        wanted.add("persistence")
    todo = list(wanted)
    while todo:
        for need in BY_NAME[todo.pop()].needs:
            if need not in wanted:
                wanted.add(need)
                todo.append(need)
    if wanted & set(PUSHERS):
        wanted.add("cleanup")
    return [n for n in CHECK_NAMES if n in wanted]
