"""``regdeploy backup --to DIR`` and ``regdeploy restore --from DIR``."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

import click

from regdeploy.cli.common import connect_options, connect_vars, emit_json, host_options, progress
from regdeploy.errors import EXIT_FAILED, EXIT_OK, RegdeployError


def _say(masker: Any, host: str, message: str) -> None:
    progress(f"[{host}] {masker.mask(message)}")


def _print(payload: dict[str, Any], as_json: bool, done: str) -> None:
    if as_json:
        emit_json(payload)
        return
    for name, h in payload["hosts"].items():
        if h.get("error"):
            click.secho(f"{name}: FAILED: {h['error']}", fg="red")
        elif h.get("data") is None and h.get("data_dir") is None:
            where = h.get("storage")
            why = f"its data is on {where}: the storage's own backup covers it" if where else "no data"
            click.secho(f"{name}: state only ({why})", fg="yellow")
        else:
            seconds = f" in {h['seconds']}s" if h.get("seconds") is not None else ""
            click.secho(f"{name}: {done} ({h.get('bytes') or 0} bytes of data{seconds})", fg="green")


@click.command("backup")
@host_options
@connect_options
@click.option("--to", "to", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Directory for the backup (0700: it holds secrets, as the state dir does).")  # fmt: skip
def backup_command(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                   connect_timeout: float | None, accept_new_host_keys: bool, to: Path) -> None:  # fmt: skip
    """Copy each registry's data (read-only meanwhile) and regdeploy's state to DIR.

    \b
    Pulls keep working while the data is copied; pushes are refused for that
    window, and the switches restart the registry. The data dir travels as a
    tar stream (over SSH for remote hosts) into DIR/HOST/data.tar. The state
    directory comes along (CA, keys, generated passwords), so a restore keeps
    certificates and users. A registry on S3 storage: the state only (back the
    bucket up by the storage's own means). Restore with
    `regdeploy restore --from DIR`, then `regdeploy up`.
    """
    from regdeploy.ops.backup import backup_host, write_manifest
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.run import prepare

    run = prepare(inventory, limit, connect_vars(connect_timeout, accept_new_host_keys))
    run.state.commit()
    to.mkdir(mode=0o700, parents=True, exist_ok=True)
    say = partial(_say, run.masker)
    results = fan_out(run.jobs, lambda j: j.name, lambda j: backup_host(j, to, run.masker, say), forks)
    hosts = {n: ({"error": run.masker.mask(str(r))} if isinstance(r, RegdeployError) else r)
             for n, r in results.items()}  # fmt: skip
    ok = all("error" not in h for h in hosts.values())
    if ok:
        write_manifest(to, run.state.root, hosts, run.inventory.source)
    _print({"ok": ok, "to": str(to), "hosts": hosts}, as_json, f"backed up to {to}")
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@click.command("restore")
@host_options
@connect_options
@click.option("--from", "source", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="A directory `regdeploy backup --to` wrote.")  # fmt: skip
@click.option("--force", is_flag=True, help="Restore another registry's backup, or over data.")
@click.option("--from-host", "from_host", metavar="NAME",
              help="Restore the data the backup holds for host NAME (default: each host's own).")  # fmt: skip
def restore_command(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                    connect_timeout: float | None, accept_new_host_keys: bool, source: Path,
                    force: bool, from_host: str | None) -> None:  # fmt: skip
    """Put a backup's data and state back, then run `regdeploy up`.

    \b
    Refused before anything is written (exit 2): a directory that is no backup,
    a host the backup lacks, an archive that is not the one the backup wrote,
    another registry's backup or a data dir that holds data (both unless
    --force). The data is unpacked beside the data dir on the host and swapped
    in only when complete: a failed restore leaves the data as it was. The
    state files the state directory lacks are copied (all of them with --force).

    \b
    Examples:
      regdeploy restore --from /srv/backups/reg-2026-12-01
      regdeploy restore --from /srv/backups/reg-2026-12-01 --limit new1 --from-host reg1
    """
    from regdeploy.materials.state import StateStore
    from regdeploy.ops.backup import (
        check_data_dir,
        check_restore,
        read_manifest,
        restore_host,
        restore_state,
        source_entry,
    )
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.run import load_specs

    doc = read_manifest(source)
    inv, specs = load_specs(inventory, limit, connect_vars(connect_timeout, accept_new_host_keys))
    for name, _, spec in specs:
        check_restore(doc, source, name, spec, force, from_host)
    for name, host_vars, spec in specs:  # on the hosts, still before anything is written
        if source_entry(doc, source, name, from_host).get("data") is not None:
            check_data_dir(name, host_vars, spec, force)
    state_root = StateStore.beside(inv.base_dir).root
    state_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    copied = restore_state(source, state_root, force)

    def say(host: str, message: str) -> None:
        progress(f"[{host}] {message}")

    def one(s: tuple[str, Any, Any]) -> dict[str, Any]:
        return restore_host(doc, source, s[0], s[1], s[2], say, from_host)

    results = fan_out(specs, lambda s: s[0], one, forks)
    hosts = {n: ({"error": str(r)} if isinstance(r, RegdeployError) else r) for n, r in results.items()}
    ok = all("error" not in h for h in hosts.values())
    _print({"ok": ok, "from": str(source), "state_files": copied, "hosts": hosts}, as_json, "restored")
    if ok and not as_json:
        click.echo("next: regdeploy up")
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


def register(cli: click.Group) -> None:
    cli.add_command(backup_command)
    cli.add_command(restore_command)
