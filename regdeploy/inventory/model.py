"""What the rest of regdeploy sees of an inventory: hosts with their merged variables, and groups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regdeploy.inventory.patterns import select_names


@dataclass(frozen=True)
class InventoryHost:
    name: str
    # Merged variables, Ansible precedence; ``registry`` deep-merged (see regdeploy.inventory.resolve).
    vars: Mapping[str, Any]
    # Every group the host is in, transitively: "all" first, then Ansible's precedence order
    # (depth, ansible_group_priority, name); "ungrouped" when it has no other group.
    groups: tuple[str, ...]
    # Dotted path under ``registry`` ("registry.tls.mode") -> display path of the file that set it.
    origins: Mapping[str, str]


@dataclass(frozen=True)
class Inventory:
    source: str  # display path, or "<built-in local inventory>"
    base_dir: Path  # where local state goes (for a user inventory: its directory)
    hosts: Mapping[str, InventoryHost]  # file order
    groups: Mapping[str, tuple[str, ...]]  # group -> host names (transitive), file order
    warnings: tuple[str, ...] = ()  # what was not read, for the commands to print

    def select(self, pattern: str | None) -> list[InventoryHost]:
        """Hosts matching an Ansible ``--limit`` pattern (None: all), in inventory order.

        Raises InventoryError when the result is empty or a part of the pattern names nothing.
        """
        names = select_names(pattern, list(self.hosts), self.groups, self.source)
        return [self.hosts[name] for name in names]
