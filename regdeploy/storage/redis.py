"""Empty a registry's redis blob-descriptor cache after garbage collection (``FLUSHDB`` on its db).

distribution's ``garbage-collect`` leaves the cache as it was: a re-push of a deleted layer then
answers "already exists" from the cache and later pulls fail. A restart clears an in-memory cache;
a shared redis has to be flushed. A minimal RESP client: AUTH, SELECT, FLUSHDB, each answer checked;
the password never appears in an error.
"""

from __future__ import annotations

import socket

from regdeploy.errors import HostError


def command(*parts: str) -> bytes:
    """One RESP command: an array of bulk strings."""
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _answer(stream: socket.socket) -> str:
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = stream.recv(1)
        if not chunk:
            raise OSError("the connection closed")
        line += chunk
    return line[:-2].decode(errors="replace")


def flush(addr: str, password: str | None, db: int, timeout: float = 5.0) -> None:
    """``FLUSHDB`` on *db* of the redis at ``HOST:PORT``; HostError in one line when it cannot."""
    host, _, port = addr.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    steps = ([("AUTH", password)] if password else []) + [("SELECT", str(db)), ("FLUSHDB",)]
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as stream:
            for step in steps:
                stream.sendall(command(*step))
                answer = _answer(stream)
                if not answer.startswith("+"):
                    raise HostError(f"redis at {addr}: {step[0]} answered {answer[:120]!r}")
    except OSError as exc:
        raise HostError(f"cannot reach redis at {addr}: {exc.strerror or exc}") from None
