"""materials/secrets.py: secret references, their resolution and masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from regdeploy.errors import SecretError
from regdeploy.materials.secrets import MASK, Masker, SecretRef, SecretResolver
from regdeploy.materials.state import StateStore


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
