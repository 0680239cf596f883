"""Writing certificate files on this machine: atomically, private ones 0600 from their first byte."""

from __future__ import annotations

import os
from pathlib import Path

from regdeploy.certs.material import TlsMaterial
from regdeploy.errors import HostError
from regdeploy.fileio import atomic_write


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically; the temp file gets ``mode`` before any byte is written."""
    try:
        atomic_write(path, data, mode)
    except OSError as exc:
        raise HostError(f"cannot write {path}: {exc.strerror}") from None


def make_dir(path: Path, mode: int) -> None:
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
    except OSError as exc:
        raise HostError(f"cannot create directory {path}: {exc.strerror}") from None


def write_bundle(out: Path, host: str, material: TlsMaterial) -> list[Path]:
    """``OUT/HOST/{ca.crt,server.crt,server.key}``, as the registry's config_dir/certs holds them.

    The host directory is 0700 and the key 0600: the output of a CI step is often an artifact
    directory that other jobs and users can list.
    """
    folder = out / host
    make_dir(out, 0o755)
    make_dir(folder, 0o700)
    os.chmod(folder, 0o700)  # mkdir's mode is masked by umask, and the folder may already exist
    written = []
    for name, data, mode in (
        ("ca.crt", material.ca_cert, 0o644),
        ("server.crt", material.server_chain, 0o644),
        ("server.key", material.server_key, 0o600),
    ):
        write_file(folder / name, data, mode)
        written.append(folder / name)
    return written
