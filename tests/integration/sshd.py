"""A private OpenSSH server on 127.0.0.1 for transport tests (LAB.md: sshd with its own config, host
key, port and authorized keys; no lab host needed). Imported by test modules; not a conftest.

Also the key helpers the lab uses: ed25519 keys made in-process (no ssh-keygen round trips).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class KeyPair:
    private: Path  # OpenSSH format, 0600
    public: str  # "ssh-ed25519 AAAA… comment"


def make_key(path: Path, comment: str = "regdeploy-test") -> KeyPair:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    text = f"{public.decode()} {comment}"
    path.with_suffix(".pub").write_text(text + "\n")
    return KeyPair(path, text)


def find_free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class LocalSshd:
    """``sshd -D`` as a child of the test process, listening on 127.0.0.1:PORT only."""

    def __init__(self, root: Path, port: int, authorized: list[str], extra_config: str = "") -> None:
        self.root = root
        self.port = port
        root.mkdir(parents=True, exist_ok=True)
        self.host_key = make_key(root / "ssh_host_ed25519_key", "regdeploy-test-host")
        self.authorized_keys = root / "authorized_keys"
        self.authorized_keys.write_text("".join(line + "\n" for line in authorized))
        self.config = root / "sshd_config"
        self.config.write_text(
            f"Port {port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key.private}\n"
            f"PidFile {root}/sshd.pid\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "PermitRootLogin prohibit-password\nStrictModes no\n"
            "AllowTcpForwarding yes\nAllowStreamLocalForwarding yes\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n"
            "LogLevel ERROR\n" + extra_config
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def known_hosts_line(self) -> str:
        key_type, key_b64 = self.host_key.public.split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key_b64}"

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        self.proc = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "sshd.log", "ab"),  # noqa: SIM115 - the child keeps it
        )
        try:
            wait_for_port("127.0.0.1", self.port)
        except OSError:
            self.stop()
            raise RuntimeError(f"sshd did not start: {(self.root / 'sshd.log').read_text()}") from None

    def stop(self) -> None:
        """Stop the listener (sessions already open live on in their own sshd processes)."""
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def session_pids(self) -> list[int]:
        """Per-connection sshd processes this server forked (children of our sshd)."""
        if self.proc is None:
            return []
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in children.read_text().split()] if children.exists() else []


@contextlib.contextmanager
def local_sshd(root: Path, port: int, authorized: list[str], extra_config: str = "") -> Iterator[LocalSshd]:
    if not SSHD.exists():
        pytest.fail(
            "/usr/sbin/sshd is missing (Debian package openssh-server): run scripts/setup.sh", pytrace=False
        )
    server = LocalSshd(root, port, authorized, extra_config)
    server.start()
    try:
        yield server
    finally:
        server.stop()
