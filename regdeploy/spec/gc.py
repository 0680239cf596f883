"""``registry.gc``: a garbage-collection schedule run by cron on the registry's host.

The entry (``/etc/cron.d/regdeploy-gc-NAME``, or ``cron_dir``) runs a script regdeploy renders next
to the config: it makes the registry read-only (a config.yml variant, and a restart), runs
``garbage-collect`` once in a one-off container of the same image, hardened as every unit, and puts
config.yml back with a restart (which clears the in-memory cache) — whatever happened, by a trap.
Only for a registry of its own: a cluster's replicas share storage and must all be read-only, which
one host cannot arrange (`regdeploy gc` from the control machine does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from regdeploy.spec import validate as v

CRON_DIR = "/etc/cron.d"
_MACROS = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually")
_FIELD_RE = re.compile(r"[0-9A-Za-z*/,-]+")


@dataclass(frozen=True)
class GcSpec:
    schedule: str  # a cron expression: five fields, or @daily ...
    untagged: bool = False  # --delete-untagged
    cron_dir: str = CRON_DIR


def parse_gc(raw: Any, where: v.Where) -> GcSpec | None:
    if raw is None:
        return None
    data = v.mapping(raw, where, ("schedule", "untagged", "cron_dir"))
    if data.get("schedule") is None:
        where.child("schedule").fail(
            'is required: a cron expression, e.g. "30 3 * * 0" (Sundays 03:30) or @weekly'
        )
    schedule = " ".join(v.string(data["schedule"], where.child("schedule")).split())
    fields = schedule.split(" ")
    if not (schedule in _MACROS or (len(fields) == 5 and all(_FIELD_RE.fullmatch(f) for f in fields))):
        where.child("schedule").fail(
            f"{schedule!r} is not a cron schedule: five fields (minute hour day month weekday) or one of "
            + ", ".join(_MACROS)
        )
    return GcSpec(
        schedule=schedule,
        untagged=v.boolean(data.get("untagged", False), where.child("untagged")),
        cron_dir=v.absolute_path(data.get("cron_dir", CRON_DIR), where.child("cron_dir")),
    )
