"""Ansible's YAML inventory format: ``all: {hosts:, vars:, children:}``; other top-level keys are groups.

Stricter than Ansible on one point: a group key other than hosts/vars/children is an error
(Ansible only warns and drops it, which hides typos such as ``host:``).
"""

from __future__ import annotations

from typing import Any

from regdeploy.errors import InventoryError
from regdeploy.inventory.hostrange import expand_host_pattern
from regdeploy.inventory.listing import EXPORT_HINT, is_listing, parse_listing
from regdeploy.inventory.raw import RawInventory, check_vars, kind_of

_SECTIONS = ("hosts", "vars", "children")


def parse_yaml_inventory(data: Any, display: str, raw: RawInventory) -> None:
    """Record the groups, hosts and inline vars of one parsed YAML inventory file."""
    if data is None:  # an empty file is an empty inventory
        return
    if not isinstance(data, dict):
        raise InventoryError(f"{display}: an inventory must be a mapping of groups, got {kind_of(data)}")
    if "plugin" in data:
        raise InventoryError(
            f"{display}: an inventory plugin configuration (plugin: {data['plugin']}): regdeploy runs no "
            f"inventory plugins; {EXPORT_HINT.replace('SOURCE', display)}"
        )
    if is_listing(data):
        parse_listing(data, display, raw)
        return
    for name, body in data.items():
        _parse_group(name, body, display, raw, ancestry=())


def _parse_group(name: Any, body: Any, display: str, raw: RawInventory, ancestry: tuple[int, ...]) -> str:
    if not isinstance(name, str):
        raise InventoryError(f"{display}: group name {name!r} must be a string")
    # YAML anchors can make a group contain itself; without this the walk would never end.
    if id(body) in ancestry:
        raise InventoryError(f"{display}: group {name!r} contains itself (YAML alias loop)")
    raw.group(name)
    if body is None:
        return name
    if not isinstance(body, dict):
        raise InventoryError(f"{display}: group {name!r} must be a mapping, got {kind_of(body)}")
    for key in body:
        if key not in _SECTIONS:
            raise InventoryError(
                f"{display}: group {name!r}: unknown key {key!r} (a group has hosts, vars and children)"
            )
    # Sections are handled in the order written, so hosts keep their file order.
    for key, value in body.items():
        section = _section(name, key, value, display)
        if key == "vars":
            raw.set_group_vars(name, check_vars(section, display, f"group {name!r}"), display)
        elif key == "hosts":
            for pattern, host_vars in section.items():
                _parse_host(name, pattern, host_vars, display, raw)
        else:
            for child_name, child_body in section.items():
                child = _parse_group(child_name, child_body, display, raw, (*ancestry, id(body)))
                raw.add_child(name, child)
    return name


def _section(group: str, key: str, value: Any, display: str) -> dict[Any, Any]:
    if value is None:
        return {}
    # Ansible accepts `hosts: web1` / `children: web` as a one-entry mapping.
    if isinstance(value, str) and key != "vars":
        return {value: None}
    if not isinstance(value, dict):
        raise InventoryError(f"{display}: group {group!r}: {key!r} must be a mapping, got {kind_of(value)}")
    return value


def _parse_host(group: str, pattern: Any, host_vars: Any, display: str, raw: RawInventory) -> None:
    if not isinstance(pattern, str):
        raise InventoryError(f"{display}: group {group!r}: host name {pattern!r} must be a string")
    values = check_vars(host_vars, display, f"host {pattern!r} in group {group!r}")
    try:
        names, port = expand_host_pattern(pattern)
    except ValueError as exc:
        raise InventoryError(f"{display}: group {group!r}: host {pattern!r}: {exc}") from None
    if port is not None:
        values = {"ansible_port": port, **values}
    for host in names:
        raw.add_host(group, host, values, display)
