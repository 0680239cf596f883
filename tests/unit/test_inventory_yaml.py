"""YAML inventories: structure, membership, inline vars, ranges and ports (data/inventory/yaml_basic)."""

from __future__ import annotations

from pathlib import Path

from regdeploy.inventory import Inventory, InventoryHost, load_inventory

DATA = Path(__file__).parent / "data" / "inventory"


def basic() -> Inventory:
    return load_inventory(DATA / "yaml_basic" / "hosts.yml")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_hosts_in_file_order_with_ranges_expanded():
    assert list(basic().hosts) == ["bastion", "web01", "web02", "web03", "db-a", "db-b", "stage1"]


def test_hosts_are_inventory_hosts_keyed_by_name():
    inv = basic()
    assert all(isinstance(h, InventoryHost) and h.name == name for name, h in inv.hosts.items())


def test_groups_are_transitive_and_in_host_order():
    groups = basic().groups
    assert groups["all"] == ("bastion", "web01", "web02", "web03", "db-a", "db-b", "stage1")
    assert groups["web"] == ("web01", "web02", "web03")  # includes the child group canary
    assert groups["canary"] == ("web01",)
    assert groups["db"] == ("web01", "db-a", "db-b")
    assert groups["staging"] == ("stage1",)  # a top-level key is a group under all
    assert groups["ungrouped"] == ("bastion",)


def test_host_groups_all_first_then_by_depth():
    hosts = basic().hosts
    assert hosts["web01"].groups == ("all", "db", "web", "canary")
    assert hosts["bastion"].groups == ("all", "ungrouped")
    assert hosts["stage1"].groups == ("all", "staging")


def test_inline_vars_are_typed_as_yaml_types_them():
    web01 = basic().hosts["web01"].vars
    assert web01["http_port"] == 80
    assert web01["tls"] is True
    assert web01["canary"] is True  # YAML 1.1: yes is a boolean
    assert web01["ntp"] == "pool.ntp.org"


def test_host_listed_twice_gets_vars_from_both_places():
    web01 = basic().hosts["web01"].vars
    assert web01["canary"] is True
    assert web01["role"] == "db-replica"


def test_port_in_host_key_sets_ansible_port():
    web03 = basic().hosts["web03"].vars
    assert web03["ansible_port"] == 2222
    assert web03["ansible_host"] == "192.0.2.13"


def test_null_host_has_only_group_vars():
    assert dict(basic().hosts["stage1"].vars) == {"ntp": "pool.ntp.org"}


def test_no_registry_means_no_origins():
    assert all(not h.origins for h in basic().hosts.values())


def test_source_and_base_dir_of_a_file():
    inv = basic()
    assert inv.source == str(DATA / "yaml_basic" / "hosts.yml")
    assert inv.base_dir == DATA / "yaml_basic"


def test_empty_file_is_an_empty_inventory(tmp_path):
    inv = load_inventory(write(tmp_path / "hosts.yml", "# nothing yet\n"))
    assert inv.hosts == {}
    assert set(inv.groups) == {"all", "ungrouped"}


def test_string_shorthand_for_hosts_and_children(tmp_path):
    inv = load_inventory(write(tmp_path / "hosts.yml", "web:\n  hosts: w1\nall:\n  children: web\n"))
    assert inv.groups["web"] == ("w1",)
    assert inv.hosts["w1"].groups == ("all", "web")


def test_group_declared_in_two_places_is_one_group(tmp_path):
    text = "all:\n  children:\n    web:\n      hosts: {w1: }\nweb:\n  hosts: {w2: }\n  vars: {x: 1}\n"
    inv = load_inventory(write(tmp_path / "hosts.yml", text))
    assert inv.groups["web"] == ("w1", "w2")
    assert inv.hosts["w1"].vars["x"] == 1


def test_sections_apply_in_written_order(tmp_path):
    text = "all:\n  children:\n    g:\n      hosts: {b: }\n  hosts:\n    a:\n"
    assert list(load_inventory(write(tmp_path / "hosts.yml", text)).hosts) == ["b", "a"]


def test_json_inventory(tmp_path):
    text = '{"all": {"children": {"web": {"hosts": {"w1": {"ansible_host": "192.0.2.5"}}}}}}'
    inv = load_inventory(write(tmp_path / "hosts.json", text))
    assert inv.hosts["w1"].vars == {"ansible_host": "192.0.2.5"}


def test_unsafe_tag_is_a_plain_value(tmp_path):
    text = "all:\n  hosts:\n    h:\n      motd: !unsafe '{{ not a template }}'\n      l: !unsafe [a]\n"
    inv = load_inventory(write(tmp_path / "hosts.yaml", text))
    assert inv.hosts["h"].vars == {"motd": "{{ not a template }}", "l": ["a"]}


def test_hosts_do_not_share_mutable_values(tmp_path):
    inv = load_inventory(write(tmp_path / "hosts.yml", "all:\n  vars: {l: [1]}\n  hosts: {a: , b: }\n"))
    inv.hosts["a"].vars["l"].append(2)
    assert inv.hosts["b"].vars["l"] == [1]
