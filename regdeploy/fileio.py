"""Atomic file replacement on this machine, for every writer of local files (state, certs, host files)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` by a temp file in the same directory and a rename; raises OSError.

    The temp file gets ``mode`` before any byte is written, so a private key is never readable
    by others (and belongs to *owner*, uid and gid, when given), and a reader sees either the old
    content or the new, never half of it.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.regdeploy-")
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
