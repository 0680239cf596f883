"""The control machine itself: direct file access and the local Docker engine."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import socket
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from regdeploy.errors import TransportError
from regdeploy.fileio import atomic_write
from regdeploy.transport.base import FileState, UnixStream

if TYPE_CHECKING:
    import docker

    from regdeploy.transport.engine_api import Engine


class LocalTransport:
    def __init__(self, host: str, docker_host: str | None = None) -> None:
        self.host = host
        self._docker_host = docker_host
        self._client: docker.DockerClient | None = None
        self._engine: Engine | None = None

    @property
    def address(self) -> str:
        return "127.0.0.1"

    def stat_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        return {p: _stat(p) for p in paths}

    def read_file(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TransportError(f"{self.host}: cannot read {path}: {exc.strerror}") from None

    def put_file(self, path: str, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
        try:
            atomic_write(Path(path), data, mode, owner)
        except OSError as exc:
            raise TransportError(f"{self.host}: cannot write {path}: {exc.strerror}") from None

    def makedirs(self, path: str, mode: int) -> None:
        try:
            os.makedirs(path, mode=mode, exist_ok=True)
            os.chmod(path, mode)
        except OSError as exc:
            raise TransportError(f"{self.host}: cannot create directory {path}: {exc.strerror}") from None

    def chmod(self, path: str, mode: int) -> None:
        try:
            os.chmod(path, mode)
        except OSError as exc:
            raise TransportError(f"{self.host}: cannot chmod {path}: {exc.strerror}") from None

    def chown(self, path: str, uid: int, gid: int, recursive: bool = False) -> None:
        try:
            os.chown(path, uid, gid, follow_symlinks=False)
            if recursive:
                for root, dirs, files in os.walk(path):
                    for name in dirs + files:
                        os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
        except OSError as exc:
            raise TransportError(f"{self.host}: cannot chown {path}: {exc.strerror}") from None

    def identity(self) -> tuple[int, int]:
        return os.geteuid(), os.getegid()

    def remove_tree(self, path: str) -> None:
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise TransportError(f"{self.host}: cannot remove {path}: {exc.strerror}") from None

    def remove_file(self, path: str) -> None:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as exc:
            raise TransportError(f"{self.host}: cannot remove {path}: {exc.strerror}") from None

    def remove_empty_dir(self, path: str) -> bool:
        try:
            Path(path).rmdir()
        except OSError:  # not empty, gone, or not a directory: leave it
            return False
        return True

    def creatable_problem(self, path: str) -> str | None:
        p = Path(path)
        while not p.exists():
            if p.is_symlink():
                return f"{p} is a dangling symlink"
            p = p.parent
        if not p.is_dir():
            return f"{p} exists and is not a directory"
        if not os.access(p, os.W_OK | os.X_OK):
            return f"{p} is not writable by this user"
        if os.statvfs(p).f_flag & os.ST_RDONLY:
            return f"{p} is on a read-only filesystem"
        return None

    def port_in_use(self, bind: str, port: int) -> bool:
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((bind, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
                if exc.errno == errno.EADDRNOTAVAIL:
                    raise TransportError(
                        f"{self.host}: bind address {bind} is not an address of this host"
                    ) from None
                raise
        return False

    def dir_size(self, path: str) -> int | None:
        if not os.path.isdir(path):
            return None
        total = 0
        for root, _dirs, files in os.walk(path):
            for name in files:
                with contextlib.suppress(OSError):  # files come and go under a live registry
                    total += os.lstat(os.path.join(root, name)).st_size
        return total

    def engine(self) -> Engine:
        if self._engine is None:
            from regdeploy.transport.engine_api import SdkEngine, SocketEngine

            url = self._docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
            if url.startswith("unix://"):
                self._engine = SocketEngine(self.host, url.removeprefix("unix://"))
            else:
                self._engine = SdkEngine(self.host, self.docker())
        return self._engine

    def free_space(self, path: str) -> int | None:
        p = Path(path)
        while not p.exists() and p != p.parent:
            p = p.parent
        try:
            st = os.statvfs(p)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def docker(self) -> docker.DockerClient:
        if self._client is None:
            from regdeploy.transport.engine import connect

            self._client = connect(self.host, self._docker_host)
        return self._client

    def connect_unix(self, path: str, timeout: float) -> UnixStream:
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._client is not None:
            self._client.close()
            self._client = None


def _stat(path: str) -> FileState | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # a parent that is a file is reported by creatable_problem()
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return FileState("dir", mode, None, st.st_uid, st.st_gid)
    if not stat.S_ISREG(st.st_mode):
        return FileState("other", mode, None, st.st_uid, st.st_gid)
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return FileState("file", mode, digest, st.st_uid, st.st_gid)
