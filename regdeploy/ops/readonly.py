"""A registry's read-only window: what gc and backup run inside.

The registry goes read-only (``storage.maintenance.readonly``: pulls served, pushes refused)
through the same plan and apply as ``up``, health-gated, and back to the inventory's mode when the
window closes, whatever happened inside it. Both switches restart the registry; behind a balancer
on its own host, a read-only standby serves meanwhile (ops/standby.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from regdeploy.materials.secrets import Masker
from regdeploy.ops.run import HostJob, Progress, up_host


@contextlib.contextmanager
def read_only(job: HostJob, masker: Masker, progress: Progress, why: str, after: str) -> Iterator[HostJob]:
    """Yields the read-only job (its spec is what the registry runs meanwhile)."""
    with standing_in(job, masker, progress) as job:
        readonly = dataclasses.replace(job, spec=dataclasses.replace(job.spec, readonly=True))
        try:
            progress(job.name, why)
            switch(job, True, masker, progress)
            yield readonly
        finally:
            progress(job.name, after)
            switch(job, False, masker, progress)


def switch(job: HostJob, readonly: bool, masker: Masker, progress: Progress) -> None:
    """Converge the host with its registry read-only (or back to writable): a health-gated `up`."""
    spec = dataclasses.replace(job.spec, readonly=readonly) if readonly else job.spec
    up_host(dataclasses.replace(job, spec=spec), False, False, False, progress, masker)


@contextlib.contextmanager
def standing_in(job: HostJob, masker: Masker, progress: Progress) -> Iterator[HostJob]:
    """Within the block, a read-only standby serves beside the registry where a balancer on its
    host fronts it alone (ops/standby.py); yields the job, marked so that its `up` runs leave the
    standby alone while it does."""
    from regdeploy.ops.standby import window
    from regdeploy.spec.cluster import lone_local_replica

    if lone_local_replica(job.spec) is None:
        yield job
        return
    from regdeploy.transport import open_transport

    def say(message: str) -> None:
        progress(job.name, message)

    transport = open_transport(job.name, job.vars, say)
    try:
        job = job.on_host(transport.identity())
        with window(job.spec, job.rendered, transport, masker, say) as serving:
            yield dataclasses.replace(job, keeps_standby=True) if serving else job
    finally:
        transport.close()
