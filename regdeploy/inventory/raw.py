"""The inventory as parsed, before variables are layered: groups, hosts, and inline vars per file.

Parsers (YAML, INI) only record what each file says; ``resolve`` turns that into the final
per-host view. Inline vars are kept as one chunk per statement, with the file that wrote it,
so the registry deep merge can say which file won each key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from regdeploy.errors import InventoryError

ALL = "all"
UNGROUPED = "ungrouped"
PRIORITY_VAR = "ansible_group_priority"

_KINDS: dict[type, str] = {
    dict: "mapping",
    list: "list",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def kind_of(value: Any) -> str:
    """The YAML word for a value's type, as users wrote it (``mapping``, not ``dict``)."""
    return _KINDS.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class VarsChunk:
    """Variables set by one statement of one file."""

    origin: str  # display path of the file
    values: Mapping[str, Any]


@dataclass
class RawGroup:
    name: str
    vars: list[VarsChunk] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)  # direct members only
    children: list[str] = field(default_factory=list)
    priority: int = 1  # ansible_group_priority: orders groups of the same depth


@dataclass
class RawHost:
    name: str
    vars: list[VarsChunk] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # direct groups only


class RawInventory:
    """Accumulates what one or more inventory files declare; insertion order is file order."""

    def __init__(self) -> None:
        self.groups: dict[str, RawGroup] = {ALL: RawGroup(ALL), UNGROUPED: RawGroup(UNGROUPED)}
        self.hosts: dict[str, RawHost] = {}

    def group(self, name: str) -> RawGroup:
        found = self.groups.get(name)
        if found is None:
            found = self.groups[name] = RawGroup(name)
        return found

    def add_host(self, group: str, host: str, values: Mapping[str, Any], origin: str) -> None:
        raw_group = self.group(group)
        raw_host = self.hosts.get(host)
        if raw_host is None:
            raw_host = self.hosts[host] = RawHost(host)
        if group not in raw_host.groups:
            raw_host.groups.append(group)
            raw_group.hosts.append(host)
        if values:
            raw_host.vars.append(VarsChunk(origin, dict(values)))

    def set_group_vars(self, group: str, values: Mapping[str, Any], origin: str) -> None:
        raw_group = self.group(group)
        values = dict(values)
        # Like Ansible, the priority is a property of the group set from the inventory file, not a
        # variable (so group_vars/ cannot change it and hosts do not see it).
        if PRIORITY_VAR in values:
            raw_group.priority = _priority(values.pop(PRIORITY_VAR), origin, group)
        if values:
            raw_group.vars.append(VarsChunk(origin, values))

    def add_child(self, parent: str, child: str) -> None:
        self.group(child)
        children = self.group(parent).children
        if child not in children:
            children.append(child)


def _priority(value: Any, origin: str, group: str) -> int:
    if not isinstance(value, bool):
        try:
            return int(value)
        except (TypeError, ValueError):
            pass
    raise InventoryError(f"{origin}: group {group!r}: {PRIORITY_VAR} must be an integer, got {value!r}")


def check_vars(values: Any, display: str, where: str) -> dict[str, Any]:
    """``values`` as a vars mapping (null is empty), or an error naming the file and the place."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InventoryError(f"{display}: {where}: variables must be a mapping, got {kind_of(values)}")
    for key in values:
        if not isinstance(key, str):
            raise InventoryError(f"{display}: {where}: variable name {key!r} must be a string")
    return values
