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
        else:
            click.secho(f"{name}: {done} ({h.get('bytes') or 0} bytes of data)", fg="green")


@click.command("backup")
@host_options
@connect_options
@click.option("--to", "to", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Directory for the backup (0700: it holds secrets, as the state dir does).")  # fmt: skip
def backup_command(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                   connect_timeout: float | None, accept_new_host_keys: bool, to: Path) -> None:  # fmt: skip
    """Copy each registry's data (read-only meanwhile) and regdeploy's state to DIR.

    \b
    Pulls keep working while the data is copied; pushes wait (refused) for that
    window, and the switches restart the registry. The state directory comes
    along (CA, keys, generated passwords), so a restore keeps certificates and
    users. Restore with `regdeploy restore --from DIR`, then `regdeploy up`.
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
def restore_command(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                    connect_timeout: float | None, accept_new_host_keys: bool, source: Path,
                    force: bool) -> None:  # fmt: skip
    """Put a backup's data and state back, then run `regdeploy up`.

    \b
    Refused before anything is written (exit 2): a directory that is no backup,
    a host the backup lacks, another registry's backup or a data dir that holds
    data (both unless --force). The state files the state directory lacks are
    copied (all of them with --force).
    """
    from regdeploy.materials.state import StateStore
    from regdeploy.ops.backup import check_restore, read_manifest, restore_host, restore_state
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.run import load_specs

    doc = read_manifest(source)
    inv, specs = load_specs(inventory, limit, connect_vars(connect_timeout, accept_new_host_keys))
    for name, _, spec in specs:
        check_restore(doc, source, name, spec, force)
    state_root = StateStore.beside(inv.base_dir).root
    state_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    copied = restore_state(source, state_root, force)

    def say(host: str, message: str) -> None:
        progress(f"[{host}] {message}")

    def one(s: tuple[str, Any, Any]) -> dict[str, Any]:
        return restore_host(doc, source, s[0], s[1], s[2], say)

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
