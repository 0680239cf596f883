"""regdeploy.inventory.merge: replace for top-level variables, deep merge and origins for registry."""

from __future__ import annotations

from regdeploy.inventory.merge import layer_vars
from regdeploy.inventory.raw import VarsChunk


def merge(*layers):
    return layer_vars(VarsChunk(f"f{i}", values) for i, values in enumerate(layers, start=1))


def test_top_level_variables_replace():
    values, origins = merge({"a": {"x": 1}, "b": 1}, {"a": {"y": 2}})
    assert values == {"a": {"y": 2}, "b": 1}
    assert origins == {}


def test_registry_mappings_merge_recursively():
    values, origins = merge(
        {"registry": {"tls": {"mode": "ca", "sans": ["a"]}}}, {"registry": {"tls": {"mode": "none"}}}
    )
    assert values == {"registry": {"tls": {"mode": "none", "sans": ["a"]}}}
    assert origins == {
        "registry": "f2",
        "registry.tls": "f2",
        "registry.tls.mode": "f2",
        "registry.tls.sans": "f1",
    }


def test_lists_replace_and_are_leaves():
    values, origins = merge(
        {"registry": {"auth": {"users": [{"name": "a"}]}}}, {"registry": {"auth": {"users": [{"name": "b"}]}}}
    )
    assert values["registry"]["auth"]["users"] == [{"name": "b"}]
    assert origins["registry.auth.users"] == "f2"
    assert not any(key.startswith("registry.auth.users.") for key in origins)


def test_scalar_over_mapping_drops_the_origins_below_it():
    _, origins = merge({"registry": {"tls": {"mode": "ca", "sans": ["a"]}}}, {"registry": {"tls": "none"}})
    assert origins == {"registry": "f2", "registry.tls": "f2"}


def test_mapping_over_scalar_records_every_leaf():
    values, origins = merge({"registry": {"tls": "none"}}, {"registry": {"tls": {"mode": "ca"}}})
    assert values == {"registry": {"tls": {"mode": "ca"}}}
    assert origins == {"registry": "f2", "registry.tls": "f2", "registry.tls.mode": "f2"}


def test_non_mapping_registry_replaces():
    values, origins = merge({"registry": {"port": 1}}, {"registry": None})
    assert values == {"registry": None}
    assert origins == {"registry": "f2"}


def test_a_mapping_origin_is_its_last_writer():
    _, origins = merge({"registry": {"name": "r", "port": 1}}, {"registry": {"port": 2}}, {"registry": {}})
    assert origins == {"registry": "f3", "registry.name": "f1", "registry.port": "f2"}


def test_layers_are_not_mutated_or_shared():
    first = {"registry": {"tls": {"sans": ["a"]}}}
    values, _ = merge(first, {"registry": {"tls": {"mode": "ca"}}})
    values["registry"]["tls"]["sans"].append("b")
    assert first == {"registry": {"tls": {"sans": ["a"]}}}
