"""known_hosts lookups: regdeploy reads each file once per run and builds keys only for the lines that
name the host, and must find exactly what paramiko's own HostKeys finds (plain, hashed, [host]:port,
several names on a line, comments, markers, damaged lines)."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from regdeploy.transport import hostkeys
from regdeploy.transport.hostkeys import load_known_hosts
from regdeploy.transport.sshconfig import Hop


def public_line(names: str, key: paramiko.PKey) -> str:
    return f"{names} {key.get_name()} {key.get_base64()}\n"


@pytest.fixture
def keys() -> list[paramiko.PKey]:
    return [paramiko.ECDSAKey.generate() for _ in range(4)]  # one type: "first key of a type wins" shows


def lookup(files: list[Path], name: str) -> dict[str, str]:
    client = paramiko.SSHClient()
    load_known_hosts(client, [str(f) for f in files], name)
    found = client.get_host_keys().lookup(name)
    return {t: k.get_base64() for t, k in (found or {}).items()}


def paramiko_lookup(files: list[Path], name: str) -> dict[str, str]:
    reference = paramiko.HostKeys()
    for f in files:
        reference.load(str(f))
    found = reference.lookup(name)
    return {t: k.get_base64() for t, k in (found or {}).items()}


def test_same_answers_as_paramiko(tmp_path: Path, keys: list[paramiko.PKey]) -> None:
    a, b, c, _ = keys
    known = tmp_path / "known_hosts"
    known.write_text(
        "# a comment\n\n"
        + public_line("reg1.example.com,192.0.2.1", a)
        + public_line(paramiko.HostKeys.hash_host("reg2.example.com"), b)
        + public_line("[192.0.2.3]:2222", c)
        + "reg4.example.com ssh-unknown AAAA\n"
        + "short-line\n"
    )
    off_port_22 = Hop("r3", "192.0.2.3", 2222, "u").known_hosts_name
    names = ["reg1.example.com", "192.0.2.1", "reg2.example.com", off_port_22,
             "192.0.2.3", "reg4.example.com", "nobody.example.com"]  # fmt: skip
    for name in names:
        assert lookup([known], name) == paramiko_lookup([known], name), name
    assert lookup([known], "reg2.example.com") == {b.get_name(): b.get_base64()}


def test_lines_paramiko_cannot_load_are_skipped(tmp_path: Path, keys: list[paramiko.PKey]) -> None:
    """OpenSSH's @cert-authority / @revoked markers and a damaged key: paramiko's HostKeys.load()
    raises on the whole file, regdeploy skips those lines and still finds the host's key."""
    a, _, _, d = keys
    known = tmp_path / "known_hosts"
    known.write_text(
        f"@cert-authority *.example.com {d.get_name()} {d.get_base64()}\n"
        f"reg5.example.com {d.get_name()} !!!not-base64\n" + public_line("reg1.example.com", a)
    )
    with pytest.raises(paramiko.hostkeys.InvalidHostKey):
        paramiko.HostKeys().load(str(known))
    assert lookup([known], "reg1.example.com") == {a.get_name(): a.get_base64()}
    assert lookup([known], "reg5.example.com") == {}
    assert lookup([known], "*.example.com") == {}


def test_later_files_win_and_appended_keys_are_seen(tmp_path: Path, keys: list[paramiko.PKey]) -> None:
    a, b, c, _ = keys
    first, second = tmp_path / "user_known_hosts", tmp_path / "regdeploy_known_hosts"
    first.write_text(public_line("reg1", a))
    second.write_text(public_line("reg1", b))
    # The first key of a type wins, in file order, as paramiko's own loading gives.
    assert lookup([first, second], "reg1") == paramiko_lookup([first, second], "reg1") == {
        a.get_name(): a.get_base64()
    }
    assert hostkeys.append_known_host(str(second), "reg9", c)  # a key added during the run
    assert lookup([second], "reg9") == {c.get_name(): c.get_base64()}


def test_missing_file_is_empty_and_unreadable_is_an_error(tmp_path: Path) -> None:
    assert lookup([tmp_path / "absent"], "reg1") == {}
    bad = tmp_path / "binary"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(hostkeys.TransportError, match="cannot read known_hosts file"):
        lookup([bad], "reg1")


def test_revoked_keys_are_never_trusted(tmp_path: Path, keys: list[paramiko.PKey]) -> None:
    """OpenSSH's @revoked: the key is refused even where an ordinary line (here, in the global file)
    names it, and even with --accept-new-host-keys; paramiko's own loader raised on such files."""
    a, b, _, _ = keys
    user, system = tmp_path / "known_hosts", tmp_path / "ssh_known_hosts"
    user.write_text(f"@revoked * {a.get_name()} {a.get_base64()}\n")
    system.write_text(public_line("reg1", a) + public_line("reg2", b))
    client = paramiko.SSHClient()
    revoked = load_known_hosts(client, [str(user), str(system)], "reg1")
    assert revoked == {(a.get_name(), a.get_base64())}
    assert client.get_host_keys().lookup("reg1") is None  # not loaded: paramiko asks the policy
    policy = hostkeys.CheckPolicy("r1", str(user), True, lambda m: None, revoked)
    with pytest.raises(hostkeys.HostKeyError, match="is marked @revoked in known_hosts"):
        policy.missing_host_key(client, "reg1", a)
    assert lookup([user, system], "reg2") == {b.get_name(): b.get_base64()}  # other hosts unaffected


def test_accepting_a_new_key_into_a_file_with_markers(tmp_path: Path, keys: list[paramiko.PKey]) -> None:
    a, b, _, _ = keys
    known = tmp_path / "known_hosts"
    known.write_text(f"@cert-authority *.example.com {a.get_name()} {a.get_base64()}\n")
    assert hostkeys.append_known_host(str(known), "reg1", b)
    assert not hostkeys.append_known_host(str(known), "reg1", b)  # already there
    assert lookup([known], "reg1") == {b.get_name(): b.get_base64()}
