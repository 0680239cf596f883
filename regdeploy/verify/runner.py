"""Run the selected checks against one host: phases, timing, masking, and cleanup no matter what.

Time goes to the registry's bcrypt compare — paid on every authenticated request (tens of ms at the
default cost) — and to the Docker engine. So the engine check's groundwork (loading the Docker SDK,
building the smoke image) runs alongside tcp/tls/auth, and the engine and API push/pulls run side by side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from regdeploy.errors import RegdeployError
from regdeploy.verify import (
    api,
    auth,
    catalog,
    cleanup,
    engine,
    net,
    notifications,
    persistence,
    proxies,
    replicas,
    storage,
)
from regdeploy.verify.checks import BY_NAME, CHECK_NAMES, PHASES, PUSHERS
from regdeploy.verify.context import VerifyContext, make_target
from regdeploy.verify.model import Blocked, CheckFailed, CheckResult, NotApplicable, Status

if TYPE_CHECKING:
    from regdeploy.materials.secrets import Masker
    from regdeploy.ops.run import HostJob

RUN: dict[str, Callable[[VerifyContext], str]] = {
    "tcp": net.check_tcp,
    "storage": storage.check_storage,
    "replicas": replicas.check_replicas,
    "tls": net.check_tls,
    "auth": auth.check_auth,
    "engine": engine.check_engine,
    "api": api.check_api,
    "catalog": catalog.check_catalog,
    "notifications": notifications.check_notifications,
    "persistence": persistence.check_persistence,
    "proxies": proxies.check_proxies,
    "cleanup": cleanup.check_cleanup,
}
assert set(RUN) == set(CHECK_NAMES)


@dataclass(frozen=True)
class HostReport:
    name: str
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def run_check(name: str, ctx: VerifyContext, mask: Callable[[str], str]) -> CheckResult:
    """One check, timed; its detail goes through the run's masker (secrets never leave the process)."""
    started = time.perf_counter()
    status: Status = "fail"
    try:
        detail = RUN[name](ctx)
        status = "pass"
    except CheckFailed as exc:
        detail = str(exc)
    except NotApplicable as exc:
        status, detail = "skip", str(exc)
    except Blocked as exc:
        status, detail = "blocked", f"not run: {exc}"
    except RegdeployError as exc:  # e.g. the control machine's Docker engine cannot be reached
        detail = str(exc)
    finally:
        ctx.push_finished(name)  # a push check that ended early must not keep the catalog waiting
    seconds = time.perf_counter() - started - ctx.waited.get(name, 0.0)
    return CheckResult(name, status, seconds, mask(detail))


def _blocked_by(
    name: str, ctx: VerifyContext, results: dict[str, CheckResult], pushing: Collection[str]
) -> str | None:
    """Why *name* cannot run (the root failure, e.g. "tcp failed"), or None when it can."""
    if BY_NAME[name].needs_push:
        if ctx.pushed or pushing:  # pushes under way: the check waits for them itself
            return None
        causes = _causes([n for n in PUSHERS if n in results], results)
        return "nothing was pushed" + (f" ({causes})" if causes else "")
    return _causes([n for n in BY_NAME[name].needs if n in results and not results[n].ok], results) or None


def _causes(names: list[str], results: dict[str, CheckResult]) -> str:
    causes = [
        results[n].detail.removeprefix("not run: ") if results[n].status == "blocked" else f"{n} failed"
        for n in names
    ]
    return "; ".join(dict.fromkeys(causes))


def verify_host(
    job: HostJob, selected: Collection[str], masker: Masker, server_name: str | None = None
) -> HostReport:
    """Run the *selected* checks (``checks.select_checks``) against one host."""
    from regdeploy.transport import open_transport

    spec = job.spec
    absent = {  # a check of what the host does not have is noise, not a skip
        "proxies": not spec.proxies,
        "storage": spec.storage.s3 is None,
        "replicas": spec.cluster_view is None or len(spec.cluster_view.members) < 2,
        "persistence": not spec.serves,  # a balancer-only host has no registry to restart
    }
    selected = [n for n in selected if not absent.get(n, False)]

    transport = open_transport(job.name, job.vars)
    ctx = VerifyContext(job, make_target(job, transport.address, server_name), transport)
    results: dict[str, CheckResult] = {}
    pool = ThreadPoolExecutor(max_workers=4)  # the engine's groundwork + the three checks of a phase
    try:
        if "engine" in selected:
            ctx.engine_ready = pool.submit(engine.prepare, ctx)
        for phase in PHASES:
            names = [n for n in phase if n in selected]
            if "notifications" in selected and set(names) & set(PUSHERS):
                notifications.before_pushes(ctx)
            runnable = []
            pushing = [n for n in names if n in PUSHERS and _blocked_by(n, ctx, results, ()) is None]
            for name in pushing:
                ctx.pushes[name] = threading.Event()
            for name in names:
                why = _blocked_by(name, ctx, results, pushing)
                if why is None:
                    runnable.append(name)
                else:
                    results[name] = CheckResult(name, "blocked", 0.0, f"not run: {why}")
            futures = [pool.submit(run_check, n, ctx, masker.mask) for n in runnable]
            for name, future in zip(runnable, futures, strict=True):
                results[name] = future.result()
    finally:
        # Whatever happened above (a bug included), remove what this run created. The engine's
        # groundwork may still be building the smoke image: wait, so that it is removed too.
        if ctx.engine_ready is not None:
            ctx.engine_ready.exception()
        pool.shutdown()
        if "cleanup" in selected or cleanup.needed(ctx):
            results["cleanup"] = run_check("cleanup", ctx, masker.mask)
        ctx.close()
        transport.close()
    return HostReport(job.name, tuple(results[n] for n in CHECK_NAMES if n in results))
