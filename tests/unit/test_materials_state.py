"""materials/state.py: the staged state store (0700/0600 on commit) and its keys."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from regdeploy.materials.state import StateStore


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
