"""Variable layering: Ansible precedence, group_vars/host_vars as files and directories, registry
deep merge vs replace of other variables, and the origins of every registry key."""

from __future__ import annotations

from pathlib import Path

import pytest

from regdeploy.errors import InventoryError
from regdeploy.inventory import load_inventory

DATA = Path(__file__).parent / "data" / "inventory"
LAYERED = DATA / "layered"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_precedence_matches_ansible():
    # Level k of the fixture sets v<k>..v6; each v<k> must show level k (checked with ansible-inventory).
    h1 = load_inventory(DATA / "precedence" / "hosts.yml").hosts["h1"].vars
    assert [h1[f"v{k}"] for k in range(1, 7)] == [
        "all-inline",
        "web-inline",
        "group_vars/all",  # beats inline vars of every group, as in Ansible
        "group_vars/web",
        "host-inline",
        "host_vars/h1",
    ]


def test_groups_ordered_by_depth_then_priority_then_name():
    h1 = load_inventory(DATA / "group_order" / "hosts.yml").hosts["h1"]
    assert h1.groups == ("all", "beta", "zeta", "alpha", "child")
    assert h1.vars["who"] == "child"  # deepest group wins
    assert h1.vars["low"] == "alpha"  # priority 5 beats the name order


def test_group_priority_is_not_a_variable():
    assert "ansible_group_priority" not in load_inventory(DATA / "group_order" / "hosts.yml").hosts["h1"].vars


def test_group_vars_files_follow_group_order(tmp_path):
    write(tmp_path / "hosts.yml", "all:\n  children:\n    b: {hosts: {h: }}\n    a: {hosts: {h: }}\n")
    write(tmp_path / "group_vars" / "a.yml", "x: a\n")
    write(tmp_path / "group_vars" / "b.yml", "x: b\n")
    assert load_inventory(tmp_path / "hosts.yml").hosts["h"].vars["x"] == "b"


def test_other_variables_are_replaced_whole():
    hosts = load_inventory(LAYERED).hosts
    assert hosts["web01"].vars["other"] == {"c": 3}
    assert hosts["web02"].vars["other"] == {"a": 10}


def test_registry_is_deep_merged_across_all_groups_and_host():
    assert load_inventory(LAYERED).hosts["web01"].vars["registry"] == {
        "name": "base",  # hosts file, all: vars
        "tls": {"mode": "ca", "sans": ["web.example.com"]},  # host_vars over group_vars/web over all
        "auth": {"users": [{"name": "alice"}], "realm": "web"},
        "port": 5000,  # group_vars/all.yml; group_vars/all.yaml is never read
        "image": "registry:3",
    }


def test_origins_name_the_winning_file_of_every_registry_key():
    origins = load_inventory(LAYERED).hosts["web01"].origins
    gv = LAYERED / "group_vars"
    assert origins == {
        "registry": str(LAYERED / "host_vars" / "web01.yml"),
        "registry.name": str(LAYERED / "10-hosts.yml"),
        "registry.tls": str(LAYERED / "host_vars" / "web01.yml"),
        "registry.tls.mode": str(LAYERED / "host_vars" / "web01.yml"),
        "registry.tls.sans": str(gv / "web" / "10-base.yml"),
        "registry.auth": str(gv / "web" / "sub" / "30-realm"),
        "registry.auth.users": str(LAYERED / "10-hosts.yml"),
        "registry.auth.realm": str(gv / "web" / "sub" / "30-realm"),
        "registry.port": str(gv / "all.yml"),
        "registry.image": str(gv / "web" / "20-image.yaml"),
    }


def test_host_vars_json_and_ini_host():
    web03 = load_inventory(LAYERED).hosts["web03"]
    assert web03.vars["registry"]["port"] == 5443
    assert web03.origins["registry.port"] == str(LAYERED / "host_vars" / "web03.json")
    assert web03.vars["ansible_port"] == 2222
    assert web03.vars["from_ini"] == 1


def test_empty_vars_file_and_group_without_registry_override():
    db01 = load_inventory(LAYERED).hosts["db01"]
    assert db01.vars["registry"]["tls"] == {"mode": "selfsigned", "sans": ["a.example.com"]}
    assert db01.origins["registry.tls.sans"] == str(LAYERED / "group_vars" / "all.yml")


def test_group_vars_directory_skips_hidden_backup_and_foreign_extensions():
    # README.md, .hidden.yml and 40-backup.yml~ in group_vars/web hold broken YAML: reading any would fail.
    assert load_inventory(LAYERED).hosts["web02"].vars["registry"]["image"] == "registry:3"


def test_file_without_extension_is_found_first(tmp_path):
    write(tmp_path / "hosts.yml", "all:\n  hosts: {h: }\n")
    write(tmp_path / "host_vars" / "h", "x: plain\n")
    write(tmp_path / "host_vars" / "h.yml", "x: yml\n")
    assert load_inventory(tmp_path / "hosts.yml").hosts["h"].vars["x"] == "plain"


def test_directory_wins_over_file(tmp_path):
    write(tmp_path / "hosts.yml", "all:\n  hosts: {h: }\n")
    write(tmp_path / "group_vars" / "all" / "a.yml", "x: dir\n")
    write(tmp_path / "group_vars" / "all.yml", "x: file\n")
    assert load_inventory(tmp_path / "hosts.yml").hosts["h"].vars["x"] == "dir"


def test_directory_files_merge_in_name_order(tmp_path):
    write(tmp_path / "hosts.yml", "all:\n  hosts: {h: }\n")
    write(tmp_path / "group_vars" / "all" / "b.yml", "x: b\nregistry: {port: 2}\n")
    write(tmp_path / "group_vars" / "all" / "a.yml", "x: a\ny: a\nregistry: {port: 1, name: r}\n")
    h = load_inventory(tmp_path / "hosts.yml").hosts["h"]
    assert (h.vars["x"], h.vars["y"]) == ("b", "a")
    assert h.vars["registry"] == {"port": 2, "name": "r"}
    assert h.origins["registry.name"].endswith("a.yml")
    assert h.origins["registry.port"].endswith("b.yml")


def test_ungrouped_group_vars_apply_to_ungrouped_hosts(tmp_path):
    write(tmp_path / "hosts.yml", "all:\n  hosts: {h: }\n")
    write(tmp_path / "group_vars" / "ungrouped.yml", "x: 1\n")
    assert load_inventory(tmp_path / "hosts.yml").hosts["h"].vars == {"x": 1}


def test_vars_of_groups_the_host_is_not_in_do_not_apply(tmp_path):
    write(tmp_path / "hosts.yml", "a: {hosts: {h: }}\nb: {hosts: {other: }}\n")
    write(tmp_path / "group_vars" / "b.yml", "x: 1\n")
    write(tmp_path / "host_vars" / "nobody.yml", "x: 2\n")
    assert load_inventory(tmp_path / "hosts.yml").hosts["h"].vars == {}


def test_host_name_cannot_reach_outside_host_vars(tmp_path):
    write(tmp_path / "inv" / "hosts.yml", "all:\n  hosts:\n    '../secret':\n")
    write(tmp_path / "inv" / "secret.yml", "x: leaked\n")
    assert load_inventory(tmp_path / "inv" / "hosts.yml").hosts["../secret"].vars == {}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("all.yml", "- a\n- b\n", "all.yml: variables must be a mapping, got list"),
        ("all.yml", "just text\n", "all.yml: variables must be a mapping, got string"),
        ("all.yml", "1: x\n", "all.yml: top level: variable name 1 must be a string"),
        ("all.yml", "a: 1\nb: c: d\n", "all.yml:2: mapping values are not allowed here"),
        ("all.json", '{"a": 1,\n}', "all.json:2: Expecting property name enclosed in double quotes"),
    ],
)
def test_bad_vars_file_is_an_error_naming_it(tmp_path, name, text, message):
    write(tmp_path / "hosts.yml", "all:\n  hosts: {h: }\n")
    write(tmp_path / "group_vars" / name, text)
    with pytest.raises(InventoryError) as exc:
        load_inventory(tmp_path / "hosts.yml")
    assert str(exc.value) == f"{tmp_path}/group_vars/{message}"
