"""``regdeploy gc``: collect the blobs no manifest references, safely (read-only window)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from regdeploy.cli.common import connect_options, connect_vars, emit_json, host_options, progress
from regdeploy.errors import EXIT_FAILED, EXIT_OK, RegdeployError


@click.command("gc")
@host_options
@connect_options
@click.option(
    "--dry-run", is_flag=True, help="List what would be deleted; delete nothing (still read-only meanwhile)."
)
@click.option(
    "--untagged",
    is_flag=True,
    help="Also delete manifests no tag points to (garbage-collect --delete-untagged).",
)
def gc_command(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
               connect_timeout: float | None, accept_new_host_keys: bool, dry_run: bool,
               untagged: bool) -> None:  # fmt: skip
    """Garbage-collect each registry's storage: the blobs no manifest references.

    \b
    The safe sequence, per host:
      1. the registry goes read-only (pulls work, pushes are refused)
      2. `registry garbage-collect` runs once, in a one-off container
      3. the registry goes back to writable, restarted (its cache is cleared)
    Each switch restarts the registry (about a second). A cluster's replicas
    share one storage: all go read-only one at a time (drained at the
    balancers, so pulls through them keep working), garbage-collect runs
    once, the shared redis cache is flushed. On S3 storage gc also
    deletes uploads started over a week ago (the registry's own upload
    purger is off there: it crashes on SeaweedFS). Interrupted, the next
    `gc` or `up` makes it writable again. Delete tags first (`regdeploy
    retention`, or the API): gc frees what nothing references any more.

    \b
    Example:
      regdeploy retention && regdeploy gc
    """
    from regdeploy.ops.gc import gc_all
    from regdeploy.ops.run import prepare

    run = prepare(inventory, limit, connect_vars(connect_timeout, accept_new_host_keys))
    run.state.commit()

    def say(host: str, message: str) -> None:
        progress(f"[{host}] {run.masker.mask(message)}")

    results = gc_all(run.jobs, dry_run, untagged, run.masker, say, forks)
    hosts: dict[str, dict[str, Any]] = {}
    for name, r in results.items():
        if isinstance(r, RegdeployError):
            hosts[name] = {"ok": False, "error": run.masker.mask(str(r)).removeprefix(f"{name}: ")}
        else:
            hosts[name] = {"ok": True, **r.as_json(), "error": None}
    payload = {"ok": all(h["ok"] for h in hosts.values()), "hosts": hosts}
    if as_json:
        emit_json(payload)
    else:
        for name, h in hosts.items():
            if h["error"]:
                click.secho(f"{name}: FAILED: {h['error']}", fg="red")
                continue
            what = "eligible" if h["dry_run"] else "deleted"
            freed = (
                f", {h['freed'] / 2**20:.1f} MiB freed" if h["freed"] is not None and not h["dry_run"] else ""
            )
            where = f" (cluster {h['cluster']}, on {h['ran_on']})" if h.get("cluster") else ""
            stale = f", {h['uploads']} stale uploads {what}" if h.get("uploads") else ""
            line = f"{name}: {h['blobs']} blobs {what}{stale}{freed} in {h['seconds']:g}s{where}"
            click.secho(line, fg="green")
    sys.exit(EXIT_OK if payload["ok"] else EXIT_FAILED)


def register(cli: click.Group) -> None:
    cli.add_command(gc_command)
