"""Ansible's JSON inventory listing -- what inventory scripts print and ``ansible-inventory --list``
writes: ``{"_meta": {"hostvars": {...}}, GROUP: {"hosts": [...], "vars": {...}, "children": [...]}}``.

regdeploy runs no inventory scripts or plugins (cloud inventories, ``plugin: aws_ec2``), but reads
their result exported once: ``ansible-inventory -i SOURCE --list --export > inventory.json``.
``--export`` keeps group variables on their groups, so `registry:` is still merged layer by layer;
without it every host's variables arrive already flattened by Ansible, which replaces `registry:`
whole instead of merging it.
"""

from __future__ import annotations

from typing import Any

from regdeploy.errors import InventoryError
from regdeploy.inventory.raw import UNGROUPED, RawInventory, check_vars, kind_of
from regdeploy.inventory.unevaluated import Unsafe, Vaulted

EXPORT_HINT = "export its hosts with: ansible-inventory -i SOURCE --list --export > inventory.json"


def is_listing(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("_meta"), dict)


def parse_listing(data: dict[str, Any], display: str, raw: RawInventory) -> None:
    data = _tagged(data, display)
    for name, body in data.items():
        if name == "_meta":
            continue
        if isinstance(body, list):  # the oldest script form: a group is its list of hosts
            body = {"hosts": body}
        if not isinstance(body, dict):
            raise InventoryError(
                f"{display}: group {name!r} must be a mapping or a list, got {kind_of(body)}"
            )
        unknown = sorted(set(body) - {"hosts", "vars", "children"})
        if unknown:
            raise InventoryError(
                f"{display}: group {name!r}: unknown key {unknown[0]!r} (hosts, vars and children)"
            )
        raw.group(name)
        for host in _names(body.get("hosts"), display, name, "hosts"):
            raw.add_host(name, host, {}, display)
        raw.set_group_vars(name, check_vars(body.get("vars"), display, f"group {name!r}"), display)
        for child in _names(body.get("children"), display, name, "children"):
            raw.add_child(name, child)
    hostvars = data["_meta"].get("hostvars")
    hostvars = {} if hostvars is None else hostvars
    if not isinstance(hostvars, dict):
        raise InventoryError(f"{display}: _meta.hostvars must be a mapping, got {kind_of(hostvars)}")
    for host, values in hostvars.items():
        group = UNGROUPED if host not in raw.hosts else raw.hosts[host].groups[0]
        raw.add_host(group, str(host), check_vars(values, display, f"host {host!r}"), display)


def _tagged(value: Any, display: str) -> Any:
    """The listing's JSON for YAML tags back as regdeploy's own values: ``{"__ansible_vault": …}``
    (ciphertext) becomes a :class:`Vaulted` placeholder, ``{"__ansible_unsafe": …}`` the plain value."""
    if isinstance(value, dict):
        if len(value) == 1 and "__ansible_vault" in value:
            return Vaulted(display, None)
        if len(value) == 1 and "__ansible_unsafe" in value:
            inner = value["__ansible_unsafe"]
            return Unsafe(inner) if isinstance(inner, str) else _tagged(inner, display)
        return {k: _tagged(v, display) for k, v in value.items()}
    if isinstance(value, list):
        return [_tagged(v, display) for v in value]
    return value


def _names(value: Any, display: str, group: str, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InventoryError(f"{display}: group {group!r}: {key!r} must be a list of names")
    return value
