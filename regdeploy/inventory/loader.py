"""Entry points: load an inventory file or directory, or the built-in local inventory.

Variables files (``group_vars/``, ``host_vars/``) are read from the inventory's own directory
(for a directory inventory, the directory itself). For the built-in inventory that is the
directory it ships in, while ``base_dir`` (where local state goes) is the user's state home, so
nothing is written into site-packages.
"""

from __future__ import annotations

import os
from pathlib import Path

import regdeploy
from regdeploy.errors import InventoryError
from regdeploy.inventory.model import Inventory
from regdeploy.inventory.raw import RawInventory
from regdeploy.inventory.resolve import resolve
from regdeploy.inventory.sources import directory_files, parse_file

BUILTIN_SOURCE = "<built-in local inventory>"


def builtin_inventory_path() -> Path:
    """The built-in local inventory: inside the wheel, else in the source tree (editable install)."""
    package_dir = Path(regdeploy.__file__).resolve().parent
    wheel = package_dir / "_inventories" / "local" / "hosts.yml"
    if wheel.exists():
        return wheel
    return package_dir.parent / "inventories" / "local" / "hosts.yml"


def local_state_dir() -> Path:
    """Where the built-in inventory keeps local state (not created here)."""
    # XDG: an empty XDG_STATE_HOME means the default, like an unset one.
    state_home = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return Path(state_home).expanduser() / "regdeploy" / "local"


def load_inventory(path: Path | None) -> Inventory:
    """Load an inventory file or directory (YAML or INI); None loads the built-in local inventory."""
    if path is None:
        return load_builtin(builtin_inventory_path())
    path = Path(path).expanduser()
    if path.is_dir():
        files = directory_files(path)
        if not files:
            raise InventoryError(f"{path}: no inventory files in this directory")
        raw = RawInventory()
        for file in files:
            parse_file(file, str(file), raw)
        return resolve(raw, source=str(path), base_dir=path, vars_dir=path)
    if not path.exists():
        raise InventoryError(f"no such inventory: {path}")
    raw = RawInventory()
    parse_file(path, str(path), raw)
    return resolve(raw, source=str(path), base_dir=path.parent, vars_dir=path.parent)


def load_builtin(path: Path) -> Inventory:
    """The built-in inventory read from ``path``; split out so tests can point it at a fixture."""
    if not path.is_file():
        raise InventoryError(f"{BUILTIN_SOURCE} is missing: {path} (a broken install?)")
    raw = RawInventory()
    parse_file(path, BUILTIN_SOURCE, raw)
    return resolve(raw, source=BUILTIN_SOURCE, base_dir=local_state_dir(), vars_dir=path.parent)
