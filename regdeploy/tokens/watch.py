"""Notice that a file changed, cheaply enough to ask on every request."""

from __future__ import annotations

import os
from pathlib import Path

# (device, inode, size, mtime in ns): a file renamed over the old one (the atomic way regdeploy
# writes) has a new inode even when the mtime, at the filesystem's granularity, is unchanged.
Stamp = tuple[int, int, int, int]


def stamp(path: Path) -> Stamp | None:
    """The file's identity and version, or None when it cannot be seen."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
