"""certs/show.py: `certs show` statuses, read without changing anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from regdeploy import pki
from regdeploy.certs.issue import TlsIssuer
from regdeploy.certs.show import host_certs, hosts_json, server_status
from regdeploy.materials.host import host_sans
from regdeploy.materials.secrets import Masker, SecretResolver
from regdeploy.materials.state import StateStore
from regdeploy.spec.registry import parse_spec

NOW = datetime(2030, 6, 1, tzinfo=UTC)
LOCAL = {"ansible_connection": "local"}


def ca_pair(cn: str = "CA") -> tuple[bytes, bytes]:
    key = pki.generate_key()
    return pki.make_ca(key, cn, now=NOW - timedelta(days=1)), key


@pytest.mark.parametrize(
    ("days", "moment", "sans", "other", "status"),
    [
        (397, NOW, ["a.example"], False, "ok"),
        (397, NOW + timedelta(days=380), ["a.example"], False, "renew-due"),
        (10, NOW + timedelta(days=11), ["a.example"], False, "expired"),
        (397, NOW, ["a.example", "b.example"], False, "sans-missing"),
        (397, NOW, ["a.example"], True, "other-ca"),
    ],
)
def test_server_status(days: int, moment: datetime, sans: list[str], other: bool, status: str) -> None:
    ca, other_ca = ca_pair(), ca_pair("Other")
    cert = pki.issue_server_cert(ca[0], ca[1], pki.generate_key(), ["a.example"], days=days, now=NOW)
    got, detail, info = server_status(cert, (other_ca if other else ca)[0], sans, 30, moment)
    assert got == status, detail
    assert info is not None and info.sans == ("a.example",)


def test_host_certs_reads_state_and_deployed_without_changing_anything(tmp_path: Path) -> None:
    state = StateStore(tmp_path / ".regdeploy")
    resolver = SecretResolver(state, Masker(), environ={})
    spec = parse_spec("localhost", {"config_dir": "/srv/reg"})
    sans = host_sans("localhost", LOCAL, spec)
    empty = host_certs(spec, sans, state, resolver, NOW, None)
    assert [(v.role, v.status) for v in empty.views] == [("ca", "missing"), ("server", "missing")]
    assert not empty.ok and not state.dirty  # show never issues anything

    old = TlsIssuer(state, resolver, now=NOW).material(spec, sans)
    assert old is not None
    new = TlsIssuer(state, resolver, now=NOW).material(spec, sans, force=True)
    assert new is not None
    deployed: dict[str, bytes] = {"/srv/reg/certs/server.crt": old.server_chain}
    shown = host_certs(spec, sans, state, resolver, NOW, deployed.get)
    assert [(v.role, v.source.split(":")[0], v.status) for v in shown.views] == [
        ("ca", "state", "ok"), ("server", "state", "ok"), ("server", "deployed", "outdated")]  # fmt: skip
    payload = hosts_json({"localhost": shown})
    assert payload["ok"] is True
    row = payload["hosts"]["localhost"]["certificates"][1]
    assert set(row) >= {"subject", "sans", "issuer", "key_type", "not_after", "days_left", "status"}
    assert row["key_type"] == "ecdsa-p256" and row["days_left"] == 397 and "localhost" in row["sans"]
    assert "PRIVATE" not in repr(payload)


def test_hosts_json_for_an_error() -> None:
    from regdeploy.errors import SecretError

    payload: dict[str, Any] = hosts_json({"r": SecretError("x: environment variable Y is not set")})
    assert payload == {"ok": False, "hosts": {"r": {"ok": False, "mode": None, "certificates": [],
                       "warnings": [], "error": "x: environment variable Y is not set"}}}  # fmt: skip
