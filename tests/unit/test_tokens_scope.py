"""Requested scopes: the type ends at the first ':', the actions start after the last one."""

from __future__ import annotations

import pytest

from regdeploy.tokens.scope import Scope, parse_scope, parse_scopes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:alice/app:pull,push", Scope("repository", "alice/app", ("pull", "push"))),
        ("repository:a/b/c:pull", Scope("repository", "a/b/c", ("pull",))),
        ("registry:catalog:*", Scope("registry", "catalog", ("*",))),
        # docker plugins: the class is dropped, the type kept
        ("repository(plugin):vieux/sshfs:pull", Scope("repository", "vieux/sshfs", ("pull",))),
        # a name with a port keeps it: actions after the last ':'
        ("repository:reg:5000/app:pull", Scope("repository", "reg:5000/app", ("pull",))),
        ("repository:app:pull,,pull, push", Scope("repository", "app", ("pull", "push"))),
        ("repository:app:", Scope("repository", "app", ())),
        ("weird:thing:do", Scope("weird", "thing", ("do",))),
    ],
)
def test_parse_scope(text, expected):
    assert parse_scope(text) == expected


@pytest.mark.parametrize("text", ["", "repository", "repository:app", ":app:pull", "repository::pull"])
def test_malformed_scopes_are_none(text):
    assert parse_scope(text) is None


def test_str_is_the_wire_form():
    assert str(Scope("repository", "a/b", ("pull", "push"))) == "repository:a/b:pull,push"


def test_several_parameters_and_space_separated_values_merge():
    scopes = parse_scopes(
        ["repository:a:pull", "repository:a:pull,push registry:catalog:*", "garbage", "repository:b:push"]
    )
    assert scopes == [
        Scope("repository", "a", ("pull", "push")),
        Scope("registry", "catalog", ("*",)),
        Scope("repository", "b", ("push",)),
    ]


def test_scope_count_is_bounded():
    scopes = parse_scopes([" ".join(f"repository:r{i}:pull" for i in range(100))])
    assert len(scopes) == 32
    # an already-seen scope still merges its actions after the limit
    assert parse_scopes([*(f"repository:r{i}:pull" for i in range(40)), "repository:r0:push"])[0].actions == (
        "pull",
        "push",
    )
