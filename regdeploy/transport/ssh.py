"""A remote host over SSH: one paramiko connection per host for the whole run.

Files go over SFTP (atomic: a temp file in the same directory, its mode set before any byte, then
``posix-rename``), the few commands are exec requests answering in one round trip each, and the
Docker SDK talks to the engine through channels of the same connection (:mod:`.dockerssh`).

With ``ansible_become`` for a user other than root, root's work goes through ``sudo -n``: commands are
prefixed, SFTP runs as a ``sudo``-started sftp-server, and the engine is reached with
``sudo -n docker system dial-stdio`` if the user cannot open its socket. sudo never prompts: a
password requirement is reported, not answered.

Every wait is bounded: TCP connect, banner, key exchange and auth by the connect timeout (10 s by
default), each command and SFTP/Docker read by IO_TIMEOUT; keepalives and TCP_USER_TIMEOUT make a
vanished host fail instead of hang.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import posixpath
import secrets
import select
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import paramiko

from regdeploy.errors import TransportError
from regdeploy.transport import remote
from regdeploy.transport.base import FileState, UnixStream
from regdeploy.transport.dockerssh import ENGINE_ERRORS, ChannelEngine, FirstThenOpen, StreamlocalTransport
from regdeploy.transport.engine import API_VERSION
from regdeploy.transport.hostkeys import (
    CheckPolicy,
    HostKeyError,
    changed_key_message,
    load_known_hosts,
)
from regdeploy.transport.sshconfig import Hop, SshTarget

if TYPE_CHECKING:
    import docker

    from regdeploy.transport.engine_api import Engine

# paramiko logs transport-thread failures (with tracebacks) at ERROR; without any handler configured,
# Python would print them on stderr next to regdeploy's own one-line error. A NullHandler keeps them
# out of the terminal while an application that configures logging still sees them.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

IO_TIMEOUT = 60.0  # one command, one SFTP request, one Docker API read
DU_TIMEOUT = 300.0  # `du` over a big registry walks every blob
KEEPALIVE = 10  # seconds between SSH keepalives: they make a dead TCP peer visible ...
TCP_USER_TIMEOUT_MS = 30_000  # ... and the kernel gives up on unacknowledged data after this long
MIN_API = (1, 41)  # Docker 20.10; see engine.API_VERSION
SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                "/usr/lib/ssh/sftp-server", "/usr/libexec/sftp-server", "/usr/lib/sftp-server")  # fmt: skip
_SFTP_SERVER_SCRIPT = (
    'for p in "$@"; do [ -x "$p" ] && exec "$p"; done; echo "no sftp-server found" >&2; exit 127'
)

Notify = Callable[[str], None]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _socket_error(host: str, hop: Hop, exc: OSError, timeout: float) -> TransportError:
    where = f"{hop.hostname}:{hop.port}"
    if isinstance(exc, socket.timeout | TimeoutError):
        return TransportError(f"{host}: unreachable: no answer from {where} within {timeout:g}s")
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(f"{host}: connection refused by {where} (is sshd running on that port?)")
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
        return TransportError(f"{host}: unreachable: {exc.strerror} ({where})")
    return TransportError(f"{host}: cannot connect to {where}: {_reason(exc)}")


def _open_socket(host: str, hop: Hop, timeout: float) -> socket.socket:
    try:
        infos = socket.getaddrinfo(hop.hostname, hop.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TransportError(f"{host}: cannot resolve host name {hop.hostname!r}: {exc.strerror}") from None
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            sock.connect(addr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS)
        return sock
    assert last is not None
    raise _socket_error(host, hop, last, timeout)


def _sudo_refused(result: Result) -> bool:
    """Whether sudo itself failed (rather than the command it ran)."""
    return result.err.startswith("sudo:") or (result.code == 127 and "sudo" in result.err)


def _to_stderr(host: str, message: str) -> None:
    print(f"[{host}] {message}", file=sys.stderr, flush=True)


class SSHTransport:
    """The Transport protocol over SSH. Connects on first use; ``close()`` ends the connection."""

    def __init__(self, target: SshTarget, notify: Notify | None = None) -> None:
        self.host = target.host
        self.target = target
        # Without a progress printer (status, users, verify, down, certs), notices such as an added
        # host key still reach the user: on stderr, as progress lines do, never into --json stdout.
        self._notify = notify or (lambda message: _to_stderr(target.host, message))
        self._clients: list[paramiko.SSHClient] = []  # jump hosts first, the host itself last
        self._sftp: paramiko.SFTPClient | None = None
        self._engine: ChannelEngine | None = None
        self._identity: tuple[int, int] | None = None
        self._opener: FirstThenOpen | None = None
        self._docker: Any = None
        self._cleaned_dirs: set[str] = set()
        self._lock = threading.Lock()

    # --- connection -----------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self.target.hop.hostname

    def _ssh(self) -> paramiko.SSHClient:
        with self._lock:  # one connection, even if the SDK pool and a command ask at once
            if not self._clients:
                self._connect()
            transport = self._clients[-1].get_transport()
            if transport is None or not transport.is_active():
                raise TransportError(f"{self.host}: the SSH connection to {self.target.hop} was lost")
            return self._clients[-1]

    def _connect(self) -> None:
        target = self.target
        hops = (*target.jumps, target.hop)
        sock: Any = None
        for i, hop in enumerate(hops):
            via = f" (via jump host {hops[i - 1].alias})" if i else ""
            if i == 0:
                sock = _open_socket(self.host, hop, target.timeout)
            else:
                previous = self._clients[-1].get_transport()
                assert previous is not None
                try:
                    sock = previous.open_channel(
                        "direct-tcpip", (hop.hostname, hop.port), ("127.0.0.1", 0), timeout=target.timeout
                    )
                except (paramiko.SSHException, OSError) as exc:
                    self.close()
                    raise TransportError(
                        f"{self.host}: jump host {hops[i - 1].alias} cannot reach {hop.hostname}:{hop.port}: "
                        f"{_reason(exc)}"
                    ) from None
            try:
                self._clients.append(self._handshake(hop, sock))
            except TransportError as exc:
                self.close()
                raise type(exc)(f"{exc}{via}") from None

    def _handshake(self, hop: Hop, sock: Any) -> paramiko.SSHClient:
        target = self.target
        client = paramiko.SSHClient()
        known = [target.known_hosts, *target.global_known_hosts]
        revoked = load_known_hosts(client, known, hop.known_hosts_name)
        # accept-new from the host's own ssh settings is for the host, not for the jump hosts on the
        # way (OpenSSH does not pass -o options to them); --accept-new-host-keys is for every hop.
        accept_new = target.accept_new if hop is target.hop else target.accept_new_jumps
        client.set_missing_host_key_policy(
            CheckPolicy(self.host, target.known_hosts, accept_new, self._notify, revoked)
        )
        try:
            client.connect(
                hop.hostname,
                hop.port,
                username=hop.user,
                key_filename=cast(Any, list(hop.key_files) or None),  # paramiko takes a list too
                allow_agent=hop.allow_agent,
                look_for_keys=hop.look_for_keys,
                # The key exchange gets a little longer than the banner: when both expire together,
                # paramiko reports "No existing session" instead of the missing banner.
                timeout=target.timeout + 1,
                banner_timeout=target.timeout,
                auth_timeout=target.timeout,
                channel_timeout=target.timeout,
                sock=sock,
                transport_factory=cast(Any, StreamlocalTransport),
            )
        except HostKeyError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                changed_key_message(
                    self.host, hop.known_hosts_name, exc.key, exc.expected_key, target.known_hosts
                )
            ) from None
        except paramiko.PasswordRequiredException:
            client.close()
            raise TransportError(
                f"{self.host}: authentication failed for {hop}: the private key is passphrase-protected; "
                "load it into ssh-agent (ssh-add) instead"
            ) from None
        except paramiko.AuthenticationException:
            client.close()
            raise TransportError(
                f"{self.host}: authentication failed for {hop} (offered: {self._offered(hop)}); "
                "check ansible_user and ansible_ssh_private_key_file"
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            text = _reason(exc)
            if "banner" in text.lower():
                raise TransportError(
                    f"{self.host}: {hop.hostname}:{hop.port} did not answer as an SSH server within "
                    f"{target.timeout:g}s"
                ) from None
            if text in ("No existing session", "Negotiation failed."):
                raise TransportError(
                    f"{self.host}: {hop.hostname}:{hop.port} did not complete the SSH handshake within "
                    f"{target.timeout + 1:g}s"
                ) from None
            raise TransportError(f"{self.host}: SSH connection to {hop} failed: {text}") from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(KEEPALIVE)
        return client

    @staticmethod
    def _offered(hop: Hop) -> str:
        parts = [f"key {k}" for k in hop.key_files]
        if hop.allow_agent:
            parts.append("ssh-agent keys")
        if hop.look_for_keys:
            parts.append("~/.ssh/id_* keys")
        return ", ".join(parts) or "nothing"

    def _sudo_problem(self, result: Result) -> str:
        user, err = self.target.hop.user, result.err.strip()
        if "password is required" in err or "a terminal is required" in err:
            return (
                f"{self.host}: sudo on this host needs a password for {user}; regdeploy runs sudo "
                f"non-interactively (sudo -n): allow {user} passwordless sudo (NOPASSWD), or connect as root"
            )
        if "not in the sudoers" in err or "not allowed to" in err or "may not run sudo" in err:
            return f"{self.host}: {user} may not use sudo on this host (ansible_become is set)"
        if result.code == 127 and "sudo" in err:
            return f"{self.host}: sudo is not installed on this host (ansible_become is set)"
        return f"{self.host}: sudo failed for {user}: {err[:200] or f'exit code {result.code}'}"

    # --- commands -----------------------------------------------------------------------------------

    def _argv(self, argv: Sequence[str], root: bool) -> str:
        if root and self.target.sudo:
            argv = ["sudo", "-n", "-u", self.target.become_user, "--", *argv]
        return shlex.join(argv)

    def _exec(self, argv: Sequence[str], *, root: bool = False, timeout: float = IO_TIMEOUT) -> Result:
        """Run *argv* (quoted; never carries secrets) and collect its exit code and output."""
        command = self._argv(argv, root)
        transport = self._ssh().get_transport()
        assert transport is not None
        deadline = time.monotonic() + timeout
        try:
            chan = transport.open_session(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._lost(exc, f"running {argv[0]}") from None
        try:
            chan.settimeout(timeout)
            chan.exec_command(command)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                    continue
                if chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                    continue
                # sshd may send the exit status before the last output: the end is EOF and status
                # (and data that came with the EOF since the checks above is read first).
                done = chan.eof_received and chan.exit_status_ready()
                if done and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportError(f"{self.host}: `{argv[0]}` did not finish within {timeout:g}s")
                if chan.eof_received:
                    chan.status_event.wait(min(left, 1.0))  # the pipe stays readable after EOF
                else:
                    # The channel's pipe becomes readable on stdout data, stderr data and EOF.
                    select.select([chan], [], [], min(left, 1.0))
            code = chan.recv_exit_status()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._lost(exc, f"running {argv[0]}") from None
        finally:
            chan.close()
        result = Result(code, out.decode(errors="replace"), err.decode(errors="replace"))
        # sudo is not checked up front (a round trip per host): its refusal shows on first use.
        if code != 0 and root and self.target.sudo and _sudo_refused(result):
            raise TransportError(self._sudo_problem(result))
        return result

    def _checked(
        self, argv: Sequence[str], what: str, *, root: bool = True, timeout: float = IO_TIMEOUT
    ) -> str:
        result = self._exec(argv, root=root, timeout=timeout)
        if result.code != 0:
            detail = " ".join(result.err.split())[:300] or f"exit code {result.code}"
            raise TransportError(f"{self.host}: {what}: {detail}")
        return result.out

    def _lost(self, exc: BaseException, doing: str) -> TransportError:
        return TransportError(f"{self.host}: the SSH connection broke while {doing}: {_reason(exc)}")

    # --- Transport protocol: files -------------------------------------------------------------

    def stat_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        if not paths:
            return {}
        out = self._checked(remote.sh(remote.STAT_SCRIPT, *paths), "cannot inspect files")
        try:
            parsed = remote.parse_stat(paths, out)
        except ValueError as exc:
            raise TransportError(f"{self.host}: unexpected answer while inspecting files: {exc}") from None
        result: dict[str, FileState | None] = {}
        for path, state in parsed.items():
            if isinstance(state, str):
                raise TransportError(
                    f"{self.host}: cannot inspect {path}: permission denied{self._become_hint}"
                )
            result[path] = state
        return result

    @property
    def _become_hint(self) -> str:
        if self.target.hop.user == "root" or self.target.become:
            return ""
        return f" for {self.target.hop.user} (set ansible_become: true to work as root via sudo)"

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is not None:
            return self._sftp
        transport = self._ssh().get_transport()
        assert transport is not None
        try:
            if self.target.sudo:
                # An sftp-server started through sudo: the same SFTP protocol, with root's rights.
                chan = transport.open_session(timeout=self.target.timeout)
                chan.exec_command(self._argv(["sh", "-c", _SFTP_SERVER_SCRIPT, "sh", *SFTP_SERVERS], True))
                try:
                    sftp = paramiko.SFTPClient(chan)
                except (paramiko.SSHException, EOFError):
                    err = chan.recv_stderr(4096).decode(errors="replace") if chan.recv_stderr_ready() else ""
                    status = chan.recv_exit_status() if chan.exit_status_ready() else -1
                    refused = Result(status, "", err)
                    if _sudo_refused(refused):
                        raise TransportError(self._sudo_problem(refused)) from None
                    raise
            else:
                opened = paramiko.SFTPClient.from_transport(transport, window_size=None)
                if opened is None:
                    raise paramiko.SSHException("the server refused the sftp subsystem")
                sftp = opened
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"{self.host}: cannot start SFTP: {_reason(exc)}") from None
        channel = sftp.get_channel()
        if channel is not None:
            channel.settimeout(IO_TIMEOUT)
        self._sftp = sftp
        return sftp

    def _file_error(self, exc: BaseException, action: str, path: str) -> TransportError:
        if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES:
            return TransportError(
                f"{self.host}: cannot {action} {path}: permission denied{self._become_hint}"
            )
        if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
            return TransportError(f"{self.host}: cannot {action} {path}: {exc.strerror}")
        return self._lost(exc, f"{action.rstrip('e')}ing {path}")

    def read_file(self, path: str) -> bytes | None:
        sftp = self._sftp_client()
        try:
            with sftp.open(path, "rb") as fh:
                fh.prefetch()
                return fh.read()
        except FileNotFoundError:
            return None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return None
            raise self._file_error(exc, "read", path) from None

    def put_file(self, path: str, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
        directory, name = posixpath.split(path)
        tmp = posixpath.join(directory, f".{name}.regdeploy-{secrets.token_hex(6)}")
        sftp = self._sftp_client()
        self._remove_stale_temps(sftp, directory)
        try:
            with sftp.open(tmp, "wbx") as fh:  # x: never follow or reuse something already there
                fh.chmod(mode)  # before the first byte: a key is never readable by others
                if owner is not None:
                    fh.chown(*owner)
                fh.set_pipelined(True)
                fh.write(data)
            # posix-rename@openssh.com replaces the target atomically; plain SFTP rename refuses to.
            sftp.posix_rename(tmp, path)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            with contextlib.suppress(Exception):  # the connection may be what failed
                sftp.remove(tmp)
            raise self._file_error(exc, "write", path) from None

    def _remove_stale_temps(self, sftp: paramiko.SFTPClient, directory: str) -> None:
        """Temp files of a run whose connection died mid-upload: harmless, but not to be left behind."""
        if directory in self._cleaned_dirs:
            return
        self._cleaned_dirs.add(directory)
        try:
            names = sftp.listdir(directory)
        except (OSError, paramiko.SSHException):
            return  # put_file will report the real problem with the directory
        for entry in names:
            if entry.startswith(".") and ".regdeploy-" in entry:
                with contextlib.suppress(OSError, paramiko.SSHException):
                    sftp.remove(posixpath.join(directory, entry))

    def makedirs(self, path: str, mode: int) -> None:
        octal = f"{mode:o}"
        self._checked(
            remote.sh('mkdir -p -- "$1" && chmod "$2" -- "$1"', path, octal),
            f"cannot create directory {path}",
        )

    def chown(self, path: str, uid: int, gid: int, recursive: bool = False) -> None:
        flags = ["-R"] if recursive else []
        self._checked(
            ["chown", "-h", *flags, f"{uid}:{gid}", "--", path], f"cannot chown {path}"
        )

    def identity(self) -> tuple[int, int]:
        if self._identity is None:
            out = self._checked(["sh", "-c", "id -u; id -g"], "cannot tell which user writes files")
            try:
                uid, gid = (int(x) for x in out.split())
            except ValueError:
                raise TransportError(f"{self.host}: unexpected answer of `id`: {out[:100]!r}") from None
            self._identity = (uid, gid)
        return self._identity

    def chmod(self, path: str, mode: int) -> None:
        try:
            self._sftp_client().chmod(path, mode)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._file_error(exc, "chmod", path) from None

    def remove_tree(self, path: str) -> None:
        result = self._exec(["rm", "-rf", "--", path], root=True)
        if result.code == 0:
            return
        if "Permission denied" in result.err and not self.target.sudo and self.target.hop.user != "root":
            # Files of another user: a registry of an earlier version (root) or a registry.run.user
            # other than the login user wrote them; the login user may not delete them.
            raise TransportError(
                f"{self.host}: cannot remove {path}: permission denied for {self.target.hop.user} (files "
                "there belong to another user): set ansible_become: true, or remove it as root"
            )
        detail = " ".join(result.err.split())[:300] or f"exit code {result.code}"
        raise TransportError(f"{self.host}: cannot remove {path}: {detail}")

    def remove_file(self, path: str) -> None:
        # -f: a missing file is fine; no -r: a directory is an error, never a tree removed by mistake.
        result = self._exec(["rm", "-f", "--", path], root=True)
        if result.code != 0:
            detail = " ".join(result.err.split())[:300] or f"exit code {result.code}"
            raise TransportError(f"{self.host}: cannot remove {path}: {detail}")

    def remove_empty_dir(self, path: str) -> bool:
        return self._exec(["rmdir", "--", path], root=True).code == 0

    def creatable_problem(self, path: str) -> str | None:
        return remote.parse_creatable(
            self._checked(remote.sh(remote.CREATABLE_SCRIPT, path), f"cannot check {path}")
        )

    def free_space(self, path: str) -> int | None:
        out = self._checked(remote.sh(remote.FREE_SCRIPT, path), f"cannot check free space for {path}")
        try:
            return remote.parse_df(out)
        except (ValueError, IndexError):
            return None

    def port_in_use(self, bind: str, port: int) -> bool:
        # /proc/net/tcp* needs no privilege and no tool (ss, netstat) that a host might lack.
        out = self._checked(
            remote.sh("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; true"),
            "cannot list listening ports",
            root=False,
        )
        return remote.port_conflicts(remote.listening(out), bind, port)

    def dir_size(self, path: str) -> int | None:
        result = self._exec(
            remote.sh('[ -d "$1" ] || exit 3; du -sb -- "$1"', path), root=True, timeout=DU_TIMEOUT
        )
        if result.code == 3:
            return None
        if result.code != 0:
            raise TransportError(f"{self.host}: cannot measure {path}: {' '.join(result.err.split())[:200]}")
        return int(result.out.split()[0])

    # --- Docker ------------------------------------------------------------------------------------

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._connect_engine()
        return self._engine

    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            self.engine()  # decides how channels reach the engine, and checks it answers
            assert self._opener is not None
            from regdeploy.transport.sdkchannel import docker_client

            self._docker = docker_client(self._opener, IO_TIMEOUT)
        return self._docker

    def _connect_engine(self) -> ChannelEngine:
        transport = self._ssh().get_transport()
        assert isinstance(transport, StreamlocalTransport)
        sock = self.target.docker_socket

        def streamlocal(timeout: float) -> paramiko.Channel:
            return transport.open_streamlocal(sock, timeout)

        try:
            first = streamlocal(self.target.timeout)
        except paramiko.ChannelException:
            pass  # sshd could not connect to the socket as this user: find out why below
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._lost(exc, "connecting to the Docker engine") from None
        else:
            return self._checked_engine(FirstThenOpen(streamlocal, first))
        answer = self._checked(
            remote.sh(remote.DOCKER_SOCKET_SCRIPT, sock), "cannot check the Docker socket", root=False
        )
        state, user = answer.strip(), self.target.hop.user
        if state == "absent":
            raise TransportError(f"{self.host}: the Docker engine is not running ({sock} does not exist)")
        if state == "notsocket":
            raise TransportError(f"{self.host}: {sock} is not a socket: is the Docker engine installed?")
        if state == "denied" and not self.target.sudo:
            raise TransportError(
                f"{self.host}: user {user} cannot use the Docker engine (not in the docker group?); "
                f"add {user} to the docker group, or set ansible_become: true"
            )
        # Root's access through sudo; or sshd refuses stream forwarding (AllowStreamLocalForwarding
        # no); or the engine is down behind a stale socket: the docker CLI on the host tells which.
        return self._dial_stdio(root=state == "denied")

    def _dial_stdio(self, root: bool) -> ChannelEngine:
        transport = self._ssh().get_transport()
        assert transport is not None
        docker_cli = ["docker", "-H", f"unix://{self.target.docker_socket}"]
        command = self._argv([*docker_cli, "system", "dial-stdio"], root)

        def dial(timeout: float) -> paramiko.Channel:
            chan = transport.open_session(timeout=timeout)
            chan.exec_command(command)
            return chan

        try:
            return self._checked_engine(FirstThenOpen(dial, None))
        except TransportError as exc:
            failure = exc
        probe = self._exec([*docker_cli, "version", "--format", "{{.Server.APIVersion}}"], root=root)
        err, sock = " ".join(probe.err.split()), self.target.docker_socket
        if probe.code == 127 or "not found" in err:
            raise TransportError(
                f"{self.host}: the Docker engine at {sock} cannot be reached over SSH (sshd refuses to "
                "forward to it, and there is no docker CLI on the host for `docker system dial-stdio`)"
            )
        if "permission denied" in err.lower():
            raise TransportError(
                f"{self.host}: user {self.target.hop.user} cannot use the Docker engine "
                "(not in the docker group?)"
            )
        if "Cannot connect" in err or "connection refused" in err.lower() or "daemon running" in err:
            raise TransportError(
                f"{self.host}: the Docker engine is not running ({sock} refuses connections)"
            )
        raise failure

    def _checked_engine(self, opener: FirstThenOpen) -> ChannelEngine:
        """Ping the engine through *opener*'s channels and check its API version; keep the opener."""
        engine = ChannelEngine(self.host, opener, IO_TIMEOUT)
        try:
            version = engine.ping()
        except ENGINE_ERRORS as exc:
            engine.close()
            raise TransportError(
                f"{self.host}: the Docker engine does not answer: {_reason(exc)[:200]}"
            ) from None
        if version and tuple(int(p) for p in version.split(".")[:2]) < MIN_API:
            engine.close()
            raise TransportError(
                f"{self.host}: the Docker engine is too old (API {version}); regdeploy needs API "
                f"{API_VERSION} (Docker 20.10) or newer"
            )
        self._opener = opener
        return engine

    def connect_unix(self, path: str, timeout: float) -> UnixStream:
        transport = self._ssh().get_transport()
        assert isinstance(transport, StreamlocalTransport)
        try:
            chan = transport.open_streamlocal(path, timeout)
        except (paramiko.SSHException, EOFError) as exc:  # ChannelException: refused, no such socket
            raise OSError(f"sshd on {self.host} cannot connect to {path}: {exc}") from None
        chan.settimeout(timeout)
        return chan

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._docker is not None:
            with contextlib.suppress(Exception):
                self._docker.close()
            self._docker = None
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
            self._sftp = None
        for client in reversed(self._clients):
            client.close()
        self._clients.clear()
