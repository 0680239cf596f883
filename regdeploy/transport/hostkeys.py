"""Host key checks against known_hosts: a known key passes, an unknown key is refused with its
fingerprint (or added, only when the user said so), a changed key is always refused.

OpenSSH's rules, with one difference on purpose: there is no way to switch checking off.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko

from regdeploy.errors import TransportError

# Hosts of one run add keys to the same file from several threads; flock covers other processes.
_APPEND_LOCK = threading.Lock()

Notify = Callable[[str], None]


class HostKeyError(TransportError):
    """The host's SSH key is unknown or differs from the recorded one: nothing was sent to it."""


def fingerprint(key: paramiko.PKey) -> str:
    """``ssh-ed25519 SHA256:…``, the form `ssh-keygen -lf` and OpenSSH's prompts show."""
    return f"{key.get_name()} {key.fingerprint}"


def load_known_hosts(client: paramiko.SSHClient, files: list[str]) -> None:
    """Add every readable known_hosts file to *client*'s keys (missing files are simply empty)."""
    keys = client.get_host_keys()
    for name in files:
        path = Path(name)
        if not path.is_file():
            continue
        try:
            keys.load(str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise TransportError(f"cannot read known_hosts file {path}: {exc}") from None


def unknown_key_message(host: str, name: str, key: paramiko.PKey, known_hosts: str) -> str:
    return (
        f"{host}: unknown SSH host key for {name} ({fingerprint(key)}); compare it with the key on the "
        f"host (`ssh-keygen -lf /etc/ssh/ssh_host_{_short_type(key)}_key.pub`), then re-run with "
        f"--accept-new-host-keys to add it to {known_hosts}"
    )


def changed_key_message(
    host: str, name: str, offered: paramiko.PKey, expected: paramiko.PKey, known_hosts: str
) -> str:
    return (
        f"{host}: the SSH host key of {name} has CHANGED (known: {fingerprint(expected)}; offered now: "
        f"{fingerprint(offered)}); someone may be intercepting the connection, or the host was "
        f"reinstalled. regdeploy refuses to connect. If the change is expected, remove the old key "
        f"(`ssh-keygen -R '{name}' -f {known_hosts}`) and re-run with --accept-new-host-keys"
    )


def _short_type(key: paramiko.PKey) -> str:
    name = key.get_name()
    if "ed25519" in name:
        return "ed25519"
    if "ecdsa" in name:
        return "ecdsa"
    return "rsa"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with _APPEND_LOCK:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
    finally:
        os.close(fd)  # also releases the flock


def append_known_host(known_hosts: str, name: str, key: paramiko.PKey) -> bool:
    """Add ``name key`` to *known_hosts* unless an entry for it is already there; True if written."""
    path = Path(known_hosts)
    try:
        with _locked(path) as fd:
            existing = paramiko.HostKeys()
            with contextlib.suppress(OSError, UnicodeDecodeError):
                existing.load(str(path))
            if existing.lookup(name) is not None:
                return False  # another thread or process of this run added it first
            entry = paramiko.hostkeys.HostKeyEntry([name], key)
            line = entry.to_line()
            if line is None:
                raise TransportError(f"cannot record the host key of {name}")
            if os.fstat(fd).st_size > 0 and not _ends_with_newline(path):
                line = "\n" + line
            os.write(fd, line.encode())
            return True
    except OSError as exc:
        raise TransportError(f"cannot add the host key of {name} to {path}: {exc.strerror}") from None


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


class CheckPolicy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko only for a host with no recorded key at all (a differing key raises
    BadHostKeyException before this): refuse, or add it when --accept-new-host-keys was given."""

    def __init__(self, host: str, known_hosts: str, accept_new: bool, notify: Notify) -> None:
        self.host = host
        self.known_hosts = known_hosts
        self.accept_new = accept_new
        self.notify = notify

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.accept_new:
            raise HostKeyError(unknown_key_message(self.host, hostname, key, self.known_hosts))
        if append_known_host(self.known_hosts, hostname, key):
            self.notify(f"added the SSH host key of {hostname} ({fingerprint(key)}) to {self.known_hosts}")
        client.get_host_keys().add(hostname, key.get_name(), key)
