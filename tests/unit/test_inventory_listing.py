"""Ansible's JSON listing (inventory scripts' output, `ansible-inventory --list --export`) read as an
inventory; scripts and plugin configurations refused with the way to export them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regdeploy.errors import InventoryError
from regdeploy.inventory import load_inventory


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_listing_groups_children_vars_and_hostvars(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path / "inventory.json", {
        "_meta": {"hostvars": {"a": {"ansible_host": "10.0.0.1", "registry": {"port": 5001}}}},
        "all": {"children": ["ungrouped", "registries"]},
        "registries": {"children": ["eu"], "vars": {"registry": {"image": "registry:2", "port": 5000}}},
        "eu": {"hosts": ["a", "b"], "vars": {"ansible_user": "deploy"}},
        "legacy": ["b"],  # the oldest script form: a group is its list of hosts
    }))  # fmt: skip
    assert list(inv.hosts) == ["a", "b"]
    assert inv.hosts["a"].vars == {"ansible_user": "deploy", "ansible_host": "10.0.0.1",
                                   "registry": {"image": "registry:2", "port": 5001}}  # fmt: skip
    assert set(inv.groups["registries"]) == {"a", "b"} and inv.groups["legacy"] == ("b",)
    assert inv.hosts["a"].origins["registry.port"] == str(tmp_path / "inventory.json")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"_meta": {}, "g": {"host": ["a"]}}, "group 'g': unknown key 'host' (hosts, vars and children)"),
        ({"_meta": {}, "g": "a"}, "group 'g' must be a mapping or a list, got string"),
        ({"_meta": {}, "g": {"hosts": "a"}}, "group 'g': 'hosts' must be a list of names"),
        ({"_meta": {"hostvars": []}}, "_meta.hostvars must be a mapping, got list"),
    ],
)
def test_bad_listing_names_the_problem(tmp_path: Path, data: object, message: str) -> None:
    path = write(tmp_path / "inventory.json", data)
    with pytest.raises(InventoryError) as exc:
        load_inventory(path)
    assert str(exc.value) == f"{path}: {message}"


def test_scripts_and_plugins_are_refused_with_the_export_recipe(tmp_path: Path) -> None:
    script = tmp_path / "ec2.py"
    script.write_text("#!/usr/bin/env python3\nprint('{}')\n")
    plugin = tmp_path / "aws_ec2.yml"
    plugin.write_text("plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n")
    for path, what in ((script, "an inventory script"), (plugin, "an inventory plugin configuration")):
        with pytest.raises(InventoryError) as exc:
            load_inventory(path)
        assert str(exc.value).startswith(f"{path}: {what}")
        assert str(exc.value).endswith(f"ansible-inventory -i {path} --list --export > inventory.json")
