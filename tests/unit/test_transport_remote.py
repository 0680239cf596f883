"""The SSH transport's shell commands: pure builders and parsers, and the scripts run by a real sh."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path

import pytest

from regdeploy.transport import remote
from regdeploy.transport.base import FileState


def run_sh(argv: list[str]) -> str:
    # The same argv the transport sends, run by the local sh: the scripts are tested, not mocked.
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10).stdout


def test_stat_script_and_parser_agree_with_the_filesystem(tmp_path: Path) -> None:
    data = tmp_path / "config.yml"
    data.write_bytes(b"version: 0.1\n")
    data.chmod(0o600)
    sub = tmp_path / "certs"
    sub.mkdir(mode=0o750)
    sub.chmod(0o750)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(data)
    odd = tmp_path / "with space and 'quote'"
    odd.write_text("x")
    backslash = tmp_path / "back\\slash"
    backslash.write_text("y")
    paths = [
        str(p) for p in (data, sub, fifo, link, odd, backslash, tmp_path / "absent", data / "below-a-file")
    ]
    parsed = remote.parse_stat(paths, run_sh(remote.sh(remote.STAT_SCRIPT, *paths)))
    digest = hashlib.sha256(b"version: 0.1\n").hexdigest()
    assert parsed == {
        str(data): FileState("file", 0o600, digest),
        str(sub): FileState("dir", 0o750, None),
        str(fifo): FileState("other", fifo.stat().st_mode & 0o7777, None),
        str(link): FileState("file", 0o600, digest),  # followed, as os.stat does
        str(odd): FileState("file", odd.stat().st_mode & 0o7777, hashlib.sha256(b"x").hexdigest()),
        str(backslash): FileState(
            "file", backslash.stat().st_mode & 0o7777, hashlib.sha256(b"y").hexdigest()
        ),
        str(tmp_path / "absent"): None,
        str(data / "below-a-file"): None,
    }


def test_stat_parser_reports_denied_and_rejects_garbage() -> None:
    digest = "0" * 64
    output = (
        f"D /a\nS 41ed 0 0 /b\nS 8180 0 0 /c\nD /c\nS 81a4 65532 65532 /d e\n{digest}  /d e\n"
        f"\\{digest}  /f\\\\g\nS 81a4 0 0 /f\\g\n"
    )
    assert remote.parse_stat(["/a", "/b", "/c", "/d e", "/f\\g", "/h"], output) == {
        "/a": "denied",  # below a directory this user may not enter
        "/b": FileState("dir", 0o755, None),
        "/c": "denied",  # a file whose content could not be read
        "/d e": FileState("file", 0o644, digest, 65532, 65532),
        "/f\\g": FileState("file", 0o644, digest),  # sha256sum escapes a backslash in a name
        "/h": None,
    }
    with pytest.raises(ValueError, match="unexpected line"):
        remote.parse_stat(["/a"], "sh: 1: stat: not found\n")
    with pytest.raises(ValueError, match="no checksum for /c"):  # an answer cut short is not "absent"
        remote.parse_stat(["/c"], "S 81a4 0 0 /c\n")


def test_creatable_script(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")

    def problem(path: Path) -> str | None:
        return remote.parse_creatable(run_sh(remote.sh(remote.CREATABLE_SCRIPT, str(path))))

    assert problem(tmp_path / "new" / "deeper") is None
    assert problem(blocker / "data") == f"{blocker} exists and is not a directory"
    assert problem(dangling / "data") == f"{dangling} is a dangling symlink"
    assert remote.parse_creatable("notwritable /srv") == "/srv is not writable by this user"
    assert remote.parse_creatable("readonly /ro") == "/ro is on a read-only filesystem"
    assert "cannot check" in (remote.parse_creatable("garbage") or "")


def test_free_script(tmp_path: Path) -> None:
    free = remote.parse_df(run_sh(remote.sh(remote.FREE_SCRIPT, str(tmp_path / "not" / "yet"))))
    st = os.statvfs(tmp_path)
    assert abs(free - st.f_bavail * st.f_frsize) < 64 << 20  # other processes write meanwhile


def test_docker_socket_script(tmp_path: Path) -> None:
    def state(path: Path) -> str:
        return run_sh(remote.sh(remote.DOCKER_SOCKET_SCRIPT, str(path))).strip()

    assert state(tmp_path / "absent.sock") == "absent"
    plain = tmp_path / "plain"
    plain.write_text("")
    assert state(plain) == "notsocket"
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        assert state(sock_path) == "access"  # root, or the socket's group


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 00000000:1389 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1
   3: 0200A8C0:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:138A 00000000000000000000000000000000:0000 0A 0 0 0 0 0 5 1
   1: 0000000000000000FFFF00000A00000A:1F91 00000000000000000000000000000000:0000 0A 0 0 0 0 0 6 1
"""


def test_listening_sockets_from_proc_net_tcp() -> None:
    assert remote.listening(PROC_NET_TCP) == {
        ("127.0.0.1", 8080),
        ("0.0.0.0", 5001),
        ("192.168.0.2", 22),
        ("::", 5002),
        ("10.0.0.10", 8081),  # v4-mapped v6 reads as the IPv4 address
    }


@pytest.mark.parametrize(
    ("bind", "port", "in_use"),
    [
        ("0.0.0.0", 8080, True),  # a wildcard bind collides with any listener on the port
        ("127.0.0.1", 8080, True),
        ("10.0.0.1", 8080, False),
        ("10.0.0.1", 5001, True),  # a wildcard listener blocks every address
        ("127.0.0.1", 5002, True),  # so does [::]
        ("127.0.0.1", 9999, False),
    ],
)
def test_port_conflicts(bind: str, port: int, in_use: bool) -> None:
    assert remote.port_conflicts(remote.listening(PROC_NET_TCP), bind, port) is in_use


def test_listening_matches_the_kernel() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        text = Path("/proc/net/tcp").read_text() + Path("/proc/net/tcp6").read_text()
        assert ("127.0.0.1", port) in remote.listening(text)
        assert remote.port_conflicts(remote.listening(text), "0.0.0.0", port)
