"""The order in which `up` converges hosts: hosts of no cluster together, a cluster's replicas in
rolling batches, its balancers last.

A cluster's replicas are replaced ``registry.serial`` at a time (``--serial`` overrides), the host
running its redis first; a batch starts only once the previous one serves and the balancers have
had time to see it healthy again (two health-check intervals), and never takes every replica
behind a balancer down at once. A replica that fails stops its cluster's rollout: the replicas not
yet started keep what they run. Balancer-only hosts come after every replica of their cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from regdeploy.errors import HostError, RegdeployError
from regdeploy.ops.fanout import fan_out
from regdeploy.ops.run import HostJob

T = TypeVar("T")


@dataclass
class Wave:
    jobs: list[HostJob] = field(default_factory=list)


def _batch_size(members: Sequence[HostJob], serial: int | None) -> int:
    size = serial or members[0].spec.serial
    view = members[0].spec.cluster_view
    if view is not None and view.balancers and len(view.members) > 1:
        size = min(size, len(view.members) - 1)  # one replica always serves behind the balancer
    return max(size, 1)


def rolling_order(members: Sequence[HostJob]) -> list[HostJob]:
    """A cluster's replicas in the order they are switched: the host running the shared cache first."""
    return sorted(members, key=lambda j: not j.spec.redis_here)


def waves(jobs: Sequence[HostJob], serial: int | None = None) -> list[list[HostJob]]:
    """The targeted hosts in the order `up` converges them (each inner list runs in parallel)."""

    def fronts_another(job: HostJob) -> bool:  # a balancer on a registry of its own: last, too
        return job.spec.lb is not None and job.spec.cluster_view is None

    standalone = [j for j in jobs if j.spec.cluster_view is None and not fronts_another(j)]
    clusters: dict[str, list[HostJob]] = {}
    balancers: list[HostJob] = [j for j in jobs if j.spec.serves and fronts_another(j)]
    for job in jobs:
        view = job.spec.cluster_view
        if view is None or fronts_another(job):
            continue
        if job.spec.serves:
            clusters.setdefault(view.name, []).append(job)
        else:
            balancers.append(job)
    out: list[list[HostJob]] = []
    if serial:
        out = [list(standalone[i : i + serial]) for i in range(0, len(standalone), serial)]
    elif standalone:
        out = [list(standalone)]
    for members in clusters.values():
        members = rolling_order(members)
        size = _batch_size(members, serial)
        for n, start in enumerate(range(0, len(members), size)):
            while len(out) <= n:
                out.append([])
            out[n].extend(members[start : start + size])
    if balancers:
        out.append(balancers)
    return [w for w in out if w]


def roll_out(
    jobs: Sequence[HostJob],
    func: Callable[[HostJob], T],
    forks: int,
    serial: int | None = None,
    fail_fast: bool = False,
    changed: Callable[[T], bool] = lambda _: True,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, T | RegdeployError]:
    """Every host's result or error, in the order of *jobs*."""
    results: dict[str, T | RegdeployError] = {}
    stopped: dict[str, str] = {}  # cluster -> the host whose failure stopped its rollout
    settle: dict[str, float] = {}  # cluster -> seconds its balancers need to see replaced replicas
    for wave in waves(jobs, serial):
        # Only a replica going next needs the balancers to have taken the previous one back.
        replicas = [j.spec.cluster_view.name for j in wave if j.spec.cluster_view and j.spec.serves]
        pause = max((settle.pop(name, 0.0) for name in replicas), default=0)
        if pause:
            sleep(pause)
        todo: list[HostJob] = []
        for job in wave:
            view = job.spec.cluster_view
            if fail_fast and any(isinstance(r, RegdeployError) for r in results.values()):
                results[job.name] = HostError(
                    f"{job.name}: not started: a host failed and --fail-fast is set"
                )
            elif view is not None and view.name in stopped:
                results[job.name] = HostError(
                    f"{job.name}: not started: {stopped[view.name]} failed in the rolling update of "
                    f"cluster {view.name!r} (its other replicas keep what they run)"
                )
            else:
                todo.append(job)
        done = fan_out(todo, lambda j: j.name, func, forks, fail_fast=fail_fast)
        for job in todo:
            outcome = done[job.name]
            results[job.name] = outcome
            view = job.spec.cluster_view
            if view is None:
                continue
            if isinstance(outcome, RegdeployError):
                stopped.setdefault(view.name, job.name)
            elif job.spec.serves and changed(outcome) and view.balancers:
                settle[view.name] = max(settle.get(view.name, 0.0), view.settle)
    return {j.name: results[j.name] for j in jobs}
