"""transport/hostkeys.py: known_hosts bookkeeping (fingerprints, messages, appends, policy), offline."""

from __future__ import annotations

import threading
from pathlib import Path

import paramiko
import pytest

from regdeploy.transport.hostkeys import (
    CheckPolicy,
    HostKeyError,
    append_known_host,
    changed_key_message,
    fingerprint,
    unknown_key_message,
)


@pytest.fixture(scope="module")
def keys() -> tuple[paramiko.PKey, paramiko.PKey]:
    # paramiko generates only ECDSA/RSA keys itself; two different keys of one type, as a rekeyed host has.
    return paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()


def test_fingerprint_is_openssh_sha256(keys: tuple[paramiko.PKey, paramiko.PKey]) -> None:
    kind, fp = fingerprint(keys[0]).split()
    assert kind == "ecdsa-sha2-nistp256" and fp.startswith("SHA256:") and not fp.endswith("=")


def test_messages_say_what_to_do(keys: tuple[paramiko.PKey, paramiko.PKey]) -> None:
    unknown = unknown_key_message("web1", "[10.0.0.5]:2222", keys[0], "/kh")
    assert unknown.startswith("web1: unknown SSH host key for [10.0.0.5]:2222 (ecdsa-sha2-nistp256 SHA256:")
    assert "--accept-new-host-keys" in unknown and "/kh" in unknown and "ssh_host_ecdsa_key.pub" in unknown
    changed = changed_key_message("web1", "10.0.0.5", keys[0], keys[1], "/kh")
    assert "has CHANGED" in changed and fingerprint(keys[1]) in changed and fingerprint(keys[0]) in changed
    assert "ssh-keygen -R '10.0.0.5' -f /kh" in changed


def test_append_creates_private_file_once_under_concurrency(
    tmp_path: Path, keys: tuple[paramiko.PKey, paramiko.PKey]
) -> None:
    path = tmp_path / "ssh" / "known_hosts"
    results: list[bool] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(append_known_host(str(path), "[10.0.0.5]:2222", keys[0]))
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    loaded = paramiko.HostKeys(str(path))
    assert loaded.lookup("[10.0.0.5]:2222")["ecdsa-sha2-nistp256"] == keys[0]  # type: ignore[index]


def test_append_keeps_a_file_without_final_newline_valid(
    tmp_path: Path, keys: tuple[paramiko.PKey, paramiko.PKey]
) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"other {keys[1].get_name()} {keys[1].get_base64()}")  # no newline at the end
    assert append_known_host(str(path), "web1", keys[0])
    loaded = paramiko.HostKeys(str(path))
    assert loaded.lookup("other") is not None and loaded.lookup("web1") is not None


def test_policy_refuses_unknown_keys_unless_told(
    tmp_path: Path, keys: tuple[paramiko.PKey, paramiko.PKey]
) -> None:
    client = paramiko.SSHClient()
    told: list[str] = []
    with pytest.raises(HostKeyError, match="unknown SSH host key"):
        CheckPolicy("web1", str(tmp_path / "kh"), False, told.append).missing_host_key(
            client, "web1", keys[0]
        )
    assert not (tmp_path / "kh").exists()
    CheckPolicy("web1", str(tmp_path / "kh"), True, told.append).missing_host_key(client, "web1", keys[0])
    assert told and "added the SSH host key of web1" in told[0] and fingerprint(keys[0]) in told[0]
    assert client.get_host_keys().lookup("web1") is not None
