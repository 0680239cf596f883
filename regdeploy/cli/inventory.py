"""``inventory``: regdeploy's view of an inventory, each `registry:` value with the file that set it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from regdeploy.cli.common import emit_json


def register(cli: click.Group) -> None:
    cli.add_command(inventory_command)


@click.command("inventory", short_help="Each host's merged `registry:` values and the file that set each.")
@click.option("--inventory", "-i", "inventory", type=click.Path(path_type=Path),
              envvar="REGDEPLOY_INVENTORY", metavar="PATH",
              help="Inventory file or directory (YAML or INI). Default: $REGDEPLOY_INVENTORY, "
              "else the built-in local inventory.")  # fmt: skip
@click.option("--limit", "-l", metavar="PATTERN", help="Ansible host pattern (as for every command).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def inventory_command(inventory: Path | None, limit: str | None, as_json: bool) -> None:
    """Show what regdeploy reads from the inventory: for each registry host, every `registry:`
    value after the deep merge, and the file that set it. Contacts no host.

    \b
    The question it answers: "which of my group_vars/host_vars files gave this
    host port 5443?" -- regdeploy merges `registry:` key by key across all ->
    groups -> host, where plain Ansible replaces the whole variable. Secret
    references are shown as written ({env: NAME}), never resolved.

    \b
    Examples:
      regdeploy inventory -i inventories/example
      regdeploy inventory -i inventories/example --limit reg-us
      regdeploy inventory --json | jq '.hosts["reg-us"].origins'
    """
    from regdeploy.ops.inventory import listing

    payload = listing(inventory, limit)
    if as_json:
        emit_json(payload)
        return
    _print(payload)


_WIDE = 56  # values longer than this are not padded to the origin column


def _print(payload: dict[str, Any]) -> None:
    from regdeploy.ops.inventory import leaves

    source = payload["source"]
    builtin = source.startswith("<")
    base = source if Path(source).is_dir() else str(Path(source).parent)
    click.echo(f"inventory: {source}" + ("" if builtin else f"   (files below are relative to {base}/)"))
    for name, host in payload["hosts"].items():
        conn = " ".join(f"{k.removeprefix('ansible_')}={v}" for k, v in host["connection"].items())
        click.secho(f"\n{name}", bold=True, nl=False)
        click.echo(f"  groups: {', '.join(host['groups']) or '-'}" + (f"  {conn}" if conn else ""))
        rows = [(f"{path.removeprefix('registry.')}: {json.dumps(value)}", host["origins"][path])
                for path, value in leaves(host["registry"])]  # fmt: skip
        width = max((len(text) for text, _ in rows if len(text) <= _WIDE), default=0)
        for text, origin in rows:
            short = origin.removeprefix(base.rstrip("/") + "/")
            click.echo(f"  {text.ljust(width)}  # {short}")
    if payload["other_hosts"]:
        click.echo(f"\nno `registry:` (not deployed to): {', '.join(payload['other_hosts'])}")
    for warning in payload["warnings"]:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
