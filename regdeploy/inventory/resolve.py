"""From the parsed inventory to the per-host view: group tree, memberships, layered variables.

Precedence, lowest first, exactly as Ansible's default ``VARIABLE_PRECEDENCE`` (checked against
ansible-core 2.19 with ``ansible-inventory --host``):

1. inline vars of group ``all`` (``all: {vars:}``, ``[all:vars]``)
2. inline vars of the host's other groups, in group order
3. ``group_vars/all``
4. ``group_vars/<group>`` for the host's other groups, in group order
5. inline host vars (every place the host is listed, in file order)
6. ``host_vars/<host>``

Note that ``group_vars/all`` beats inline vars of any group. Group order is Ansible's: by depth
(parents before children), then ``ansible_group_priority`` (set in the inventory file only,
default 1), then name. Within one level, later files and statements win.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from regdeploy.errors import InventoryError
from regdeploy.inventory.merge import layer_vars
from regdeploy.inventory.model import Inventory, InventoryHost
from regdeploy.inventory.raw import ALL, UNGROUPED, RawInventory, VarsChunk
from regdeploy.inventory.vars_files import VarsDirs


def resolve(raw: RawInventory, source: str, base_dir: Path, vars_dir: Path) -> Inventory:
    parents = _parents(raw, source)
    depth = _depths(parents)

    def order(name: str) -> tuple[int, int, str]:
        return depth[name], raw.groups[name].priority, name

    vars_dirs = VarsDirs(vars_dir)
    hosts: dict[str, InventoryHost] = {}
    for name, raw_host in raw.hosts.items():
        direct = [g for g in raw_host.groups if g not in (ALL, UNGROUPED)] or [UNGROUPED]
        groups = sorted(_ancestors(direct, parents) | {ALL}, key=order)
        values, origins = layer_vars(_layers(raw, vars_dirs, name, groups))
        hosts[name] = InventoryHost(name=name, vars=values, groups=tuple(groups), origins=origins)

    members: dict[str, tuple[str, ...]] = {
        group: tuple(h for h in hosts if group in hosts[h].groups) for group in raw.groups
    }
    notes = tuple(
        f"{path}: encrypted with ansible-vault, not read (regdeploy does not decrypt Vault)"
        for path in vars_dirs.skipped
    )
    return Inventory(source=source, base_dir=base_dir, hosts=hosts, groups=members, warnings=notes)


def _layers(raw: RawInventory, vars_dirs: VarsDirs, host: str, groups: list[str]) -> Iterator[VarsChunk]:
    others = [g for g in groups if g != ALL]
    yield from raw.groups[ALL].vars
    for group in others:
        yield from raw.groups[group].vars
    yield from vars_dirs.group(ALL)
    for group in others:
        yield from vars_dirs.group(group)
    yield from raw.hosts[host].vars
    yield from vars_dirs.host(host)


def _parents(raw: RawInventory, source: str) -> dict[str, set[str]]:
    parents: dict[str, set[str]] = {name: set() for name in raw.groups}
    for group in raw.groups.values():
        for child in group.children:
            if child == ALL:
                raise InventoryError(f"{source}: group 'all' cannot be a child of group {group.name!r}")
            parents[child].add(group.name)
    _check_cycles(raw, source)
    # Like Ansible, every group without a parent hangs under "all".
    for name, found in parents.items():
        if name != ALL and not found:
            found.add(ALL)
    return parents


def _check_cycles(raw: RawInventory, source: str) -> None:
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            loop = " -> ".join([*path[path.index(name) :], name])
            raise InventoryError(f"{source}: group {name!r} is its own ancestor ({loop})")
        if name in done:
            return
        for child in raw.groups[name].children:
            visit(child, [*path, name])
        done.add(name)

    for name in raw.groups:
        visit(name, [])


def _depths(parents: dict[str, set[str]]) -> dict[str, int]:
    depth: dict[str, int] = {ALL: 0}

    def of(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max(of(p) for p in parents[name])
        return depth[name]

    for name in parents:
        of(name)
    return depth


def _ancestors(groups: list[str], parents: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(groups)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(parents[name])
    return seen
