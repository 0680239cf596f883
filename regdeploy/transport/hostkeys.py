"""Host key checks against known_hosts: a known key passes, an unknown key is refused with its
fingerprint (or added, only when the user said so), a changed key is always refused.

OpenSSH's rules, with one difference on purpose: there is no way to switch checking off.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import fnmatch
import hashlib
import hmac
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko

from regdeploy.errors import TransportError

# Hosts of one run add keys to the same file from several threads; flock covers other processes.
_APPEND_LOCK = threading.Lock()
# known_hosts files are read once per run, not once per host, and only the lines naming the host
# become keys. paramiko's HostKeys.load() builds a key for every line and checks each name against
# all earlier entries (an HMAC per hashed one): for a known_hosts of a few hundred lines that costs
# more than the SSH handshake, and it was paid again for every host. Keyed by path, mtime and size,
# so a key appended during the run is seen.
_INDEX: dict[tuple[str, int, int], list[_Line]] = {}
_INDEX_LOCK = threading.Lock()

Notify = Callable[[str], None]


class HostKeyError(TransportError):
    """The host's SSH key is unknown or differs from the recorded one: nothing was sent to it."""


def fingerprint(key: paramiko.PKey) -> str:
    """``ssh-ed25519 SHA256:…``, the form `ssh-keygen -lf` and OpenSSH's prompts show."""
    return f"{key.get_name()} {key.fingerprint}"


def load_known_hosts(client: paramiko.SSHClient, files: list[str], name: str) -> set[tuple[str, str]]:
    """Give *client* the keys recorded for *name* (``Hop.known_hosts_name``) in the readable
    known_hosts *files* (missing files are simply empty). As with paramiko's own loading, the first
    key of each type wins, in file order. Returns the keys marked ``@revoked`` for *name* (as
    ``(type, base64)``): they are never loaded, and :class:`CheckPolicy` refuses them."""
    lines = [line for file in files for line in _index(Path(file)) if line.matches(name)]
    revoked = {(line.keytype, line.blob) for line in lines if line.marker == "@revoked"}
    keys = client.get_host_keys()
    seen: set[str] = set()
    for line in lines:
        if line.marker or line.keytype in seen or (line.keytype, line.blob) in revoked:
            continue
        key = line.key()
        if key is not None:
            seen.add(line.keytype)
            keys.add(name, key.get_name(), key)
    return revoked


@dataclass(frozen=True)
class _Line:
    """One known_hosts line, its key still undecoded: ``names`` plain or hashed (``|1|salt|hmac``)."""

    names: tuple[str, ...]
    keytype: str
    blob: str
    marker: str = ""  # "" or "@revoked" ("@cert-authority" lines are not kept: no certificates here)

    def matches(self, name: str) -> bool:
        for entry in self.names:
            if entry == name:
                return True
            if self.marker and any(c in entry for c in "*?") and fnmatch.fnmatchcase(name, entry):
                return True  # "@revoked * ssh-ed25519 ...": a pattern, as OpenSSH reads it
            if entry.startswith("|1|"):
                salt, _, digest = entry[3:].partition("|")
                with contextlib.suppress(ValueError, binascii.Error):
                    mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
                    if hmac.compare_digest(base64.b64encode(mac).decode(), digest):
                        return True
        return False

    def key(self) -> paramiko.PKey | None:
        try:
            return paramiko.PKey.from_type_string(self.keytype, base64.b64decode(self.blob))
        except (paramiko.SSHException, paramiko.pkey.UnknownKeyType, ValueError, binascii.Error):
            return None  # a key type paramiko does not know, or a damaged line: as paramiko skips it


def _index(path: Path) -> list[_Line]:
    try:
        st = path.stat()
    except OSError:
        return []
    if not path.is_file():
        return []
    cache_key = (str(path), st.st_mtime_ns, st.st_size)
    with _INDEX_LOCK:
        lines = _INDEX.get(cache_key)
        if lines is None:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise TransportError(f"cannot read known_hosts file {path}: {exc}") from None
            for stale in [k for k in _INDEX if k[0] == str(path)]:
                del _INDEX[stale]  # an earlier version of the file (a key was appended since)
            lines = _INDEX[cache_key] = _parse(text)
    return lines


def _parse(text: str) -> list[_Line]:
    out = []
    for raw in text.splitlines():
        fields = raw.split()
        if fields and fields[0] == "@revoked" and len(fields) >= 4:
            out.append(_Line(tuple(fields[1].split(",")), fields[2], fields[3], "@revoked"))
            continue
        # Comments, blank lines and @cert-authority lines (host certificates are not supported).
        if len(fields) < 3 or fields[0].startswith(("#", "@")):
            continue
        out.append(_Line(tuple(fields[0].split(",")), fields[1], fields[2]))
    return out


def revoked_key_message(host: str, name: str, key: paramiko.PKey) -> str:
    return (
        f"{host}: the SSH host key of {name} ({fingerprint(key)}) is marked @revoked in known_hosts; "
        "regdeploy refuses to connect"
    )


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
            text = ""
            with contextlib.suppress(OSError, UnicodeDecodeError):
                text = path.read_text(encoding="utf-8")
            if any(not line.marker and line.matches(name) for line in _parse(text)):
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

    def __init__(
        self,
        host: str,
        known_hosts: str,
        accept_new: bool,
        notify: Notify,
        revoked: set[tuple[str, str]] | None = None,
    ) -> None:
        self.host = host
        self.known_hosts = known_hosts
        self.accept_new = accept_new
        self.notify = notify
        self.revoked = revoked or set()

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        # A revoked key is never loaded as known, so it always lands here, before authentication.
        if (key.get_name(), key.get_base64()) in self.revoked:
            raise HostKeyError(revoked_key_message(self.host, hostname, key))
        if not self.accept_new:
            raise HostKeyError(unknown_key_message(self.host, hostname, key, self.known_hosts))
        if append_known_host(self.known_hosts, hostname, key):
            self.notify(f"added the SSH host key of {hostname} ({fingerprint(key)}) to {self.known_hosts}")
        client.get_host_keys().add(hostname, key.get_name(), key)
