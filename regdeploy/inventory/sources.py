"""Which files make up an inventory, and which parser reads each.

A directory is read like Ansible reads one: every file in it, sorted by name, recursing into
subdirectories, skipping hidden names, ``group_vars``/``host_vars``/``vars_plugins`` and
Ansible's ignored extensions. Unlike Ansible, a file there that is not an inventory is an error,
not a warning, so a broken file cannot silently drop hosts.
"""

from __future__ import annotations

import re
from pathlib import Path

from regdeploy.errors import InventoryError
from regdeploy.inventory.ini_loader import parse_ini_inventory
from regdeploy.inventory.listing import EXPORT_HINT
from regdeploy.inventory.raw import RawInventory
from regdeploy.inventory.yaml_loader import parse_yaml_inventory
from regdeploy.inventory.yamlio import is_vault_file, parse_json, parse_yaml, read_text

# Ansible's INVENTORY_IGNORE_EXTS default (REJECT_EXTS + .orig, .cfg, .retry).
IGNORED_SUFFIXES = (
    ".pyc",
    ".pyo",
    ".swp",
    ".bak",
    "~",
    ".rpm",
    ".md",
    ".txt",
    ".rst",
    ".orig",
    ".cfg",
    ".retry",
)
IGNORED_NAMES = ("group_vars", "host_vars", "vars_plugins")
YAML_SUFFIXES = (".yml", ".yaml")

# The first significant line of a YAML inventory is a mapping key ("all:"); an INI one never is.
_YAML_KEY_LINE = re.compile(r"^[\w.-]+:\s*(#.*)?$")


def directory_files(directory: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        name = entry.name
        if name.startswith(".") or name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES):
            continue
        if entry.is_dir():
            found.extend(directory_files(entry))
        elif entry.is_file():
            found.append(entry)
    return found


def parse_file(path: Path, display: str, raw: RawInventory) -> None:
    """Parse one inventory file into ``raw``: YAML for .yml/.yaml/.json, INI for .ini, else sniffed."""
    text = read_text(path, display)
    if is_vault_file(text):
        raise InventoryError(f"{display}: encrypted with ansible-vault: regdeploy does not decrypt Vault")
    if text.startswith("#!"):
        raise InventoryError(
            f"{display}: an inventory script: regdeploy runs no inventory scripts; "
            + EXPORT_HINT.replace("SOURCE", display)
        )
    suffix = path.suffix.lower()
    if suffix in YAML_SUFFIXES:
        parse_yaml_inventory(parse_yaml(text, display), display, raw)
    elif suffix == ".json":
        parse_yaml_inventory(parse_json(text, display), display, raw)
    elif suffix == ".ini":
        parse_ini_inventory(text, display, raw)
    else:
        _parse_sniffed(text, display, raw)


def _parse_sniffed(text: str, display: str, raw: RawInventory) -> None:
    try:
        data = parse_yaml(text, display)
    except InventoryError:
        if _looks_like_yaml(text):
            raise  # a YAML inventory with a syntax error: its YAML error is the useful one
        data = None
    if isinstance(data, dict):
        parse_yaml_inventory(data, display, raw)
    else:
        parse_ini_inventory(text, display, raw)


def _looks_like_yaml(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and stripped[0] not in "#;":
            return _YAML_KEY_LINE.match(stripped) is not None
    return False
