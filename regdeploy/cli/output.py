"""How runs are shown: per-host change lists for people, DESIGN.md's JSON shape for programs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from regdeploy.ops.run import HostOutcome

_SIGN = {"create": "+", "pull": "+", "remove": "-"}
_COLOUR = {"+": "green", "-": "red", "~": "yellow"}


def up_json(results: Mapping[str, HostOutcome]) -> dict[str, Any]:
    hosts = {
        name: {
            "ok": r.ok,
            "changed": r.changed,
            "changes": [c.as_json() for c in r.plan.changes] if r.plan else [],
            "error": r.error,
        }
        for name, r in results.items()
    }
    return {
        "ok": all(r.ok for r in results.values()),
        "changed": any(r.changed for r in results.values()),
        "hosts": hosts,
    }


def print_up(results: Mapping[str, HostOutcome], check: bool, with_diff: bool) -> None:
    would = "would change" if check else "changed"
    for name, r in results.items():
        if r.error is not None:
            first, *rest = r.error.splitlines() or [""]
            click.secho(f"{name}: FAILED: {first}", fg="red", bold=True)
            for line in rest:
                click.echo(line)
            continue
        assert r.plan is not None
        if not r.plan.changed:
            click.secho(f"{name}: ok, no changes", fg="green")
            continue
        n = len(r.plan.changes)
        click.secho(
            f"{name}: {n} {'change' if n == 1 else 'changes'} {'planned' if check else 'made'}", fg="yellow"
        )
        width = max(len(c.resource) for c in r.plan.changes)
        for c in r.plan.changes:
            sign = _SIGN.get(c.action, "~")
            click.echo(
                "  "
                + click.style(sign, fg=_COLOUR[sign])
                + f" {c.resource.ljust(width)}  {c.action}: {c.reason}"
            )
            if with_diff and c.diff:
                for line in c.diff.rstrip("\n").splitlines():
                    click.echo("      " + line)
    ok = sum(r.ok for r in results.values())
    changed = sum(r.changed for r in results.values())
    failed = len(results) - ok
    summary = (
        f"{len(results)} host{'s' if len(results) != 1 else ''}: {ok} ok, {changed} {would}, {failed} failed"
    )
    click.secho(summary, fg="red" if failed else ("yellow" if changed else "green"), bold=True)
