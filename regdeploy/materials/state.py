"""The local state directory: generated secrets, the CA, issued certificates, htpasswd hashes.

It sits beside the inventory as ``.regdeploy/`` (0700, files 0600, git-ignored). Writes are staged
in memory and reach the disk only on ``commit()``, so a plan (or a run refused for bad input)
leaves no trace, and a real run writes only after every host's input was validated.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from regdeploy.errors import InputError
from regdeploy.fileio import atomic_write

STATE_DIR_NAME = ".regdeploy"
_DELETED = b"\0regdeploy-deleted\0"  # a sentinel object: compared by identity, never written


class StateStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._pending: dict[str, bytes] = {}

    @classmethod
    def beside(cls, inventory_dir: Path) -> StateStore:
        return cls((inventory_dir / STATE_DIR_NAME).absolute())

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad state key {key!r}")
        return self.root / key

    def read(self, key: str) -> bytes | None:
        if key in self._pending:
            pending = self._pending[key]
            return None if pending is _DELETED else pending
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InputError(f"cannot read state file {self._path(key)}: {exc.strerror}") from None

    def write(self, key: str, data: bytes) -> None:
        """Stage a write; it reaches the disk on commit()."""
        self._path(key)
        self._pending[key] = data

    def delete(self, key: str) -> None:
        """Stage a removal; it reaches the disk on commit()."""
        self._path(key)
        self._pending[key] = _DELETED

    def get_or_create(self, key: str, factory: Callable[[], bytes]) -> bytes:
        existing = self.read(key)
        if existing is not None:
            return existing
        data = factory()
        self.write(key, data)
        return data

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    def commit(self) -> None:
        """Write staged entries, each atomically at 0600, in 0700 directories."""
        if not self._pending:
            return
        try:
            self._ensure_root()
            for key, data in sorted(self._pending.items()):
                path = self._path(key)
                if data is _DELETED:
                    path.unlink(missing_ok=True)
                    continue
                _makedirs_private(path.parent, self.root)
                atomic_write(path, data, 0o600)
        except OSError as exc:
            raise InputError(f"cannot write the state directory {self.root}: {exc.strerror}") from None
        self._pending.clear()

    def _ensure_root(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            atomic_write(
                ignore, b"# regdeploy state: generated secrets and keys. Never commit it.\n*\n", 0o644
            )


def _makedirs_private(path: Path, root: Path) -> None:
    if path == root or path.exists():
        return
    _makedirs_private(path.parent, root)
    path.mkdir(mode=0o700)
