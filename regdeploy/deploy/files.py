"""What rendering produces: the exact files and directories a host must have (path, bytes, mode,
owner), and the digest of what a unit reads only at start. Plain data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

Owner = tuple[int, int] | None


@dataclass(frozen=True)
class RenderedFile:
    path: str
    data: bytes
    mode: int
    restart: bool  # the registry reads it only at start (config, TLS); htpasswd is re-read live
    secret: bool  # contents never shown in --diff
    owner: Owner = None  # (uid, gid) of the unit that reads it; None: root's

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class RenderedDir:
    path: str
    mode: int
    owner: Owner = None


@dataclass(frozen=True)
class Rendered:
    dirs: tuple[RenderedDir, ...]
    files: tuple[RenderedFile, ...]
    # Files an earlier inventory had regdeploy write and this one does not want (a removed gc
    # schedule's cron entry): removed when present.
    absent: tuple[str, ...] = ()

    def start_digest(self, paths: tuple[str, ...]) -> str:
        """A digest of the files a unit reads only at start (*paths*): a change needs a restart."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.path):
            if f.path in paths:
                h.update(f"{f.path}\0{f.sha256}\0".encode())
        return h.hexdigest()[:16]
