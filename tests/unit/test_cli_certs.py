"""`regdeploy certs` commands that need no Docker engine and no host: generate, show --offline, csr."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from regdeploy import pki
from regdeploy.cli import cli

# Nothing answers here: any attempt to reach an engine would fail the command.
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/regdeploy-test.sock"}


def inventory(tmp: Path, hosts: dict[str, Any]) -> Path:
    path = tmp / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=NO_ENGINE, catch_exceptions=False)


def registry(tmp: Path, **tls: Any) -> dict[str, Any]:
    return {"config_dir": str(tmp / "config"), "data_dir": str(tmp / "data"), "tls": tls}


def test_generate_without_engine_writes_state_and_out(tmp_path: Path) -> None:
    inv = inventory(tmp_path, {
        "localhost": {"ansible_connection": "local", "registry": registry(tmp_path)},
        "reg2": {"ansible_host": "10.0.0.9", "registry": registry(tmp_path, sans=["reg2.corp.example"])},
    })  # fmt: skip
    result = run("certs", "generate", "-i", str(inv), "--out", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["changed"] is True
    assert {h: r["action"] for h, r in report["hosts"].items()} == {"localhost": "issued", "reg2": "issued"}
    state = tmp_path / ".regdeploy"
    for key in ("ca/ca.key", "hosts/localhost/server.key", "hosts/reg2/server.key"):
        assert stat.S_IMODE((state / key).stat().st_mode) == 0o600
    out = tmp_path / "out" / "reg2"
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "server.key").stat().st_mode) == 0o600
    sans = pki.cert_info((out / "server.crt").read_bytes()).sans
    assert set(sans) == {"reg2", "10.0.0.9", "reg2.corp.example"}
    assert (out / "ca.crt").read_bytes() == (state / "ca" / "ca.crt").read_bytes()
    assert b"PRIVATE KEY" not in result.stdout.encode()
    # Again: nothing due, nothing issued; the CA is shared and kept.
    again = json.loads(run("certs", "generate", "-i", str(inv), "--json").stdout)
    assert {r["action"] for r in again["hosts"].values()} == {"kept"} and again["changed"] is False
    assert not (tmp_path / "config").exists()  # no host was touched


def test_generate_refusal_saves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "chain.pem"
    bad.write_bytes(b"not a certificate")
    provided = registry(tmp_path, mode="provided", cert={"file": str(bad)}, key={"file": str(bad)})
    inv = inventory(tmp_path, {
        "a": {"ansible_connection": "local", "registry": registry(tmp_path)},
        "b": {"ansible_connection": "local", "registry": provided},
    })  # fmt: skip
    result = run("certs", "generate", "-i", str(inv))
    assert result.exit_code == 2
    assert "host 'b': registry.tls: provided certificate" in result.stderr
    assert not (tmp_path / ".regdeploy").exists()


def test_show_offline_table_and_json(tmp_path: Path) -> None:
    inv = inventory(tmp_path, {"localhost": {"ansible_connection": "local", "registry": registry(tmp_path)}})
    missing = run("certs", "show", "-i", str(inv), "--offline")
    assert missing.exit_code == 1 and "missing" in missing.stdout
    assert not (tmp_path / ".regdeploy").exists()  # show never creates anything
    assert run("certs", "generate", "-i", str(inv)).exit_code == 0
    table = run("certs", "show", "-i", str(inv), "--offline")
    assert table.exit_code == 0, table.output
    header = table.stdout.splitlines()[0].split()
    assert header == ["HOST", "ROLE", "SOURCE", "SUBJECT", "SANS", "ISSUER", "KEY", "NOT", "AFTER", "DAYS",
                      "STATUS"]  # fmt: skip
    shown = json.loads(run("certs", "show", "-i", str(inv), "--offline", "--json").stdout)
    rows = shown["hosts"]["localhost"]["certificates"]
    assert [(r["role"], r["status"]) for r in rows] == [("ca", "ok"), ("server", "ok")]
    assert rows[1]["sans"] == ["localhost", "127.0.0.1"] and rows[1]["issuer"] == "CN=regdeploy CA"


def test_csr_writes_files_and_import_checks(tmp_path: Path) -> None:
    host = {"ansible_host": "10.0.0.7", "registry": registry(tmp_path, mode="csr")}
    inv = inventory(tmp_path, {"reg1": host})
    waiting = run("certs", "generate", "-i", str(inv), "--json")
    assert waiting.exit_code == 0, waiting.output
    assert json.loads(waiting.stdout)["hosts"]["reg1"]["action"] == "awaiting-import"
    result = run("certs", "csr", "-i", str(inv), "--out", str(tmp_path / "csr"))
    assert result.exit_code == 0, result.output
    csr = (tmp_path / "csr" / "reg1.csr").read_bytes()
    ca_key = pki.generate_key()
    ca = pki.make_ca(ca_key, "Corp CA")
    (tmp_path / "signed.pem").write_bytes(pki.sign_csr(csr, ca, ca_key) + ca)
    imported = run("certs", "import", "reg1", str(tmp_path / "signed.pem"), "-i", str(inv))
    assert imported.exit_code == 0, imported.output
    assert "imported CN=reg1 from CN=Corp CA" in imported.stdout
    (tmp_path / "wrong.pem").write_bytes(pki.sign_csr(pki.make_csr(pki.generate_key(), ["reg1"]), ca, ca_key))
    refused = run("certs", "import", "reg1", str(tmp_path / "wrong.pem"), "-i", str(inv))
    assert refused.exit_code == 2 and "not for this host's key" in refused.stderr
    unknown = run("certs", "import", "nope", str(tmp_path / "signed.pem"), "-i", str(inv))
    assert unknown.exit_code == 2 and "no registry host named 'nope'" in unknown.stderr


def test_trust_needs_clients(tmp_path: Path) -> None:
    inv = inventory(tmp_path, {"localhost": {"ansible_connection": "local", "registry": registry(tmp_path)}})
    run("certs", "generate", "-i", str(inv))
    result = run("certs", "trust", "-i", str(inv), "--certs-d", str(tmp_path / "d"))
    assert result.exit_code == 2 and "add hosts to an inventory group `clients`" in result.stderr
