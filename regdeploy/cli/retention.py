"""``regdeploy retention``: apply ``registry.retention`` (or, with --dry-run, list what it would delete)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from regdeploy.cli.common import connect_options, connect_vars, emit_json, host_options, progress
from regdeploy.errors import EXIT_FAILED, EXIT_OK, InputError


def register(cli: click.Group) -> None:
    cli.add_command(retention)


@click.command()
@host_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would be deleted, and why each other tag stays; delete nothing.",
)
@connect_options
def retention(inventory: Path | None, limit: str | None, forks: int, as_json: bool, dry_run: bool,
              connect_timeout: float | None, accept_new_host_keys: bool) -> None:  # fmt: skip
    """Delete the tags that registry.retention does not keep, by manifest digest.

    \b
    Per repository, the first rule whose `repositories` glob matches applies:
    the keep_last newest tags (by their image's created time) and every tag
    matching keep_tags stay; with older_than, only older tags go. A manifest
    that a kept tag (or a kept tag's index) uses is never deleted. Deleting
    frees no disk space by itself: `regdeploy gc` does that afterwards.

    \b
    Examples:
      regdeploy retention --dry-run            # what would go, and why the rest stays
      regdeploy retention --limit eu --json    # apply it to one group, as JSON
    """
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.retention import retention_host, summary
    from regdeploy.ops.run import load_specs, prepare

    connect = connect_vars(connect_timeout, accept_new_host_keys)
    loaded, specs = load_specs(inventory, limit, connect)  # before materials: nothing written in vain
    if not any(spec.retention for _, _, spec in specs):
        where = f" matching --limit {limit!r}" if limit else ""
        raise InputError(f"{loaded.source}: no host{where} has registry.retention rules: nothing to do")
    run = prepare(inventory, limit, connect, render_files=False)

    def say(host: str) -> Any:
        return lambda message: progress(f"[{host}] {run.masker.mask(message)}")

    results = fan_out(
        run.jobs, lambda j: j.name, lambda j: retention_host(j, dry_run, say=say(j.name)), forks
    )
    hosts: dict[str, dict[str, Any]] = {
        name: (
            {"ok": False, "changed": False, "repositories": {}, "error": run.masker.mask(str(r))}
            if isinstance(r, Exception)
            else {**r, "error": run.masker.mask(r["error"]) if r["error"] else None}
        )
        for name, r in results.items()
    }
    payload = summary(hosts, dry_run)
    if as_json:
        emit_json(payload)
    else:
        print_retention(payload)
    sys.exit(EXIT_OK if payload["ok"] else EXIT_FAILED)


def print_retention(payload: dict[str, Any]) -> None:
    dry = payload["dry_run"]
    for name, host in payload["hosts"].items():
        repos = host.get("repositories", {})
        deleted = sum(len(r["deleted"]) for r in repos.values())
        verb = "would delete" if dry else "deleted"
        if host.get("note"):
            click.secho(f"{name}: {host['note']}: nothing to do", fg="green")
            continue
        if repos or not host.get("error"):
            head = f"{name}: {verb} {deleted} tag{'s' * (deleted != 1)} in {len(repos)} repositor"
            head += "y" if len(repos) == 1 else "ies"
            click.secho(head, fg="yellow" if deleted else "green", bold=True)
        for repo, r in repos.items():
            click.echo(f"  {repo}")
            for d in r["deleted"]:
                click.secho(f"    - {d['tag']:<20} {d['digest']}  {d['reason']}", fg="yellow")
            for d in r.get("pending", []):
                click.secho(f"    ! {d['tag']:<20} {d['digest']}  not deleted: the host failed", fg="red")
            for k in r["kept"]:
                click.echo(f"    = {k['tag']:<20} {k['reason']}")
        if host.get("unmatched"):
            n = host["unmatched"]
            click.echo(f"  {n} other repositor{'y' if n == 1 else 'ies'}: no rule matches, untouched")
        if host.get("error"):
            click.secho(f"{name}: FAILED: {host['error'].removeprefix(name + ': ')}", fg="red")
    if dry:
        click.echo("dry run: nothing was deleted")
