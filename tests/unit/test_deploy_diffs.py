"""Diffs of secret-bearing files show structure, never values."""

from __future__ import annotations

from regdeploy.deploy.diffs import file_diff
from regdeploy.deploy.files import RenderedFile


def test_a_proxy_configs_upstream_credentials_are_masked() -> None:
    old = (
        b'version: 0.1\nproxy:\n  remoteurl: "https://up.example"\n'
        b'  username: "puller"\n  password: "OLD-9f1"\n'
    )
    new = old.replace(b"OLD-9f1", b"NEW-77c")
    diff = file_diff(RenderedFile("/srv/reg/proxy-up/config.yml", new, 0o600, True, True), old)
    assert diff is not None
    assert "OLD-9f1" not in diff and "NEW-77c" not in diff and "puller" not in diff
