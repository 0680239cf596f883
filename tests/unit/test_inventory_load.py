"""load_inventory: format detection, directories, source/base_dir, the built-in and example inventories."""

from __future__ import annotations

from pathlib import Path

import pytest

import regdeploy
from regdeploy.errors import InventoryError
from regdeploy.inventory import builtin_inventory_path, load_inventory
from regdeploy.inventory.loader import BUILTIN_SOURCE, load_builtin, local_state_dir

DATA = Path(__file__).parent / "data" / "inventory"
REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_file_without_extension_holding_yaml(tmp_path):
    inv = load_inventory(write(tmp_path / "hosts", "web:\n  hosts:\n    w1:\n"))
    assert inv.groups["web"] == ("w1",)


def test_file_without_extension_holding_ini(tmp_path):
    inv = load_inventory(write(tmp_path / "hosts", "[web]\nw1 ansible_port=22\nw2\n"))
    assert inv.groups["web"] == ("w1", "w2")
    assert inv.hosts["w1"].vars == {"ansible_port": 22}


def test_single_host_line_without_extension_is_ini(tmp_path):
    inv = load_inventory(write(tmp_path / "inventory", "localhost ansible_connection=local\n"))
    assert inv.hosts["localhost"].vars == {"ansible_connection": "local"}


def test_broken_yaml_without_extension_reports_the_yaml_error(tmp_path):
    path = write(tmp_path / "hosts", "all:\n  hosts:\n    a: b: c\n")
    with pytest.raises(InventoryError, match=r"hosts:3: mapping values are not allowed here$"):
        load_inventory(path)


def test_ini_extension_is_always_ini(tmp_path):
    inv = load_inventory(write(tmp_path / "hosts.ini", "web:\n"))
    assert list(inv.hosts) == ["web:"]  # odd, but what Ansible's INI parser makes of it too


def test_directory_loads_every_inventory_file_in_name_order():
    inv = load_inventory(DATA / "layered")
    assert list(inv.hosts) == ["web01", "web02", "db01", "web03"]
    assert inv.groups["web"] == ("web01", "web02", "web03")  # 10-hosts.yml and 20-extra.ini merged
    assert inv.source == str(DATA / "layered")
    assert inv.base_dir == DATA / "layered"


def test_directory_recurses_and_skips_what_ansible_skips(tmp_path):
    write(tmp_path / "a.yml", "all:\n  hosts: {a: }\n")
    write(tmp_path / "more" / "b.ini", "b\n")
    for junk in ("README.md", "notes.txt", "x.retry", "x.cfg", "x.orig", "x.bak", "x~", ".hidden", "x.rst"):
        write(tmp_path / junk, "not: [an inventory\n")
    write(tmp_path / "group_vars" / "all.yml", "x: 1\n")
    write(tmp_path / "host_vars" / "a.yml", "y: 2\n")
    inv = load_inventory(tmp_path)
    assert list(inv.hosts) == ["a", "b"]
    assert inv.hosts["a"].vars == {"x": 1, "y": 2}


def test_path_as_string_and_home_expansion(tmp_path, monkeypatch):
    write(tmp_path / "inv.yml", "all:\n  hosts: {a: }\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    inv = load_inventory(Path("~/inv.yml"))
    assert inv.base_dir == tmp_path


def test_relative_path_is_displayed_as_given(tmp_path, monkeypatch):
    write(tmp_path / "inv" / "hosts.yml", "all:\n  hosts: {a: }\n")
    write(tmp_path / "inv" / "group_vars" / "all.yml", "registry: {port: 1}\n")
    monkeypatch.chdir(tmp_path)
    inv = load_inventory(Path("inv/hosts.yml"))
    assert inv.source == "inv/hosts.yml"
    assert inv.hosts["a"].origins == {
        "registry": "inv/group_vars/all.yml",
        "registry.port": "inv/group_vars/all.yml",
    }


def test_missing_inventory(tmp_path):
    with pytest.raises(InventoryError, match=rf"^no such inventory: {tmp_path}/nope.yml$"):
        load_inventory(tmp_path / "nope.yml")


def test_directory_without_inventory_files(tmp_path):
    write(tmp_path / "group_vars" / "all.yml", "x: 1\n")
    with pytest.raises(InventoryError, match=rf"^{tmp_path}: no inventory files in this directory$"):
        load_inventory(tmp_path)


def test_builtin_inventory_path_is_the_source_tree_one_in_a_checkout():
    path = builtin_inventory_path()
    wheel = Path(regdeploy.__file__).resolve().parent / "_inventories" / "local" / "hosts.yml"
    assert path == (wheel if wheel.exists() else REPO / "inventories" / "local" / "hosts.yml")


def test_builtin_inventory_keeps_state_out_of_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    builtin = write(
        tmp_path / "pkg" / "hosts.yml", "all:\n  hosts: {localhost: {ansible_connection: local}}\n"
    )
    write(tmp_path / "pkg" / "group_vars" / "all.yml", "registry: {port: 5000}\n")
    inv = load_builtin(builtin)
    assert inv.source == BUILTIN_SOURCE
    assert inv.base_dir == tmp_path / "state" / "regdeploy" / "local"
    assert not inv.base_dir.exists()
    assert inv.hosts["localhost"].vars["registry"] == {"port": 5000}


def test_builtin_yaml_errors_name_the_builtin(tmp_path):
    builtin = write(tmp_path / "hosts.yml", "all:\n  hosts: [a]\n")
    with pytest.raises(InventoryError, match=r"^<built-in local inventory>: group 'all': 'hosts' must be"):
        load_builtin(builtin)


def test_missing_builtin_says_so(tmp_path):
    with pytest.raises(InventoryError, match=r"^<built-in local inventory> is missing: "):
        load_builtin(tmp_path / "hosts.yml")


@pytest.mark.parametrize("value", ["", None])
def test_state_dir_defaults_to_local_state(monkeypatch, tmp_path, value):
    monkeypatch.setenv("HOME", str(tmp_path))
    if value is None:
        monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_STATE_HOME", value)
    assert local_state_dir() == tmp_path / ".local" / "state" / "regdeploy" / "local"


@pytest.mark.skipif(
    not builtin_inventory_path().exists(), reason="inventories/local/hosts.yml not written yet"
)
def test_builtin_inventory_loads():
    inv = load_inventory(None)
    assert inv.source == BUILTIN_SOURCE
    assert inv.select(None)


def test_example_inventory():
    example = REPO / "inventories" / "example"
    inv = load_inventory(example)
    assert list(inv.hosts) == ["reg-eu", "reg-us", "ci-runner"]
    assert inv.groups["registries"] == ("reg-eu", "reg-us")
    assert inv.groups["clients"] == ("ci-runner",)
    eu, us = inv.hosts["reg-eu"], inv.hosts["reg-us"]
    assert (eu.vars["ansible_host"], eu.vars["ansible_user"]) == ("10.0.0.11", "deploy")
    assert (us.vars["ansible_host"], us.vars["ansible_user"]) == ("10.0.0.12", "deploy")
    assert eu.vars["registry"]["port"] == 5000
    assert eu.vars["registry"]["image"] == "registry:2"
    assert us.vars["registry"]["port"] == 5443
    assert us.vars["registry"]["tls"] == {"mode": "selfsigned", "sans": ["registry.us.example.com"]}
    assert us.vars["registry"]["auth"] == eu.vars["registry"]["auth"]
    users = us.vars["registry"]["auth"]["users"]
    assert users == [{"name": "alice", "password": {"env": "ALICE_PASSWORD"}}, {"name": "ci"}]
    endpoint = us.vars["registry"]["notifications"]["endpoints"][0]
    assert endpoint["headers"] == {"Authorization": {"env": "CI_TOKEN"}}
    assert us.origins["registry.tls.sans"] == str(example / "host_vars" / "reg-us.yml")
    assert us.origins["registry.tls.mode"] == str(example / "group_vars" / "registries.yml")
    assert "registry" not in inv.hosts["ci-runner"].vars
    assert [h.name for h in inv.select("registries:!reg-eu")] == ["reg-us"]
