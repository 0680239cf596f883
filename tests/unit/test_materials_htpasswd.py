"""htpasswd hashing and caching, the staged state store, secret references and masking."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from regdeploy.errors import SecretError
from regdeploy.materials import htpasswd
from regdeploy.materials.secrets import MASK, Masker, SecretRef, SecretResolver
from regdeploy.materials.state import StateStore


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


def test_state_is_staged_until_commit(tmp_path: Path) -> None:
    store = StateStore(tmp_path / ".regdeploy")
    assert store.get_or_create("secrets/x", lambda: b"v1") == b"v1"
    assert store.get_or_create("secrets/x", lambda: b"v2") == b"v1"
    assert not (tmp_path / ".regdeploy").exists()
    store.commit()
    root = tmp_path / ".regdeploy"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "secrets" / "x").stat().st_mode) == 0o600
    assert (root / ".gitignore").read_text().strip().endswith("*")
    assert StateStore(root).read("secrets/x") == b"v1"


def test_state_rejects_escaping_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        StateStore(tmp_path).write("../x", b"")


def test_resolver_env_file_generated(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    masker = Masker()
    store = StateStore(tmp_path / "st")
    resolver = SecretResolver(store, masker, environ={"PW": "from-env"}, generate=lambda: "generated-pw")
    assert resolver.resolve(SecretRef("env", "PW"), "k") == "from-env"
    assert resolver.resolve(SecretRef("file", str(secret_file)), "k") == "from-file"
    assert resolver.resolve(SecretRef("generated", "users/a"), "k") == "generated-pw"
    assert store.read("secrets/users/a") == b"generated-pw"
    assert masker.mask("a from-env b from-file c generated-pw") == f"a {MASK} b {MASK} c {MASK}"


@pytest.mark.parametrize(
    ("ref", "environ", "fragment"),
    [
        (SecretRef("env", "NOPE"), {}, "k: environment variable NOPE is not set"),
        (SecretRef("env", "EMPTY"), {"EMPTY": ""}, "environment variable EMPTY is empty"),
        (SecretRef("file", "/nonexistent/pw"), {}, "k: secret file /nonexistent/pw does not exist"),
    ],
)
def test_resolver_errors_name_the_key(
    tmp_path: Path, ref: SecretRef, environ: dict[str, str], fragment: str
) -> None:
    resolver = SecretResolver(StateStore(tmp_path), Masker(), environ=environ)
    with pytest.raises(SecretError) as info:
        resolver.resolve(ref, "k")
    assert fragment in str(info.value)


def test_describe_never_shows_a_value() -> None:
    assert SecretRef("literal", "token-123").describe() == "(inline value)"
    assert SecretRef("env", "X").describe() == "env:X"
