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
On a registry of its own the switches restart it: pulls pause for the restart (about a second here).

On a cluster (registry.cluster) the storage is shared, so the sequence is the cluster's, once:
every replica goes read-only one at a time (each drained at the balancers while it restarts, so
pulls through them keep working), ``garbage-collect`` runs once on the first replica, the shared
redis cache is flushed, and the replicas go back to writable one at a time. Every replica of the
cluster must be targeted.
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
    from regdeploy.storage.contents import BucketContents
    from regdeploy.transport.base import Transport

_DELETED_RE = re.compile(r"Deleting blob: (\S+)")
_ELIGIBLE_RE = re.compile(r"blob eligible for deletion: (\S+)")
GC_TIMEOUT = 3600.0
# garbage-collect on a storage no repository was ever pushed to (tried on 2.8.2): "failed to mark:
# filesystem: Path not found: /docker/registry/v2/repositories" (s3aws says the same).
_EMPTY_RE = re.compile(r"failed to mark: \S+: Path not found: \S*/docker/registry/v2/repositories")


@dataclass(frozen=True)
class Collected:
    blobs: int  # deleted (or, in a dry run, eligible)
    bytes_before: int | None
    bytes_after: int | None
    dry_run: bool
    seconds: float
    cluster: str | None = None  # the cluster whose storage this was
    ran_on: str | None = None  # the replica garbage-collect ran on
    uploads: int = 0  # S3: stale uploads deleted (or, in a dry run, found)

    @property
    def freed(self) -> int | None:
        if self.bytes_before is None or self.bytes_after is None:
            return None
        return self.bytes_before - self.bytes_after

    def as_json(self) -> dict[str, Any]:
        return {"blobs": self.blobs, "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
                "freed": self.freed, "dry_run": self.dry_run, "seconds": round(self.seconds, 1),
                "cluster": self.cluster, "ran_on": self.ran_on, "uploads": self.uploads}  # fmt: skip


def count_blobs(log: str, dry_run: bool) -> int:
    """Blobs garbage-collect deleted (or found eligible, dry run), from its output."""
    return len(set((_ELIGIBLE_RE if dry_run else _DELETED_RE).findall(log)))


def _flush_cache(job: HostJob, say: Callable[[str], None], blobs: int) -> None:
    """Empty the registry's redis cache (a restart clears only an in-memory one); HostError naming
    what was collected and what to run when it cannot."""
    cache = job.spec.cache
    if cache is None or not cache.addr:
        return
    from regdeploy.storage.redis import flush

    say(f"flushing the redis cache at {cache.addr} (db {cache.db})")
    try:
        flush(cache.addr, job.materials.redis_password, cache.db)
    except RegdeployError as exc:
        raise HostError(
            f"{exc}: {blobs} blobs were collected but the redis cache was NOT flushed: run FLUSHDB on db "
            f"{cache.db} there before pushing any collected layer again"
        ) from None


def _purge_uploads(
    job: HostJob, before: Usage, dry_run: bool, say: Callable[[str], None], blobs: int
) -> tuple[int, int]:
    """S3 only: the uploads started over a week ago, deleted (dry run: counted); how many and their
    bytes. They are found in the listing *before* (the read-only window starts no upload), or by a
    listing of their own when that one stopped short. The registry's own purger is off on S3
    (storage/uploads.py says why). Runs after the cache flush: its failure (HostError) must not
    leave the cache stale."""
    from datetime import UTC, datetime

    from regdeploy.storage.target import s3_target
    from regdeploy.storage.uploads import delete, find_stale, stale_among

    target = s3_target(job.spec, job.materials)
    if target is None:
        return 0, 0
    now = datetime.now(UTC)
    try:
        if before.bucket is not None:
            found = stale_among(before.bucket.uploads, target, now)
        else:
            found = find_stale(target, now)
        size = sum(u.size for u in found)
        if found and not dry_run:
            say(f"deleting {len(found)} uploads started over a week ago ({size} bytes)")
            delete(target, found)
    except RegdeployError as exc:
        done = f"{blobs} blobs were collected and the cache is clear, but " if not dry_run else ""
        raise HostError(f"{done}stale uploads could not be purged: {exc}") from None
    return len(found), size


@dataclass(frozen=True)
class Usage:
    total: int | None  # bytes the storage holds; None when unknown
    bucket: BucketContents | None = None  # S3: what one listing found (None past a million objects)


def _usage(job: HostJob, transport: Transport) -> Usage:
    """What the registry's storage holds: the data dir, or the bucket under its root directory."""
    from regdeploy.storage.contents import read_contents
    from regdeploy.storage.target import s3_target

    target = s3_target(job.spec, job.materials)
    if target is None:
        return Usage(transport.dir_size(job.spec.data_dir))
    bucket = read_contents(target)
    return Usage(None if bucket is None else bucket.total, bucket)


def _bytes_after(
    job: HostJob, transport: Transport, before: Usage, log: str, dry_run: bool, uploads: int
) -> int | None:
    """The storage's bytes after gc. On S3 they are the bytes before less the deleted blobs' (sizes
    from the listing before) and the purged uploads': exact for what was deleted, and no second
    listing (which not every S3 server promises reflects a delete at once)."""
    if job.spec.storage.s3 is None:
        return None if before.total is None else transport.dir_size(job.spec.data_dir)
    if before.bucket is None or dry_run:
        return before.total
    return before.bucket.total - collected_bytes(before.bucket.blobs, log) - uploads


def collected_bytes(blobs: dict[str, int], log: str) -> int:
    """The bytes of the blobs garbage-collect's *log* names as deleted, from *blobs* (each blob's
    bytes by ``ALGORITHM/HEX``, listed before)."""
    gone = {d.replace(":", "/", 1) for d in _ELIGIBLE_RE.findall(log)}  # sha256:HEX -> sha256/HEX
    for path in _DELETED_RE.findall(log):  # /docker/registry/v2/blobs/sha256/HE/HEX
        parts = path.strip("\"/").split("/")
        if len(parts) >= 3:
            gone.add(f"{parts[-3]}/{parts[-1]}")
    return sum(blobs.get(digest, 0) for digest in gone)


def gc_all(
    jobs: list[HostJob], dry_run: bool, untagged: bool, masker: Masker, progress: Progress, forks: int
) -> dict[str, Collected | RegdeployError]:
    """Every targeted registry collected: hosts of no cluster in parallel, each cluster once.
    InputError (nothing touched) when a cluster is only partly targeted."""
    from regdeploy.errors import InputError
    from regdeploy.ops.fanout import fan_out

    serving = [j for j in jobs if j.spec.serves]  # balancer-only hosts hold no storage
    clusters: dict[str, list[HostJob]] = {}
    alone: list[HostJob] = []
    for job in serving:
        view = job.spec.cluster_view
        if view is None or len(view.members) < 2:
            alone.append(job)
        else:
            clusters.setdefault(view.name, []).append(job)
    for name, members in clusters.items():
        view = members[0].spec.cluster_view
        assert view is not None
        missing = [m.host for m in view.members if m.host not in {j.name for j in members}]
        if missing:
            raise InputError(
                f"--limit: gc of cluster {name!r} needs every replica (they share its storage): "
                f"add {', '.join(missing)}"
            )
    results: dict[str, Collected | RegdeployError] = dict(
        fan_out(alone, lambda j: j.name, lambda j: gc_host(j, dry_run, untagged, masker, progress), forks)
    )
    for members in clusters.values():
        results.update(gc_cluster(members, dry_run, untagged, masker, progress))
    return {j.name: results[j.name] for j in serving}


def gc_cluster(
    members: list[HostJob],
    dry_run: bool,
    untagged: bool,
    masker: Masker,
    progress: Progress,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Collected | RegdeployError]:
    """One cluster's sequence (module docstring); every member's result."""
    from regdeploy.ops.readonly import switch
    from regdeploy.ops.rollout import rolling_order
    from regdeploy.ops.run import host_error
    from regdeploy.transport import open_transport

    order = rolling_order(members)
    first = order[0]
    view = first.spec.cluster_view
    assert view is not None
    if first.spec.readonly:  # the replicas agree on it (spec.cluster checks)
        why = HostError(f"{first.name}: storage.readonly is true in the inventory: gc would leave it so")
        return {j.name: why for j in members}

    started = time.monotonic()
    switched: list[HostJob] = []
    errors: dict[str, RegdeployError] = {}
    collected: Collected | None = None
    current = first
    try:
        for job in order:
            if switched:
                sleep(view.settle)  # the balancers see the previous replica back before the next goes
            progress(job.name, f"read-only for gc of cluster {view.name}: pushes are refused until done")
            current = job
            switched.append(job)  # made writable again below even if this switch fails half way
            switch(job, True, masker, progress)
        current = first
        progress(first.name, f"every replica of cluster {view.name} is read-only")
        say = lambda m: progress(first.name, m)  # noqa: E731
        transport = open_transport(first.name, first.vars, say)
        try:
            ro = first.on_host(transport.identity())
            ro = dataclasses.replace(ro, spec=dataclasses.replace(ro.spec, readonly=True))
            before = _usage(first, transport)
            log = _collect(transport, ro, dry_run, untagged, say, masker)
            blobs = count_blobs(log, dry_run)
            if not dry_run:
                _flush_cache(first, say, blobs)
            uploads, upload_bytes = _purge_uploads(first, before, dry_run, say, blobs)
            after = _bytes_after(first, transport, before, log, dry_run, upload_bytes)
        finally:
            transport.close()
        collected = Collected(blobs, before.total, after, dry_run, 0.0, view.name, first.name, uploads)
    except RegdeployError as exc:
        errors[current.name] = host_error(current.name, exc, masker)
    finally:
        for k, job in enumerate(switched):  # back to writable, one at a time, whatever happened
            if k:
                sleep(view.settle)
            progress(job.name, "writable again")
            try:
                switch(job, False, masker, progress)
            except RegdeployError as exc:
                errors.setdefault(job.name, host_error(job.name, exc, masker))
    out: dict[str, Collected | RegdeployError] = {}
    for job in members:
        if job.name in errors:
            out[job.name] = errors[job.name]
        elif collected is None:
            failed = next(iter(errors), first.name)
            out[job.name] = HostError(f"{job.name}: gc of cluster {view.name} stopped: {failed} failed")
        else:
            out[job.name] = dataclasses.replace(collected, seconds=time.monotonic() - started)
    return out


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
            before = _usage(job, transport)
            log = _collect(transport, readonly, dry_run, untagged, say, masker)
            blobs = count_blobs(log, dry_run)
            if not dry_run:
                _flush_cache(job, say, blobs)
            uploads, upload_bytes = _purge_uploads(job, before, dry_run, say, blobs)
            after_bytes = _bytes_after(job, transport, before, log, dry_run, upload_bytes)
    finally:
        transport.close()
    seconds = time.monotonic() - started
    return Collected(blobs, before.total, after_bytes, dry_run, seconds, uploads=uploads)


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
    # On the filesystem it needs no network; on S3 it reaches the bucket as the registry does.
    body["HostConfig"]["NetworkMode"] = "none" if job.spec.storage.s3 is None else "bridge"
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
        if state.get("ExitCode") != 0 and _EMPTY_RE.search(log):
            say("nothing to collect: no repository was ever pushed")  # garbage-collect fails on that
            return ""
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
