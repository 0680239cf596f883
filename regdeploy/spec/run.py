"""``run:``: how a unit's container is confined (user, limits, read-only root, capabilities).

Every unit runs hardened by default, so that it passes the CIS Docker Benchmark's container
checks (4.1 user, 5.11 memory, 5.13 read-only root, 5.26 no-new-privileges, 5.29 pids limit) with
every capability dropped. A registry's inventory may loosen or tighten a unit, one key at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from regdeploy.spec import validate as v

# The uid:gid every unit runs as unless told otherwise: not root, not a uid a Debian host gives
# its own users (distroless images call 65532 "nonroot"). Files a unit reads are chowned to it.
DEFAULT_USER = "65532:65532"
MIN_MEMORY = 32 << 20
MAX_MEMORY = 64 << 30
# Linux capabilities a container may be given back (capabilities(7)), without the CAP_ prefix.
CAPABILITIES = (
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL",
    "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYSLOG",
    "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE",
    "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "WAKE_ALARM",
)  # fmt: skip
_SIZE_RE = re.compile(r"(\d+)([kmg]?)(i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


@dataclass(frozen=True)
class RunSpec:
    # "UID:GID", numeric: files on the host are chowned to it. None: DEFAULT_USER where regdeploy
    # works on the host as root, else the host user it works as (who cannot chown to another).
    user: str | None = None
    memory: int = 512 << 20  # bytes; also the memory+swap limit (no swap)
    pids: int = 256
    read_only: bool = True
    cap_add: tuple[str, ...] = ()

    @property
    def effective_user(self) -> str:
        return self.user or DEFAULT_USER

    @property
    def owner(self) -> tuple[int, int]:
        uid, _, gid = self.effective_user.partition(":")
        return int(uid), int(gid or uid)

    def on_host(self, identity: tuple[int, int]) -> RunSpec:
        """With the user settled for a host where regdeploy writes files as *identity* (uid, gid)."""
        uid, gid = identity
        if self.user is not None or uid == 0:
            return self  # root hands the files to DEFAULT_USER
        return replace(self, user=f"{uid}:{gid}")


# Defaults per kind of unit, measured on the units idle and under a push (docs/units.md).
REGISTRY_RUN = RunSpec(memory=512 << 20, pids=256)
SIDECAR_RUN = RunSpec(memory=128 << 20, pids=64)

RUN_KEYS = ("user", "memory", "pids", "read_only", "cap_add")


def parse_run(raw: Any, where: v.Where, default: RunSpec) -> RunSpec:
    data = v.mapping(raw, where, RUN_KEYS)
    out = default
    if data.get("user") is not None:
        out = replace(out, user=_user(data["user"], where.child("user")))
    if data.get("memory") is not None:
        out = replace(out, memory=_memory(data["memory"], where.child("memory")))
    if data.get("pids") is not None:
        out = replace(out, pids=v.integer(data["pids"], where.child("pids"), 16, 1 << 22))
    if data.get("read_only") is not None:
        out = replace(out, read_only=v.boolean(data["read_only"], where.child("read_only")))
    if data.get("cap_add") is not None:
        caps = v.string_list(data["cap_add"], where.child("cap_add"))
        for i, cap in enumerate(caps):
            name = cap.upper().removeprefix("CAP_")
            if name == "ALL":
                where.child("cap_add").child(i).fail("ALL would undo the hardening: name each capability")
            v.choice(name, where.child("cap_add").child(i), CAPABILITIES)
        out = replace(out, cap_add=tuple(sorted({c.upper().removeprefix("CAP_") for c in caps})))
    return out


def _user(raw: Any, where: v.Where) -> str:
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    value = v.string(text, where, r"\d+(:\d+)?", "expected UID or UID:GID, numeric (files are chowned to it)")
    uid, _, gid = value.partition(":")
    if int(uid) == 0:
        where.fail("0 is root: units run as a non-root user (CIS Docker Benchmark 4.1)")
    if int(uid) > 2**31 - 1 or (gid and int(gid) > 2**31 - 1):
        where.fail(f"{value} is out of range (at most {2**31 - 1})")
    return value if gid else f"{uid}:{uid}"


def _memory(raw: Any, where: v.Where) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        amount = raw
    else:
        match = _SIZE_RE.fullmatch(str(raw).strip()) if isinstance(raw, str) else None
        if match is None:
            where.fail(f"invalid size {raw!r}: use bytes or a number with k, m or g (512m, 1g)")
        amount = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if not MIN_MEMORY <= amount <= MAX_MEMORY:
        where.fail(f"{raw!r} is out of range {MIN_MEMORY >> 20}m..{MAX_MEMORY >> 30}g")
    return amount


def human_size(n: int) -> str:
    for unit, size in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)
