"""registry.retention: rules parse, and every bad rule is one line naming file, host and key."""

from __future__ import annotations

import pytest

from regdeploy.errors import EXIT_INPUT, SpecError
from regdeploy.spec.registry import parse_spec
from regdeploy.spec.retention import RetentionRule, age_seconds


def retention_error(rules: object) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec("reg1", {"retention": rules}, {"registry.retention": "group_vars/all.yml"}, "hosts.yml")
    assert info.value.exit_code == EXIT_INPUT
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("group_vars/all.yml: host 'reg1': registry.retention")
    return message


def test_no_retention_is_no_rules() -> None:
    assert parse_spec("reg1", None).retention == ()
    assert parse_spec("reg1", {"retention": []}).retention == ()


def test_the_issue_example_parses() -> None:
    spec = parse_spec("reg1", {"retention": [
        {"repositories": "team/*", "keep_last": 10, "keep_tags": ["latest", "v*"], "older_than": "30d"},
        {"repositories": "*", "keep_tags": ["latest"]},
    ]})  # fmt: skip
    assert spec.retention == (
        RetentionRule("team/*", 10, ("latest", "v*"), "30d", 30 * 86400),
        RetentionRule("*", None, ("latest",)),
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 2592000), ("12h", 43200), ("90m", 5400), ("45s", 45), ("2w", 1209600), ("1w2d", 777600)],
)
def test_ages(text: str, seconds: int) -> None:
    assert age_seconds(text) == seconds
    rule = parse_spec("reg1", {"retention": [{"repositories": "a", "keep_last": 1, "older_than": text}]})
    assert rule.retention[0].older_than_seconds == seconds


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        # The issue's three bad inputs.
        ([{"repositories": "team/*"}], "registry.retention[0]: has no keep rule: set keep_last"),
        ([{"repositories": "team/*", "older_than": "30d"}], "would delete every tag older than 30d"),
        ([{"repositories": "a", "keep_last": 0}], "retention[0].keep_last: 0 would delete every tag"),
        ([{"repositories": "a", "keep_last": 3, "older_than": "30x"}],
         "registry.retention[0].older_than: invalid duration '30x': a number and a unit s, m, h, d or w"),
        # And the rest.
        ([{"repositories": "a", "keep_last": 3, "older_than": 30}], "invalid duration 30"),
        ([{"repositories": "a", "keep_last": 3, "older_than": "0d"}], "'0d' is no age at all"),
        ([{"repositories": "a", "keep_last": 3, "older_than": "30 d"}], "invalid duration '30 d'"),
        ([{"repositories": "a", "keep_last": -1}], "keep_last: -1 is out of range 1..100000"),
        ([{"repositories": "a", "keep_last": "3"}], "keep_last: must be an integer, got string '3'"),
        ([{"repositories": "a", "keep_last": True}], "keep_last: must be an integer, got boolean True"),
        ([{"keep_last": 3}], "registry.retention[0].repositories: is required"),
        ([{"repositories": "Team/*", "keep_last": 3}], "repositories: invalid value 'Team/*'"),
        ([{"repositories": "a", "keep_tags": "latest"}], "keep_tags: must be a list, got string"),
        ([{"repositories": "a", "keep_tags": ["ok", "no space"]}], "keep_tags[1]: invalid value 'no space'"),
        ([{"repositories": "a", "keep_tags": [""]}], "keep_tags[0]: must be a non-empty string"),
        ([{"repositories": "a", "keep_last": 3, "keep": 1}], "retention[0].keep: unknown key"),
        ([{"repositories": "a", "keeplast": 3}], "unknown key (did you mean 'keep_last'?)"),
        ([{}], "registry.retention[0]: must be a mapping with repositories and a keep rule"),
        (["team/*"], "registry.retention[0]: must be a mapping, got string"),
        ({"repositories": "a", "keep_last": 3}, "registry.retention: must be a list, got mapping"),
        ([{"repositories": "a", "keep_last": 3}, {"repositories": "b", "keep_last": 1},
          {"repositories": "a", "keep_last": 5}],
         "registry.retention[2].repositories: 'a' is retention[0]'s already"),
    ],
)  # fmt: skip
def test_bad_rules(rules: object, expected: str) -> None:
    assert expected in retention_error(rules)
