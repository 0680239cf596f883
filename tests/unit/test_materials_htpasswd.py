"""materials/htpasswd.py: bcrypt hashing, the hash cache, parsing and rendering."""

from __future__ import annotations

import pytest

from regdeploy.materials import htpasswd


def test_hash_verifies_and_carries_cost() -> None:
    hashed = htpasswd.hash_password("s3cret-pass", 4)
    assert hashed.startswith("$2b$04$")
    assert htpasswd.check_password("s3cret-pass", hashed)
    assert not htpasswd.check_password("wrong", hashed)
    assert htpasswd.hash_cost(hashed) == 4


def test_password_over_72_bytes_is_refused() -> None:
    with pytest.raises(htpasswd.PasswordError, match="73 bytes"):
        htpasswd.hash_password("x" * 73, 4)


def test_cache_reuses_hash_until_password_or_cost_changes() -> None:
    cache = htpasswd.HashCache(b"k" * 32)
    first = cache.hash_for("alice", "pw-one", 4)
    assert cache.changed
    again = htpasswd.HashCache.from_json(b"k" * 32, cache.to_json())
    assert again.hash_for("alice", "pw-one", 4) == first
    assert not again.changed
    assert again.hash_for("alice", "pw-two", 4) != first
    assert htpasswd.hash_cost(again.hash_for("alice", "pw-two", 5)) == 5


def test_cache_does_not_store_the_password() -> None:
    cache = htpasswd.HashCache(b"k" * 32)
    cache.hash_for("alice", "very-secret-password", 4)
    assert b"very-secret-password" not in cache.to_json()


def test_parse_and_render_round_trip() -> None:
    data = htpasswd.render([("alice", "$2y$05$abc"), ("bob", "{SHA}xyz")])
    lines = htpasswd.parse(data)
    assert [(line.name, line.is_bcrypt) for line in lines] == [("alice", True), ("bob", False)]
