"""certs/trust.py: `certs trust` addresses and file handling, on plain directories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from regdeploy import pki
from regdeploy.certs.trust import (
    LocalFiles,
    SystemStore,
    TrustItem,
    apply_system_trust,
    apply_trust,
    registry_addresses,
)
from regdeploy.errors import HostError
from regdeploy.spec.registry import parse_spec

NOW = datetime(2030, 6, 1, tzinfo=UTC)
LOCAL = {"ansible_connection": "local"}


def ca_pair(cn: str = "CA") -> tuple[bytes, bytes]:
    key = pki.generate_key()
    return pki.make_ca(key, cn, now=NOW - timedelta(days=1)), key


def test_registry_addresses() -> None:
    tls = {
        "sans": ["*.corp.example", "reg.corp.example", "fd00::5"],
        "external_url": "https://pull.example.com",
    }
    spec = parse_spec("localhost", {"port": 5443, "tls": tls})
    here = registry_addresses("localhost", LOCAL, spec, same_machine=True)
    # external_url with its own port (443: no port in the name), then every SAN on the registry's port.
    assert here == ["pull.example.com", "localhost:5443", "127.0.0.1:5443", "pull.example.com:5443",
                    "reg.corp.example:5443", "[fd00::5]:5443"]  # fmt: skip
    elsewhere = registry_addresses("localhost", LOCAL, spec, same_machine=False)
    assert "localhost:5443" not in elsewhere and "127.0.0.1:5443" not in elsewhere


def test_apply_trust_installs_is_idempotent_and_removes_only_its_own(tmp_path: Path) -> None:
    ca, other = ca_pair()[0], ca_pair("Other")[0]
    certs_d = str(tmp_path / "certs.d")
    items = [TrustItem("reg1", "reg1:5000", ca), TrustItem("reg1", "10.0.0.7:5000", ca)]
    changes, _ = apply_trust(LocalFiles(), certs_d, items, remove=False)
    assert [c.action for c in changes] == ["create", "create"]
    path = tmp_path / "certs.d" / "reg1:5000" / "ca.crt"
    assert path.read_bytes() == ca and path.stat().st_mode & 0o777 == 0o644
    assert apply_trust(LocalFiles(), certs_d, items, remove=False) == ([], [])
    # Someone else's file beside ours, and another CA at one address: both survive the removal.
    (tmp_path / "certs.d" / "reg1:5000" / "client.cert").write_bytes(b"x")
    (tmp_path / "certs.d" / "10.0.0.7:5000" / "ca.crt").write_bytes(other)
    changes, notes = apply_trust(LocalFiles(), certs_d, items, remove=True)
    assert [c.action for c in changes] == ["remove"]
    assert notes == [f"{certs_d}/10.0.0.7:5000/ca.crt is not reg1's CA: left in place"]
    assert not path.exists() and (tmp_path / "certs.d" / "reg1:5000" / "client.cert").exists()


def test_system_store_adds_removes_and_refreshes(tmp_path: Path) -> None:
    ca = ca_pair()[0]
    marker = tmp_path / "refreshed"
    store = SystemStore(tmp_path / "anchors" / "regdeploy", ("sh", "-c", f"echo x >> {marker}"))
    added = apply_system_trust(store, {"reg1": ca}, remove=False)
    assert len(added) == 1 and Path(added[0].path).read_bytes() == ca
    assert apply_system_trust(store, {"reg1": ca}, remove=False) == []
    assert marker.read_text() == "x\n"  # refreshed once: only when something changed
    assert len(apply_system_trust(store, {"reg1": ca}, remove=True)) == 1
    assert not store.anchors.exists()
    broken = SystemStore(tmp_path / "b", ("sh", "-c", "echo 'no store here' >&2; exit 3"))
    with pytest.raises(HostError, match="no store here"):
        apply_system_trust(broken, {"reg1": ca}, remove=False)
