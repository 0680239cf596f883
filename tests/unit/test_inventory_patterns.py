"""Inventory.select: Ansible --limit patterns. Expected sets were checked with
`ansible -i data/inventory/yaml_basic/hosts.yml PATTERN --list-hosts` (ansible-core 2.19)."""

from __future__ import annotations

from pathlib import Path

import pytest

from regdeploy.errors import InventoryError
from regdeploy.inventory import Inventory, load_inventory

BASIC = Path(__file__).parent / "data" / "inventory" / "yaml_basic" / "hosts.yml"
ALL = ["bastion", "web01", "web02", "web03", "db-a", "db-b", "stage1"]


@pytest.fixture(scope="module")
def inv() -> Inventory:
    return load_inventory(BASIC)


def names(inv: Inventory, pattern: str | None) -> list[str]:
    return [h.name for h in inv.select(pattern)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (None, ALL),
        ("all", ALL),
        ("*", ALL),
        ("web01", ["web01"]),
        ("web", ["web01", "web02", "web03"]),
        ("canary", ["web01"]),
        ("ungrouped", ["bastion"]),
        ("web*", ["web01", "web02", "web03"]),
        ("db-?", ["db-a", "db-b"]),
        ("~web0[13]", ["web01", "web03"]),
        ("~db", ["web01", "db-a", "db-b"]),  # the group db and the hosts db-a, db-b
        ("web:db", ["web01", "web02", "web03", "db-a", "db-b"]),
        ("web,db", ["web01", "web02", "web03", "db-a", "db-b"]),
        ("web, stage1", ["web01", "web02", "web03", "stage1"]),
        ("web:&db", ["web01"]),
        ("web:!canary", ["web02", "web03"]),
        ("!web", ["bastion", "db-a", "db-b", "stage1"]),
        ("&db", ["web01", "db-a", "db-b"]),
        ("canary:staging:!web01", ["stage1"]),
        ("db:web:&canary", ["web01"]),
        ("web:!web02:&web*", ["web01", "web03"]),
        ("web[0]", ["web01"]),
        ("web[-1]", ["web03"]),
        ("web[1:2]", ["web02", "web03"]),
        ("web[1:]", ["web02", "web03"]),
    ],
)
def test_patterns(inv, pattern, expected):
    assert names(inv, pattern) == expected


def test_result_keeps_inventory_order_whatever_the_pattern_order(inv):
    assert names(inv, "stage1:db:bastion") == ["bastion", "web01", "db-a", "db-b", "stage1"]


def test_exclusions_apply_after_unions_whatever_their_position(inv):
    assert names(inv, "!canary:web") == ["web02", "web03"]


def test_host_name_wins_over_a_group_of_the_same_name(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts: {x: }\n  children:\n    x2: {hosts: {y: }}\n    x: {hosts: {z: }}\n")
    inv = load_inventory(path)
    assert names(inv, "x") == ["x"]
    assert names(inv, "x*") == ["x", "y", "z"]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("nope", "--limit 'nope': matches no host in {src}"),
        ("web*.example", "--limit 'web*.example': matches no host in {src}"),
        ("web:&db-a", "--limit 'web:&db-a': matches no host in {src}"),
        ("web[7]", "--limit 'web[7]': matches no host in {src}"),
        ("web:nope", "--limit 'web:nope': 'nope' matches no host or group in {src}"),
        # a typo in an exclusion must not widen the selection
        ("all:!reg-uss", "--limit 'all:!reg-uss': 'reg-uss' matches no host or group in {src}"),
        ("!reg-uss", "--limit '!reg-uss': 'reg-uss' matches no host or group in {src}"),
        ("", "--limit '': empty pattern"),
        (" , ", "--limit ' , ': empty pattern"),
        ("~web(", "--limit '~web(': invalid regular expression 'web(': missing ), unterminated subpattern"),
    ],
)
def test_errors(inv, pattern, message):
    with pytest.raises(InventoryError) as exc:
        inv.select(pattern)
    assert str(exc.value).startswith(message.format(src=BASIC))


def test_empty_group_is_a_valid_exclusion(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts: {a: }\n  children:\n    empty:\n")
    assert names(load_inventory(path), "all:!empty") == ["a"]


def test_no_pattern_on_an_empty_inventory_is_an_error(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("")
    with pytest.raises(InventoryError, match=r"hosts.yml: the inventory has no hosts$"):
        load_inventory(path).select(None)
