"""Ansible's INI inventory format.

``[group]`` host lines (``name[:port] key=value key2="quoted value"``), ``[group:vars]``
(``key = value``, the rest of the line is the value), ``[group:children]``, comments ``#``/``;``,
and host ranges. Lines before the first section are ungrouped hosts.

Values are typed exactly as Ansible does (``ast.literal_eval``, verified against ansible-core 2.19),
so the same file gives the same variables here and in ``ansible-inventory``: ``2222`` -> int,
``True`` -> bool, ``"[1, 2]"`` -> list, but ``true``, ``yes`` and ``0755`` stay strings. As in
Ansible, ``[g:vars]`` must name a group declared somewhere, and ``[g:children]`` must list
declared groups (in any order, in this file or an earlier one).
"""

from __future__ import annotations

import ast
import re
import shlex
from typing import Any

from regdeploy.errors import InventoryError
from regdeploy.inventory.hostrange import expand_host_pattern
from regdeploy.inventory.raw import UNGROUPED, RawInventory

_SECTION = re.compile(r"^\[(?P<name>[^:\]\s]+)(?::(?P<kind>\w+))?\]\s*(?:[#;].*)?$")
_GROUP_NAME = re.compile(r"^(?P<name>[^:\]\s]+)\s*(?:#.*)?$")
_PLAIN_TYPES = (str, int, float, bool, list, dict, type(None))


def parse_value(text: str) -> Any:
    """An INI value as Ansible types it; anything literal_eval cannot read stays the string."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if isinstance(value, tuple):
        return list(value)
    # Sets, bytes, complex numbers have no YAML/JSON equivalent; keep what the user wrote.
    return value if isinstance(value, _PLAIN_TYPES) else text


def parse_ini_inventory(text: str, display: str, raw: RawInventory) -> None:
    """Record the groups, hosts and inline vars of one INI inventory file."""
    _IniParser(display, raw).feed(text)


class _IniParser:
    def __init__(self, display: str, raw: RawInventory) -> None:
        self.display = display
        self.raw = raw
        self.declared = set(raw.groups)  # groups declared by earlier files count, as in Ansible
        self.pending: dict[str, str] = {}  # undeclared group -> the error to raise if it stays so
        self.group = UNGROUPED
        self.kind = "hosts"

    def error(self, lineno: int, message: str) -> InventoryError:
        return InventoryError(f"{self.display}:{lineno}: {message}")

    def feed(self, text: str) -> None:
        for lineno, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                self.section(lineno, line)
            elif self.kind == "hosts":
                self.host_line(lineno, line)
            elif self.kind == "vars":
                self.vars_line(lineno, line)
            else:
                self.children_line(lineno, line)
        if self.pending:
            raise InventoryError(next(iter(self.pending.values())))

    def section(self, lineno: int, line: str) -> None:
        match = _SECTION.match(line)
        if match is None:
            raise self.error(lineno, f"invalid section header {line!r} (no spaces allowed in [group:kind])")
        name, kind = match.group("name"), match.group("kind") or "hosts"
        if kind not in ("hosts", "vars", "children"):
            raise self.error(lineno, f"section [{name}:{kind}] has unknown type {kind!r}")
        self.group, self.kind = name, kind
        self.raw.group(name)
        if kind == "vars":
            if name not in self.declared:
                self.pending.setdefault(
                    name, f"{self.display}:{lineno}: section [{name}:vars] is for undefined group {name!r}"
                )
        else:
            self.declared.add(name)
            self.pending.pop(name, None)

    def host_line(self, lineno: int, line: str) -> None:
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise self.error(lineno, f"cannot parse host line: {exc}") from None
        if not tokens:
            return
        values: dict[str, Any] = {}
        for token in tokens[1:]:
            key, sep, value = token.partition("=")
            if not sep or not key:
                raise self.error(lineno, f"expected key=value host variable, got {token!r}")
            values[key] = parse_value(value)
        try:
            names, port = expand_host_pattern(tokens[0])
        except ValueError as exc:
            raise self.error(lineno, f"host {tokens[0]!r}: {exc}") from None
        if port is not None:
            values = {"ansible_port": port, **values}
        for host in names:
            self.raw.add_host(self.group, host, values, self.display)

    def vars_line(self, lineno: int, line: str) -> None:
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise self.error(lineno, f"expected key=value in [{self.group}:vars], got {line!r}")
        self.raw.set_group_vars(self.group, {key.strip(): parse_value(value.strip())}, self.display)

    def children_line(self, lineno: int, line: str) -> None:
        match = _GROUP_NAME.match(line)
        if match is None:
            raise self.error(lineno, f"expected a group name in [{self.group}:children], got {line!r}")
        child = match.group("name")
        if child not in self.declared:
            self.pending.setdefault(
                child,
                f"{self.display}:{lineno}: section [{self.group}:children] "
                f"includes undefined group {child!r}",
            )
        self.raw.add_child(self.group, child)
