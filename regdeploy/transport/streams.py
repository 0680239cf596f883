"""Byte streams through one command on a host, for copies too big to hold in memory (a registry's
data directory as a tar): the command's stdout handed to a sink chunk by chunk, or chunks fed to its
stdin, with its exit code and the tail of its stderr.

On this machine the command is a subprocess; over SSH it is an exec channel of the host's one
connection, run through ``sudo -n`` where the transport works as root that way (as every command of
:class:`~regdeploy.transport.ssh.SSHTransport` is). Like every command the transports run, the argv
carries paths only, never a secret.

Every wait over SSH is bounded by *idle*: a command that neither sends nor takes a byte for that long
fails the copy instead of hanging it.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from regdeploy.errors import TransportError
from regdeploy.transport.local import LocalTransport

if TYPE_CHECKING:
    from regdeploy.transport.base import Transport
    from regdeploy.transport.ssh import SSHTransport

CHUNK = 1 << 20
ERR_KEEP = 16 << 10  # the tail of stderr kept for the error message
IDLE = 120.0

Sink = Callable[[bytes], None]


@dataclass(frozen=True)
class Finished:
    code: int
    err: str  # the last ERR_KEEP bytes of stderr

    @property
    def detail(self) -> str:
        """stderr on one line (its last 300 characters), or the exit code."""
        text = " ".join(self.err.split())
        return text[-300:] if text else f"exit code {self.code}"


class _Tail:
    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > 2 * ERR_KEEP:
            del self.data[:-ERR_KEEP]

    def text(self) -> str:
        return bytes(self.data[-ERR_KEEP:]).decode(errors="replace")


def pipe(
    transport: Transport,
    argv: Sequence[str],
    *,
    stdin: Iterable[bytes] | None = None,
    stdout: Sink | None = None,
    root: bool = True,
    idle: float = IDLE,
) -> Finished:
    """Run *argv* on the host with *stdin*'s chunks as its input (none: empty) and each chunk of its
    output given to *stdout* (none: discarded). *root*: as root where the transport can be root."""
    sink = stdout or (lambda _chunk: None)
    if isinstance(transport, LocalTransport):
        return _local(argv, stdin, sink)
    from regdeploy.transport.ssh import SSHTransport

    if isinstance(transport, SSHTransport):
        return _ssh(transport, argv, stdin, sink, root, idle)
    raise TransportError(f"{transport.host}: cannot stream through this kind of connection")


def run(
    transport: Transport, argv: Sequence[str], *, root: bool = True, idle: float = IDLE
) -> tuple[int, str, str]:
    """A small command's exit code, stdout and stderr (its output is held in memory)."""
    out = bytearray()
    done = pipe(transport, argv, stdout=out.extend, root=root, idle=idle)
    return done.code, out.decode(errors="replace"), done.err


# --- this machine ----------------------------------------------------------------------------------


def _local(argv: Sequence[str], stdin: Iterable[bytes] | None, sink: Sink) -> Finished:
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise TransportError(f"this machine: cannot run {argv[0]}: {exc.strerror or exc}") from None
    assert proc.stdout is not None and proc.stderr is not None
    err = _Tail()
    errors_out, stdout_pipe = proc.stderr, proc.stdout
    readers = [threading.Thread(target=_drain, args=(errors_out, err.add), daemon=True)]
    if stdin is not None:
        readers.append(threading.Thread(target=_drain, args=(stdout_pipe, sink), daemon=True))
    for reader in readers:
        reader.start()
    try:
        if stdin is None:
            _drain(stdout_pipe, sink)
        else:
            assert proc.stdin is not None
            try:
                for chunk in stdin:
                    proc.stdin.write(chunk)
            except BrokenPipeError:
                pass  # the command stopped reading: its exit code and stderr say why
            finally:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        for reader in readers:
            reader.join()
    return Finished(code, err.text())


def _drain(stream: IO[bytes], sink: Sink) -> None:
    fd = stream.fileno()
    while True:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            return
        sink(chunk)


# --- over SSH ---------------------------------------------------------------------------------------


def _ssh(
    t: SSHTransport, argv: Sequence[str], stdin: Iterable[bytes] | None, sink: Sink, root: bool, idle: float
) -> Finished:
    import paramiko

    from regdeploy.transport.ssh import Result, _sudo_refused

    command = t._argv(argv, root)
    connection = t._ssh().get_transport()
    assert connection is not None
    try:
        chan = connection.open_session(timeout=t.target.timeout)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise t._lost(exc, f"running {argv[0]}") from None
    err = _Tail()

    def take() -> bool:
        """Whatever output is there, without waiting; True when something came."""
        got = False
        while chan.recv_stderr_ready():
            err.add(chan.recv_stderr(CHUNK))
            got = True
        while chan.recv_ready():
            chunk = chan.recv(CHUNK)
            if not chunk:
                break
            sink(chunk)
            got = True
        return got

    try:
        chan.settimeout(idle)
        chan.exec_command(command)
        if stdin is not None:
            for chunk in stdin:
                take()
                if chan.exit_status_ready() or chan.closed:
                    break  # the command ended early: its exit code and stderr say why
                try:
                    chan.sendall(chunk)  # blocks while the host's window is full, at most *idle*
                except TimeoutError:
                    raise TransportError(f"{t.host}: `{argv[0]}` took no data for {idle:g}s") from None
                except OSError:
                    if chan.closed or chan.exit_status_ready():
                        break
                    raise
        chan.shutdown_write()
        last = time.monotonic()
        while True:
            if take():
                last = time.monotonic()
                continue
            done = chan.eof_received and chan.exit_status_ready()
            if done and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
            left = idle - (time.monotonic() - last)
            if left <= 0:
                raise TransportError(f"{t.host}: `{argv[0]}` sent nothing for {idle:g}s")
            if chan.eof_received:
                chan.status_event.wait(min(left, 1.0))
            else:
                select.select([chan], [], [], min(left, 1.0))
        code = chan.recv_exit_status()
    except TransportError:
        raise
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise t._lost(exc, f"running {argv[0]}") from None
    finally:
        chan.close()
    finished = Finished(code, err.text())
    if code != 0 and root and t.target.sudo and _sudo_refused(Result(code, "", finished.err)):
        raise TransportError(t._sudo_problem(Result(code, "", finished.err)))
    return finished
