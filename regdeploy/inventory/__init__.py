"""Ansible-style inventories: YAML/INI files or directories, group_vars/host_vars, --limit patterns.

Modules, one concern each: ``yamlio`` (reading files), ``yaml_loader`` / ``ini_loader`` (formats),
``hostrange`` (``web[01:03]``), ``sources`` (directories and format detection), ``raw`` (what
the files say), ``vars_files`` (group_vars/host_vars), ``merge`` (replace vs deep merge of
``registry``, origins), ``resolve`` (groups and precedence), ``patterns`` (``--limit``),
``model`` (the public dataclasses) and ``loader`` (entry points).
"""

from regdeploy.inventory.loader import builtin_inventory_path, load_inventory
from regdeploy.inventory.model import Inventory, InventoryHost

__all__ = ["Inventory", "InventoryHost", "builtin_inventory_path", "load_inventory"]
