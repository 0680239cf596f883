"""verify/checks.py: which checks a verify run selects (pure)."""

from __future__ import annotations

import pytest

from regdeploy.verify.checks import CHECK_NAMES, select_checks


def test_default_is_every_check_but_the_opt_in_one():
    assert select_checks([]) == [
        "tcp",
        "storage",
        "tls",
        "auth",
        "engine",
        "api",
        "catalog",
        "replicas",
        "notifications",
        "proxies",
        "cleanup",
    ]
    assert select_checks([], persistence=True) == list(CHECK_NAMES)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["tcp"], ["tcp"]),
        (["tls"], ["tcp", "tls"]),
        (["auth"], ["tcp", "tls", "auth"]),
        (["engine"], ["tcp", "tls", "auth", "engine", "cleanup"]),
        (["catalog"], ["tcp", "tls", "auth", "api", "catalog", "cleanup"]),
        (["notifications", "tls"], ["tcp", "tls", "auth", "api", "notifications", "cleanup"]),
        (["persistence"], ["tcp", "tls", "auth", "api", "persistence", "cleanup"]),
        (["cleanup"], ["tcp", "tls", "auth", "api", "cleanup"]),
    ],
)
def test_a_check_brings_what_it_builds_on_and_cleanup_follows_pushes(names, expected):
    assert select_checks(names) == expected


def test_unknown_check_is_refused():
    with pytest.raises(ValueError, match="unknown check"):
        select_checks(["tcp", "nope"])
