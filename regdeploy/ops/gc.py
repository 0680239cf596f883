"""``regdeploy gc``: garbage-collect a registry's storage in the one safe sequence.

distribution's ``garbage-collect`` deletes blobs no manifest references; it must not run while the
registry accepts writes (a blob uploaded but not yet referenced would be swept), and it does not
clear the registry's blob-descriptor cache (a re-push of a deleted layer then reports "already
exists" and later pulls fail). So, per host:

1. the registry goes read-only (``storage.maintenance.readonly``: pulls work, pushes get the
   registry's read-only error) — through the same plan and apply as ``up``, health-gated;
2. ``garbage-collect`` runs once, in a one-off container of the registry image on the same storage
   and config, hardened like every unit;
3. the registry goes back to the inventory's mode with a restart, which clears the cache.

Interrupted anywhere, the next ``gc`` or ``up`` renders the inventory's mode again: writable.
The switches restart the registry: pulls pause for the restart (about a second here).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regdeploy.errors import HostError, RegdeployError
from regdeploy.materials.secrets import Masker
from regdeploy.ops.readonly import read_only
from regdeploy.ops.run import HostJob, Progress

if TYPE_CHECKING:
    from regdeploy.transport.base import Transport

_DELETED_RE = re.compile(r"Deleting blob: (\S+)")
_ELIGIBLE_RE = re.compile(r"blob eligible for deletion: (\S+)")
GC_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Collected:
    blobs: int  # deleted (or, in a dry run, eligible)
    bytes_before: int | None
    bytes_after: int | None
    dry_run: bool
    seconds: float

    @property
    def freed(self) -> int | None:
        if self.bytes_before is None or self.bytes_after is None:
            return None
        return self.bytes_before - self.bytes_after

    def as_json(self) -> dict[str, Any]:
        return {"blobs": self.blobs, "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
                "freed": self.freed, "dry_run": self.dry_run, "seconds": round(self.seconds, 1)}  # fmt: skip


def count_blobs(log: str, dry_run: bool) -> int:
    """Blobs garbage-collect deleted (or found eligible, dry run), from its output."""
    return len(set((_ELIGIBLE_RE if dry_run else _DELETED_RE).findall(log)))


def gc_host(job: HostJob, dry_run: bool, untagged: bool, masker: Masker, progress: Progress) -> Collected:
    from regdeploy.transport import open_transport

    spec = job.spec
    if spec.readonly:
        raise HostError(f"{job.name}: storage.readonly is true in the inventory: gc would leave it so anyway")

    def say(message: str) -> None:
        progress(job.name, message)

    started = time.monotonic()
    transport = open_transport(job.name, job.vars, say)
    try:
        job = job.on_host(transport.identity())  # the one-off container runs as the registry does
        why = "read-only: pushes are refused until gc is done"
        after = "writable again (the restart clears the blob-descriptor cache)"
        with read_only(job, masker, progress, why, after) as readonly:
            before = transport.dir_size(spec.data_dir)
            log = _collect(transport, readonly, dry_run, untagged, say, masker)
            after_bytes = transport.dir_size(spec.data_dir)
    finally:
        transport.close()
    return Collected(count_blobs(log, dry_run), before, after_bytes, dry_run, time.monotonic() - started)


def _collect(
    transport: Transport,
    job: HostJob,
    dry_run: bool,
    untagged: bool,
    say: Callable[[str], None],
    masker: Masker,
) -> str:
    """Run ``registry garbage-collect`` once next to the read-only registry; its output."""
    from regdeploy.deploy.definition import create_body, definition
    from regdeploy.deploy.health import log_tail
    from regdeploy.deploy.units import Probe, registry_unit

    unit = registry_unit(job.spec, job.rendered)
    config = unit.command[-1]
    flags = (["--dry-run"] if dry_run else []) + (["--delete-untagged"] if untagged else [])
    gc_unit = dataclasses.replace(
        unit, name=f"{job.spec.name}-gc-{secrets.token_hex(3)}", role="gc", ports=(), restart="no",
        command=("garbage-collect", *flags, config), probe=Probe("log"),
    )  # fmt: skip
    engine = transport.engine()
    image = engine.inspect_image(unit.image)
    wanted = definition(gc_unit, str(image["Id"]) if image else None, "")
    body = create_body(gc_unit, wanted, {"io.regdeploy.managed": "true", "io.regdeploy.role": "gc"})
    body["HostConfig"]["NetworkMode"] = "none"  # it needs no network
    body.pop("NetworkingConfig", None)
    say(f"garbage-collect{' --dry-run' if dry_run else ''}{' --delete-untagged' if untagged else ''}")
    cid = engine.create_container(gc_unit.name, body)
    try:
        engine.start_container(cid)
        deadline = time.monotonic() + GC_TIMEOUT
        while True:
            info = engine.inspect_container(cid) or {}
            state = info.get("State", {})
            if state.get("Status") in ("exited", "dead"):
                break
            if time.monotonic() > deadline:
                raise HostError(f"{job.name}: garbage-collect did not finish within {GC_TIMEOUT:g}s")
            time.sleep(0.2)
        log = engine.container_logs(cid, tail=100000).decode(errors="replace")
        if state.get("ExitCode") != 0:
            raise HostError(
                f"{job.name}: garbage-collect exited with code {state.get('ExitCode')}"
                f"{log_tail(engine, cid, masker.mask, 'garbage-collect')}"
            )
        return log
    except RegdeployError:
        raise
    finally:
        engine.remove_container(cid, force=True)
