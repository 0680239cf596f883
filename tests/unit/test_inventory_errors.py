"""Every inventory error is one line naming the file (and line, for syntax errors) and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from regdeploy.errors import EXIT_INPUT, InventoryError
from regdeploy.inventory import load_inventory


def load_error(path: Path, text: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(InventoryError) as exc:
        load_inventory(path)
    message = str(exc.value)
    assert "\n" not in message
    assert exc.value.exit_code == EXIT_INPUT
    return message.replace(str(path.parent) + "/", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("all:\n  hosts:\n    a: b: c\n", "hosts.yml:3: mapping values are not allowed here"),
        (
            "all:\n  hosts:\n  - a\n - b\n",
            "hosts.yml:4: expected <block end>, but found '<block sequence start>'",
        ),
        ("all:\n  vars: {a: [1, 2}\n", "hosts.yml:2: expected ',' or ']', but got '}'"),
        (
            "all:\n  hosts: {a: }\n---\nb:\n",
            "hosts.yml:3: expected a single document in the stream, but found another document",
        ),
        (
            "all:\n  vars: {a: !!python/name:os.system }\n",
            "hosts.yml:2: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/name:os.system'",
        ),
    ],
)
def test_yaml_syntax_errors_have_line_numbers(tmp_path, text, message):
    assert load_error(tmp_path / "hosts.yml", text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "hosts.yml: an inventory must be a mapping of groups, got list"),
        (
            "registries:\n  hosts: [a, b]\n",
            "hosts.yml: group 'registries': 'hosts' must be a mapping, got list",
        ),
        ("web:\n  vars: [a]\n", "hosts.yml: group 'web': 'vars' must be a mapping, got list"),
        ("web:\n  vars: text\n", "hosts.yml: group 'web': 'vars' must be a mapping, got string"),
        ("web:\n  children: [a]\n", "hosts.yml: group 'web': 'children' must be a mapping, got list"),
        ("web: [a]\n", "hosts.yml: group 'web' must be a mapping, got list"),
        ("web: 3\n", "hosts.yml: group 'web' must be a mapping, got integer"),
        (
            "web:\n  host:\n    a:\n",
            "hosts.yml: group 'web': unknown key 'host' (a group has hosts, vars and children)",
        ),
        (
            "web:\n  hosts:\n    a: [1]\n",
            "hosts.yml: host 'a' in group 'web': variables must be a mapping, got list",
        ),
        ("web:\n  hosts:\n    1:\n", "hosts.yml: group 'web': host name 1 must be a string"),
        ("1:\n  hosts:\n", "hosts.yml: group name 1 must be a string"),
        ("web:\n  vars: {1: a}\n", "hosts.yml: group 'web': variable name 1 must be a string"),
        (
            "web:\n  hosts:\n    'w[1:3:0]':\n",
            "hosts.yml: group 'web': host 'w[1:3:0]': host range [1:3:0] step must be a positive integer",
        ),
        (
            "plugin: aws_ec2\nregions: [eu-west-1]\n",
            "hosts.yml: an inventory plugin configuration (plugin: aws_ec2): regdeploy runs no inventory "
            "plugins; export its hosts with: ansible-inventory -i hosts.yml --list --export > inventory.json",
        ),
        (
            "web:\n  vars: {ansible_group_priority: high}\n",
            "hosts.yml: group 'web': ansible_group_priority must be an integer, got 'high'",
        ),
        (
            "base: &base\n  children:\n    loop: *base\n",
            "hosts.yml: group 'loop' contains itself (YAML alias loop)",
        ),
    ],
)
def test_wrong_shapes_name_the_group_and_key(tmp_path, text, message):
    assert load_error(tmp_path / "hosts.yml", text) == message


def test_group_cycle(tmp_path):
    text = "a:\n  children:\n    b:\n      children:\n        c:\n          children:\n            a:\n"
    assert (
        load_error(tmp_path / "hosts.yml", text)
        == "hosts.yml: group 'a' is its own ancestor (a -> b -> c -> a)"
    )


def test_all_cannot_be_a_child(tmp_path):
    text = "web:\n  children:\n    all:\n"
    assert (
        load_error(tmp_path / "hosts.yml", text) == "hosts.yml: group 'all' cannot be a child of group 'web'"
    )


def test_not_utf8(tmp_path):
    assert (
        load_error(tmp_path / "hosts.yml", b"all:\n  vars: {a: \xff}\n") == "hosts.yml: not a UTF-8 text file"
    )


def test_bad_json_inventory_has_line_number(tmp_path):
    message = load_error(tmp_path / "hosts.json", '{\n  "all": {\n    "hosts": [}\n}\n')
    assert message == "hosts.json:3: Expecting value"


def test_error_in_a_directory_names_the_file(tmp_path):
    (tmp_path / "a.yml").write_text("all:\n  hosts: {a: }\n")
    (tmp_path / "b.yml").write_text("all:\n  hosts: [b]\n")
    with pytest.raises(
        InventoryError, match=rf"^{tmp_path}/b.yml: group 'all': 'hosts' must be a mapping, got list$"
    ):
        load_inventory(tmp_path)
