"""How a verify run is shown: DESIGN.md's JSON for programs, a table for people. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from regdeploy.verify.model import CheckResult
from regdeploy.verify.runner import HostReport

_LABEL = {
    "pass": ("PASS", "green"),
    "fail": ("FAIL", "red"),
    "skip": ("SKIP", "yellow"),
    "blocked": ("----", "red"),
}

VerifyOutcome = HostReport | str  # a report, or why the host could not be verified at all


def payload(results: Mapping[str, VerifyOutcome]) -> dict[str, Any]:
    """``{"ok", "hosts": {NAME: {"ok", "checks": [{"name", "ok", "seconds", "detail"}], "error"}}}``."""
    hosts: dict[str, Any] = {}
    for name, r in results.items():
        if isinstance(r, HostReport):
            hosts[name] = {"ok": r.ok, "checks": [c.as_json() for c in r.checks], "error": None}
        else:
            hosts[name] = {"ok": False, "checks": [], "error": r}
    return {"ok": bool(hosts) and all(h["ok"] for h in hosts.values()), "hosts": hosts}


def table(results: Mapping[str, VerifyOutcome], color: bool = False) -> str:
    lines: list[str] = []
    for name, r in results.items():
        if not isinstance(r, HostReport):
            lines.append(
                click.style(f"{name}: FAILED: {r}", fg="red", bold=True) if color else f"{name}: FAILED: {r}"
            )
            continue
        head = f"{name}: {'ok' if r.ok else 'FAILED'}"
        lines.append(click.style(head, fg="green" if r.ok else "red", bold=True) if color else head)
        width = max((len(c.name) for c in r.checks), default=0)
        for c in r.checks:
            lines.append("  " + _row(c, width, color))
    total = len(results)
    failed = sum(1 for r in results.values() if not (isinstance(r, HostReport) and r.ok))
    summary = f"{total} host{'s' if total != 1 else ''}: {total - failed} ok, {failed} failed"
    lines.append(click.style(summary, fg="red" if failed else "green", bold=True) if color else summary)
    return "\n".join(lines)


def _row(c: CheckResult, width: int, color: bool) -> str:
    label, fg = _LABEL[c.status]
    tag = click.style(label, fg=fg) if color else label
    return f"{tag}  {c.name.ljust(width)}  {c.seconds:6.3f}s  {c.detail}"
