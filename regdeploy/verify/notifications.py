"""``notifications``: did the registry deliver this run's events to each configured endpoint?

The registry's debug server (``http.debug.addr``, published on the host's loopback only) lists per-endpoint
counters at ``/debug/vars`` under ``registry.notifications.endpoints[].Metrics``: Events (queued), Successes,
Failures (the endpoint answered outside 2xx/3xx), Errors (it could not be reached), Pending, Statuses.
They are read before the pushes and compared after. That listing also holds each endpoint's headers
(tokens): only names and counters are ever taken from it, so nothing else can reach the output.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from regdeploy.spec.validate import duration_seconds
from regdeploy.transport.address import is_loopback
from regdeploy.verify.context import VerifyContext
from regdeploy.verify.model import NETWORK_ERRORS, CheckFailed, NotApplicable, describe_error

POLL_INTERVAL = 0.05
# Delivery of a few tiny events takes milliseconds; a refusing endpoint shows Failures at once.
MIN_WAIT = 2.0
MAX_WAIT = 10.0


@dataclass(frozen=True)
class Metrics:
    events: int = 0
    successes: int = 0
    failures: int = 0
    errors: int = 0
    pending: int = 0
    statuses: Mapping[str, int] = field(default_factory=dict)


def parse_debug_vars(data: Any) -> dict[str, Metrics]:
    """Endpoint name -> counters. Reads nothing else (the same objects carry the endpoint headers)."""
    endpoints = (((data or {}).get("registry") or {}).get("notifications") or {}).get("endpoints") or []
    out: dict[str, Metrics] = {}
    for entry in endpoints:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        m = entry.get("Metrics") or {}
        statuses = m.get("Statuses") or {}
        out[entry["name"]] = Metrics(
            events=int(m.get("Events") or 0),
            successes=int(m.get("Successes") or 0),
            failures=int(m.get("Failures") or 0),
            errors=int(m.get("Errors") or 0),
            pending=int(m.get("Pending") or 0),
            statuses={str(k): int(v) for k, v in statuses.items() if isinstance(v, int)},
        )
    return out


@dataclass
class Before:
    """This check's state in a run: the counters read before the pushes, or why they could not be."""

    counters: dict[str, Metrics] | Exception | None = None


@dataclass(frozen=True)
class Verdict:
    done: bool  # nothing more will change by waiting
    ok: bool
    text: str


def judge(name: str, before: Metrics, after: Metrics, final: bool) -> Verdict:
    """What the counters say about endpoint *name* since *before*; *final* once the wait is over."""
    events = after.events - before.events
    delivered = after.successes - before.successes
    failures = after.failures - before.failures
    errors = after.errors - before.errors
    if failures > 0 or errors > 0:
        statuses = {
            k: v - before.statuses.get(k, 0)
            for k, v in after.statuses.items()
            if v > before.statuses.get(k, 0)
        }
        parts = []
        if failures:
            answered = ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items())) or "non-2xx"
            parts.append(f"refused {failures} deliveries (answered {answered})")
        if errors:
            parts.append(f"{errors} delivery errors (unreachable or timed out)")
        return Verdict(True, False, f"{name}: {'; '.join(parts)}; delivered {delivered} of {events} events")
    if events > 0 and delivered >= events and after.pending == 0:
        return Verdict(True, True, f"{name}: delivered {delivered} of {events} events")
    if not final:
        return Verdict(False, False, "")
    if events == 0:
        return Verdict(True, False, f"{name}: the registry queued no event for this run's pushes")
    if delivered > 0:
        return Verdict(
            True, True, f"{name}: delivered {delivered} of {events} events ({after.pending} pending)"
        )
    return Verdict(True, False, f"{name}: none of {events} events delivered yet ({after.pending} pending)")


def _debug_address(ctx: VerifyContext) -> tuple[str, int]:
    """Where the debug server is reached, or NotApplicable saying why it is not checked."""
    spec = ctx.job.spec
    active = [e for e in spec.notifications.endpoints if not e.disabled]
    if not active:
        raise NotApplicable("no notification endpoints configured")
    if spec.debug_port is None:
        raise NotApplicable(
            "registry.debug.port is not set: the registry does not publish delivery counters, "
            "so delivery to " + ", ".join(e.name for e in active) + " cannot be observed"
        )
    address = ctx.target.address
    if not is_loopback(address):
        raise NotApplicable(
            f"the debug port listens on {ctx.job.name}'s loopback only: not reachable from this machine"
        )
    return address, spec.debug_port


def read_metrics(address: str, port: int, timeout: float = 3.0) -> dict[str, Metrics]:
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", "/debug/vars")
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise CheckFailed(f"GET /debug/vars on {address}:{port} answered {resp.status}")
    try:
        return parse_debug_vars(json.loads(body))
    except ValueError:
        raise CheckFailed(f"GET /debug/vars on {address}:{port}: not JSON") from None


def before_pushes(ctx: VerifyContext) -> None:
    """Read the counters before anything is pushed; a problem is kept and reported by the check."""
    state = ctx.state(Before)
    try:
        address, port = _debug_address(ctx)
        state.counters = read_metrics(address, port)
    except (NotApplicable, CheckFailed) as exc:
        state.counters = exc
    except NETWORK_ERRORS as exc:
        state.counters = CheckFailed(
            f"cannot read delivery counters on debug port {ctx.job.spec.debug_port}: {describe_error(exc)}"
        )


def check_notifications(ctx: VerifyContext) -> str:
    before = ctx.state(Before).counters
    if isinstance(before, Exception):
        raise before
    if before is None:
        raise CheckFailed("the delivery counters were not read before the pushes")
    address, port = _debug_address(ctx)
    spec = ctx.job.spec
    names = [
        e.name for e in spec.notifications.endpoints if not e.disabled and not _ignores_all(e.ignore_actions)
    ]
    skipped = [e.name for e in spec.notifications.endpoints if e.disabled or _ignores_all(e.ignore_actions)]
    if not names:
        raise NotApplicable(f"every endpoint is disabled or ignores push and pull: {', '.join(skipped)}")
    missing = [n for n in names if n not in before]
    if missing:
        raise CheckFailed(f"the registry runs no endpoint named {', '.join(missing)} (config not applied?)")
    waits = [duration_seconds(e.timeout) + 1.0 for e in spec.notifications.endpoints if e.name in names]
    deadline = time.monotonic() + min(MAX_WAIT, max(MIN_WAIT, *waits))
    while True:
        final = time.monotonic() >= deadline
        try:
            after = read_metrics(address, port)
        except NETWORK_ERRORS as exc:
            raise CheckFailed(
                f"cannot read delivery counters on debug port {port}: {describe_error(exc)}"
            ) from None
        verdicts = [judge(n, before[n], after.get(n) or before[n], final) for n in names]
        if all(v.done for v in verdicts):
            break
        time.sleep(POLL_INTERVAL)
    text = "; ".join(v.text for v in verdicts)
    if skipped:
        text += f"; not checked (disabled or ignoring push and pull): {', '.join(skipped)}"
    if not all(v.ok for v in verdicts):
        raise CheckFailed(text)
    return text


def _ignores_all(actions: tuple[str, ...]) -> bool:
    return {"push", "pull"} <= set(actions)
