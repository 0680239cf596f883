"""INI inventories: the same shape as the YAML fixture, Ansible's value typing, INI-specific rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from regdeploy.errors import InventoryError
from regdeploy.inventory import load_inventory
from regdeploy.inventory.ini_loader import parse_value

DATA = Path(__file__).parent / "data" / "inventory"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_same_hosts_and_groups_as_the_yaml_version():
    ini = load_inventory(DATA / "ini_basic" / "hosts.ini")
    yml = load_inventory(DATA / "yaml_basic" / "hosts.yml")
    assert list(ini.hosts) == list(yml.hosts)
    assert {g: set(h) for g, h in ini.groups.items()} == {g: set(h) for g, h in yml.groups.items()}
    assert {n: h.groups for n, h in ini.hosts.items()} == {n: h.groups for n, h in yml.hosts.items()}


def test_host_line_vars_port_and_comment():
    hosts = load_inventory(DATA / "ini_basic" / "hosts.ini").hosts
    assert hosts["web03"].vars["ansible_port"] == 2222
    assert hosts["web03"].vars["ansible_host"] == "192.0.2.13"
    assert hosts["web01"].vars["canary"] is True
    assert hosts["bastion"].vars["ansible_host"] == "192.0.2.1"


def test_values_typed_like_ansible():
    db = load_inventory(DATA / "ini_basic" / "hosts.ini").hosts["db-a"].vars
    assert db["backup_hours"] == [1, 13]
    assert db["label"] == "primary db"
    assert db["mode"] == "0755"
    assert db["flag"] == "true"  # literal_eval knows True, not true: Ansible keeps the string
    assert db["empty"] == ""
    assert db["engine"] == {"name": "postgres", "version": 16}


def test_group_vars_section_takes_the_rest_of_the_line():
    web = load_inventory(DATA / "ini_basic" / "hosts.ini").hosts["web02"].vars
    assert web["http_port"] == 80
    assert web["tls"] is True
    assert web["motd"] == "Welcome to   web   # not a comment: the rest of the line is the value"
    assert web["ntp"] == "pool.ntp.org"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("22", 22),
        ("-1.5", -1.5),
        ("True", True),
        ("False", False),
        ("None", None),
        ("true", "true"),
        ("yes", "yes"),
        ("0755", "0755"),
        ("2024-01-01", "2024-01-01"),
        ("'quoted'", "quoted"),
        ("[1, 'a']", [1, "a"]),
        ("(1, 2)", [1, 2]),
        ("{'k': 'v'}", {"k": "v"}),
        ("{1, 2}", "{1, 2}"),
        ("b'x'", "b'x'"),
        ("note: x", "note: x"),
        ("", ""),
    ],
)
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_hosts_before_any_section_are_ungrouped(tmp_path):
    inv = load_inventory(write(tmp_path / "hosts.ini", "a\n[g]\nb\n"))
    assert inv.groups["ungrouped"] == ("a",)
    assert inv.hosts["b"].groups == ("all", "g")


def test_ungrouped_host_listed_in_a_group_is_not_ungrouped(tmp_path):
    inv = load_inventory(write(tmp_path / "hosts.ini", "a\n[g]\na\n"))
    assert inv.groups["ungrouped"] == ()
    assert inv.hosts["a"].groups == ("all", "g")


def test_children_and_vars_may_come_before_the_group(tmp_path):
    text = "[parent:children]\nchild\n[child:vars]\nx=1\n[child]\nh\n"
    inv = load_inventory(write(tmp_path / "hosts.ini", text))
    assert inv.hosts["h"].groups == ("all", "parent", "child")
    assert inv.hosts["h"].vars == {"x": 1}


def test_comments_and_blank_lines(tmp_path):
    text = "# comment\n; also a comment\n\n[g]  # trailing\nh  # trailing\n"
    assert list(load_inventory(write(tmp_path / "hosts.ini", text)).hosts) == ["h"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[g:vars]\nx=1\n", "hosts.ini:1: section [g:vars] is for undefined group 'g'"),
        (
            "[g]\nh\n[g:children]\nmissing\n",
            "hosts.ini:4: section [g:children] includes undefined group 'missing'",
        ),
        ("[g:hosts2]\n", "hosts.ini:1: section [g:hosts2] has unknown type 'hosts2'"),
        ("[my group]\n", "hosts.ini:1: invalid section header '[my group]'"),
        ("[g]\nh port 22\n", "hosts.ini:2: expected key=value host variable, got 'port'"),
        ("[g]\nh x='unclosed\n", "hosts.ini:2: cannot parse host line: No closing quotation"),
        (
            "[g:vars]\n[g]\n[g:vars]\njust-a-word\n",
            "hosts.ini:4: expected key=value in [g:vars], got 'just-a-word'",
        ),
        ("[g:children]\na b\n", "hosts.ini:2: expected a group name in [g:children], got 'a b'"),
        ("[g]\nweb[3:1]\n", "hosts.ini:2: host 'web[3:1]': host range [3:1] is empty"),
    ],
)
def test_errors_name_file_and_line(tmp_path, text, message):
    path = write(tmp_path / "hosts.ini", text)
    with pytest.raises(InventoryError) as exc:
        load_inventory(path)
    assert str(exc.value).startswith(f"{tmp_path}/{message}")
