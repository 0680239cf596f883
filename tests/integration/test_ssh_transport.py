"""The SSH transport against a private sshd on 127.0.0.1 (LAB.md): host keys, auth, timeouts, atomic
uploads, a connection dropped mid-upload, ProxyJump, ssh-agent, and the Docker engine over the
connection. Traffic stays on loopback; every process started here is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sshd import KeyPair, LocalSshd, find_free_port, local_sshd, make_key

from regdeploy.errors import TransportError
from regdeploy.transport import open_transport
from regdeploy.transport.base import FileState
from regdeploy.transport.ssh import SSHTransport

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    tmp = tmp_path_factory.mktemp("keys")
    return {"good": make_key(tmp / "good"), "other": make_key(tmp / "other")}


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, KeyPair]) -> Iterator[LocalSshd]:
    with local_sshd(tmp_path_factory.mktemp("sshd"), find_free_port(), [keys["good"].public]) as server:
        yield server


class Conn:
    """Host variables for the local sshd, and transports opened from them (closed at the end)."""

    def __init__(self, tmp: Path, sshd: LocalSshd, key: KeyPair) -> None:
        self.tmp = tmp
        self.known_hosts = tmp / "known_hosts"
        self.known_hosts.write_text(sshd.known_hosts_line + "\n")
        (tmp / "ssh_config").write_text("")
        self.vars: dict[str, Any] = {
            "ansible_host": "127.0.0.1",
            "ansible_port": sshd.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(key.private),
            "regdeploy_known_hosts": str(self.known_hosts),
            "regdeploy_ssh_config": str(tmp / "ssh_config"),
            "ansible_ssh_timeout": 5,
        }
        self.opened: list[SSHTransport] = []
        self.notes: list[str] = []

    def open(self, **overrides: Any) -> SSHTransport:
        transport = open_transport("testhost", {**self.vars, **overrides}, self.notes.append)
        assert isinstance(transport, SSHTransport)
        self.opened.append(transport)
        return transport

    def close(self) -> None:
        for t in self.opened:
            t.close()


@pytest.fixture
def conn(tmp_path: Path, sshd: LocalSshd, keys: dict[str, KeyPair]) -> Iterator[Conn]:
    c = Conn(tmp_path, sshd, keys["good"])
    yield c
    c.close()


def fails(
    transport: SSHTransport, action: Callable[[SSHTransport], object] = lambda t: t.stat_many(["/"])
) -> str:
    with pytest.raises(TransportError) as info:
        action(transport)
    message = str(info.value)
    assert message.startswith("testhost: ") and "\n" not in message
    return message


# --- host keys and authentication ---------------------------------------------------------------------


def test_unknown_host_key_is_refused_with_its_fingerprint_until_accepted(conn: Conn, sshd: LocalSshd) -> None:
    conn.known_hosts.write_text("")
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(sshd.host_key.private.with_suffix(".pub"))], capture_output=True, text=True
    ).stdout.split()[1]
    message = fails(conn.open())
    assert f"unknown SSH host key for [127.0.0.1]:{sshd.port} (ssh-ed25519 {fingerprint})" in message
    assert f"--accept-new-host-keys to add it to {conn.known_hosts}" in message
    assert conn.known_hosts.read_text() == ""

    assert conn.open(regdeploy_accept_new_host_keys=True).stat_many(["/"])["/"] is not None
    assert conn.known_hosts.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    assert conn.notes and fingerprint in conn.notes[0]
    assert conn.open().stat_many(["/"])["/"] is not None  # known now, no flag needed


def test_changed_host_key_is_refused_even_with_accept_new(
    conn: Conn, sshd: LocalSshd, keys: dict[str, KeyPair]
) -> None:
    impostor = keys["other"].public.split()[:2]
    conn.known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(impostor)}\n")
    message = fails(conn.open(regdeploy_accept_new_host_keys=True))
    assert "has CHANGED" in message and "refuses to connect" in message
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}'" in message
    assert conn.known_hosts.read_text().count("\n") == 1  # not "accepted"


def test_wrong_key_is_an_authentication_failure(conn: Conn, keys: dict[str, KeyPair]) -> None:
    message = fails(conn.open(ansible_ssh_private_key_file=str(keys["other"].private)))
    assert "authentication failed for root@127.0.0.1" in message
    assert f"key {keys['other'].private}" in message and "ansible_ssh_private_key_file" in message


def test_ssh_agent_is_used(conn: Conn, keys: dict[str, KeyPair], monkeypatch: pytest.MonkeyPatch) -> None:
    sock = conn.tmp / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(keys["good"].private)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(conn.tmp))  # no ~/.ssh/id_* of the machine's user in play
        variables = {k: v for k, v in conn.vars.items() if k != "ansible_ssh_private_key_file"}
        transport = open_transport("testhost", variables)
        try:
            assert transport.stat_many(["/"])["/"] is not None
        finally:
            transport.close()
    finally:
        agent.terminate()
        agent.wait(timeout=5)


# --- unreachable hosts: bounded, one line ------------------------------------------------------------


def test_connection_refused(conn: Conn) -> None:
    port = find_free_port()
    message = fails(conn.open(ansible_port=port))
    assert message == f"testhost: connection refused by 127.0.0.1:{port} (is sshd running on that port?)"


def test_silent_server_times_out_within_the_timeout(conn: Conn) -> None:
    # A listener that accepts and never says a word: the SSH banner never comes.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        start = time.monotonic()
        message = fails(conn.open(ansible_port=port, ansible_ssh_timeout=1))
        elapsed = time.monotonic() - start
    assert f"127.0.0.1:{port} did not answer as an SSH server within 1s" in message
    assert elapsed < 5


def test_unresolvable_name(conn: Conn) -> None:
    assert "cannot resolve host name 'regdeploy-test.invalid'" in fails(
        conn.open(ansible_host="regdeploy-test.invalid")
    )


def test_proxyjump_through_ssh_config(conn: Conn, sshd: LocalSshd, keys: dict[str, KeyPair]) -> None:
    config = conn.tmp / "ssh_config"
    config.write_text(
        f"Host jump\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User root\n"
        f"  IdentityFile {keys['good'].private}\n"
        f"Host behind\n  HostName 127.0.0.1\n  Port {sshd.port}\n  ProxyJump jump\n"
    )
    transport = conn.open(ansible_host="behind", ansible_port=None)
    assert [h.alias for h in transport.target.jumps] == ["jump"]
    assert transport.stat_many(["/etc"])["/etc"] == FileState("dir", 0o755, None)
    assert len(transport._clients) == 2  # the jump host's connection, and the host's through it


def test_proxyjump_through_ansible_ssh_common_args(
    conn: Conn, sshd: LocalSshd, keys: dict[str, KeyPair]
) -> None:
    """The way Ansible inventories name a bastion: -o ProxyJump in ansible_ssh_common_args (OpenSSH
    tuning options beside it are ignored); the connection really goes through the jump host. As with
    OpenSSH, the jump host's key comes from ssh_config, not from the target's -i/key variable."""
    (conn.tmp / "ssh_config").write_text(f"Host 127.0.0.1\n  IdentityFile {keys['good'].private}\n")
    jump = f"root@127.0.0.1:{sshd.port}"
    args = f"-o ProxyJump={jump} -o ControlMaster=auto -o ControlPersist=60s"
    transport = conn.open(ansible_ssh_common_args=args)
    assert [str(h) for h in transport.target.jumps] == [jump]
    assert transport.stat_many(["/etc"])["/etc"] == FileState("dir", 0o755, None)
    assert len(transport._clients) == 2  # the jump host's connection, and the host's through it


# --- files ---------------------------------------------------------------------------------------------


def test_files_and_directories(conn: Conn) -> None:
    t = conn.open()
    base = conn.tmp / "host"
    t.makedirs(str(base / "config" / "auth"), 0o700)
    assert (base / "config" / "auth").stat().st_mode & 0o777 == 0o700
    key = base / "config" / "auth" / "htpasswd"
    t.put_file(str(key), b"alice:$2y$...\n", 0o600)
    t.put_file(str(base / "config" / "ca.crt"), b"-----BEGIN CERTIFICATE-----\n", 0o644)
    assert key.read_bytes() == b"alice:$2y$...\n" and key.stat().st_mode & 0o777 == 0o600
    t.put_file(str(key), b"bob:$2y$...\n", 0o640)  # replaces in place, new mode
    assert key.read_bytes() == b"bob:$2y$...\n" and key.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in key.parent.iterdir()) == ["htpasswd"]  # no temp files left
    states = t.stat_many([str(key), str(base / "config"), str(base / "missing")])
    assert states[str(key)] == FileState("file", 0o640, hashlib.sha256(b"bob:$2y$...\n").hexdigest())
    assert states[str(base / "config")] == FileState("dir", (base / "config").stat().st_mode & 0o7777, None)
    assert states[str(base / "missing")] is None
    assert t.read_file(str(key)) == b"bob:$2y$...\n" and t.read_file(str(base / "missing")) is None
    t.chmod(str(key), 0o600)
    assert key.stat().st_mode & 0o777 == 0o600
    assert t.creatable_problem(str(key / "below")) == f"{key} exists and is not a directory"
    assert t.creatable_problem(str(base / "new" / "dir")) is None
    assert t.dir_size(str(base)) and t.dir_size(str(base / "missing")) is None
    assert (t.free_space(str(base / "not" / "yet")) or 0) > 0
    t.remove_tree(str(base))
    assert not base.exists()
    assert "cannot write /nonexistent-dir/x: No such file" in fails(
        t, lambda t: t.put_file("/nonexistent-dir/x", b"", 0o600)
    )


def test_port_in_use(conn: Conn, sshd: LocalSshd) -> None:
    t = conn.open()
    assert t.port_in_use("127.0.0.1", sshd.port) and t.port_in_use("0.0.0.0", sshd.port)
    assert not t.port_in_use("127.0.0.2", sshd.port)


def test_dropped_connection_mid_upload_leaves_the_old_file_and_a_rerun_converges(
    conn: Conn, sshd: LocalSshd
) -> None:
    target = conn.tmp / "big.bin"
    target.write_bytes(b"old content")
    before = set(sshd.session_pids())
    t = conn.open()
    t.stat_many(["/"])  # connected
    (session,) = set(sshd.session_pids()) - before
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            t.put_file(str(target), os.urandom(64 << 20), 0o600)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=upload)
    thread.start()
    deadline = time.monotonic() + 20
    while not any(
        p.name.startswith(".big.bin.regdeploy-") and p.stat().st_size > 0 for p in conn.tmp.iterdir()
    ):
        assert time.monotonic() < deadline, "the upload never started"
        time.sleep(0.005)
    os.kill(session, signal.SIGKILL)  # the network goes away mid-transfer
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], TransportError)
    assert str(errors[0]).startswith("testhost: ") and "big.bin" in str(errors[0])
    assert target.read_bytes() == b"old content"  # never half-written

    again = conn.open()
    again.put_file(str(target), b"new content", 0o600)
    assert target.read_bytes() == b"new content"
    assert [p.name for p in conn.tmp.iterdir() if ".regdeploy-" in p.name] == []  # the stale temp is gone


# --- the Docker engine over the same connection -----------------------------------------------------------


def test_engine_and_sdk_over_the_connection(conn: Conn, registry_image: str) -> None:
    t = conn.open()
    assert t.engine().inspect_image(registry_image) is not None
    assert t.engine().inspect_container("regdeploy-test-no-such-container") is None
    client = t.docker()
    assert client.version()["ApiVersion"] >= "1.41"
    assert client.images.get(registry_image).id == t.engine().inspect_image(registry_image)["Id"]  # type: ignore[index]
    assert len(t._clients) == 1  # everything above went through one SSH connection


def test_engine_socket_absent_or_dead(conn: Conn) -> None:
    absent = conn.tmp / "absent.sock"
    assert fails(conn.open(regdeploy_docker_host=f"unix://{absent}"), lambda t: t.engine()) == (
        f"testhost: the Docker engine is not running ({absent} does not exist)"
    )
    stale = conn.tmp / "stale.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(stale))  # bound, never listening: what a crashed engine leaves behind
        message = fails(conn.open(regdeploy_docker_host=f"unix://{stale}"), lambda t: t.engine())
    assert message == f"testhost: the Docker engine is not running ({stale} refuses connections)"


def test_close_is_idempotent_and_reconnect_is_refused_after_a_drop(conn: Conn, sshd: LocalSshd) -> None:
    before = set(sshd.session_pids())
    t = conn.open()
    t.stat_many(["/"])
    for pid in set(sshd.session_pids()) - before:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with contextlib.suppress(TransportError):
            t.stat_many(["/"])
            time.sleep(0.05)
            continue
        break
    message = fails(t)
    assert "SSH connection" in message
    t.close()
    t.close()
