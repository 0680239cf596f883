"""``inventory``: regdeploy's view of an inventory, each `registry:` value with the file that set it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click

from regdeploy.cli.common import emit_json

_CONNECTION = ("ansible_connection", "ansible_user", "ansible_host", "ansible_port")


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
    from regdeploy.inventory import load_inventory

    inv = load_inventory(inventory)
    selected = inv.select(limit)
    registries = [h for h in selected if "registry" in h.vars]
    payload: dict[str, Any] = {
        "source": inv.source,
        "hosts": {
            h.name: {
                "groups": [g for g in h.groups if g != "all"],
                "connection": {k: _plain(h.vars[k]) for k in _CONNECTION if k in h.vars},
                "registry": _plain(_masked(copy.deepcopy(h.vars["registry"]))),
                "origins": {p: _origin(p, h.origins, inv.source) for p, _ in _leaves(h.vars["registry"])},
            }
            for h in registries
        },
        "other_hosts": [h.name for h in selected if "registry" not in h.vars],
        "warnings": list(inv.warnings),
    }
    if as_json:
        emit_json(payload)
        return
    _print(payload)


def _leaves(value: Any, path: str = "registry") -> Iterator[tuple[str, Any]]:
    """Each mapping key down to a value that is not a mapping (lists are values, as merging treats
    them); a secret reference ({env: ...}) is one value."""
    if isinstance(value, Mapping) and value and not _is_reference(value):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    else:
        yield path, value


def _is_reference(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)) in ("env", "file")


def _origin(path: str, origins: Mapping[str, str], fallback: str) -> str:
    # The nearest recorded ancestor (a whole mapping set in one file records only its top), found
    # as error messages find it.
    from regdeploy.spec.validate import Where

    return Where("", path, origins, fallback).source()


def _masked(registry: Any) -> Any:
    """Literal secrets an inventory may hold, masked as in plans: http_secret, inline passwords,
    webhook header values and URL query values (tokens). References ({env: ...}) and vaulted
    placeholders stay as they are. Changes *registry* in place."""
    from regdeploy.deploy.diffs import mask_url_query
    from regdeploy.materials.secrets import MASK

    if not isinstance(registry, dict):
        return registry
    if isinstance(registry.get("http_secret"), str):
        registry["http_secret"] = MASK
    auth = registry.get("auth")
    for user in auth.get("users") or [] if isinstance(auth, dict) else []:
        if isinstance(user, dict) and isinstance(user.get("password"), str):
            user["password"] = MASK
    notifications = registry.get("notifications")
    for endpoint in notifications.get("endpoints") or [] if isinstance(notifications, dict) else []:
        if not isinstance(endpoint, dict):
            continue
        if isinstance(endpoint.get("url"), str):
            endpoint["url"] = mask_url_query(endpoint["url"])
        headers = endpoint.get("headers")
        if isinstance(headers, dict):
            for name, value in headers.items():
                if isinstance(value, str):
                    headers[name] = MASK
    return registry


def _plain(value: Any) -> Any:
    """JSON-ready: vaulted values as their placeholder text, nothing else changed."""
    return json.loads(json.dumps(value, default=str))


_WIDE = 56  # values longer than this are not padded to the origin column


def _print(payload: dict[str, Any]) -> None:
    source = payload["source"]
    builtin = source.startswith("<")
    base = source if Path(source).is_dir() else str(Path(source).parent)
    click.echo(f"inventory: {source}" + ("" if builtin else f"   (files below are relative to {base}/)"))
    for name, host in payload["hosts"].items():
        conn = " ".join(f"{k.removeprefix('ansible_')}={v}" for k, v in host["connection"].items())
        click.secho(f"\n{name}", bold=True, nl=False)
        click.echo(f"  groups: {', '.join(host['groups']) or '-'}" + (f"  {conn}" if conn else ""))
        rows = [(f"{path.removeprefix('registry.')}: {json.dumps(value)}", host["origins"][path])
                for path, value in _leaves(host["registry"])]  # fmt: skip
        width = max((len(text) for text, _ in rows if len(text) <= _WIDE), default=0)
        for text, origin in rows:
            short = origin.removeprefix(base.rstrip("/") + "/")
            click.echo(f"  {text.ljust(width)}  # {short}")
    if payload["other_hosts"]:
        click.echo(f"\nno `registry:` (not deployed to): {', '.join(payload['other_hosts'])}")
    for warning in payload["warnings"]:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
