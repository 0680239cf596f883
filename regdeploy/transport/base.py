"""The one small interface every transport (local, SSH) implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import docker

    from regdeploy.transport.engine_api import Engine


@dataclass(frozen=True)
class FileState:
    kind: str  # "file", "dir" or "other"
    mode: int  # permission bits only
    sha256: str | None  # files only
    uid: int = 0
    gid: int = 0


class UnixStream(Protocol):
    """A connected stream socket on the host (a socket, or an SSH channel to one)."""

    def sendall(self, data: bytes) -> None: ...

    def recv(self, size: int) -> bytes: ...

    def close(self) -> None: ...


class Transport(Protocol):
    host: str  # inventory name

    @property
    def address(self) -> str:
        """Where the control machine reaches this host's published ports."""
        ...

    def stat_many(self, paths: Sequence[str]) -> dict[str, FileState | None]: ...

    def read_file(self, path: str) -> bytes | None: ...

    def put_file(self, path: str, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
        """Write atomically (temp file in the same directory, then rename) with ``mode``, owned by
        *owner* (uid, gid) when given: the file is never readable by anyone else on the way."""
        ...

    def chown(self, path: str, uid: int, gid: int, recursive: bool = False) -> None: ...

    def identity(self) -> tuple[int, int]:
        """(uid, gid) that files written on the host get: root's, or the login user's without become."""
        ...

    def makedirs(self, path: str, mode: int) -> None: ...

    def chmod(self, path: str, mode: int) -> None: ...

    def remove_tree(self, path: str) -> None: ...

    def remove_file(self, path: str) -> None:
        """Remove one file (not a directory); a missing one is fine."""
        ...

    def remove_empty_dir(self, path: str) -> bool:
        """Remove ``path`` only if it is an empty directory; True when it was removed."""
        ...

    def creatable_problem(self, path: str) -> str | None:
        """Why directory ``path`` could not be created or written, or None when it can."""
        ...

    def port_in_use(self, bind: str, port: int) -> bool: ...

    def dir_size(self, path: str) -> int | None: ...

    def free_space(self, path: str) -> int | None:
        """Bytes this user may still write on the filesystem of ``path`` (or of its nearest existing
        ancestor); None when it cannot be told."""
        ...

    def engine(self) -> Engine:
        """The host's Docker engine (the seam for every container and network call): cheap to open,
        no docker-py import."""
        ...

    def docker(self) -> docker.DockerClient:
        """The Docker SDK client for this host's engine: only for image streams (pull, load, save)."""
        ...

    def connect_unix(self, path: str, timeout: float) -> UnixStream:
        """A stream connected to the unix socket *path* on the host, as the user regdeploy works as
        there (a balancer's admin socket). OSError when it cannot be reached."""
        ...

    def close(self) -> None: ...
