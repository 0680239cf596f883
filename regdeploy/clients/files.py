"""A client's files under a root directory, and the record of what a client command did there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from regdeploy.certs.trust import ClientFiles, TrustChange


class RootedFiles:
    """*inner*'s files with every path under *root*: a chroot, an image's filesystem being prepared,
    or a test's temporary directory. Paths written into the files' contents stay the client's own."""

    def __init__(self, inner: ClientFiles, root: str) -> None:
        self._inner = inner
        self._root = root.rstrip("/")

    def _at(self, path: str) -> str:
        return self._root + path

    def read(self, path: str) -> bytes | None:
        return self._inner.read(self._at(path))

    def write(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._inner.write(self._at(path), data, mode)

    def mode(self, path: str) -> int | None:
        return self._inner.mode(self._at(path))

    def existing(self, paths: Sequence[str]) -> set[str]:
        found = self._inner.existing([self._at(p) for p in paths])
        return {p for p in paths if self._at(p) in found}

    def remove(self, path: str) -> None:
        self._inner.remove(self._at(path))

    def prune(self, directory: str) -> None:
        self._inner.prune(self._at(directory))


def rooted(files: ClientFiles, root: str | None) -> ClientFiles:
    return files if root in (None, "", "/") else RootedFiles(files, root)


@dataclass
class Outcome:
    """What a client command did on one client: its changes, what it left alone (notes), what the
    user should fix (warnings), and what must be reloaded or restarted for the changes to apply."""

    runtimes: tuple[str, ...] = ()
    changes: list[TrustChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reload: list[str] = field(default_factory=list)

    def put(self, files: ClientFiles, runtime: str, path: str, data: bytes, reason: str,
            mode: int = 0o644) -> bool:  # fmt: skip
        """Write *path* unless it holds *data* already; True when it changed."""
        current = files.read(path)
        if current == data:
            return False
        files.write(path, data, mode)
        self.changes.append(TrustChange(path, "create" if current is None else "update", reason, runtime))
        return True

    def drop(self, files: ClientFiles, runtime: str, path: str, reason: str) -> None:
        files.remove(path)
        self.changes.append(TrustChange(path, "remove", reason, runtime))

    def say_reload(self, line: str) -> None:
        if line not in self.reload:
            self.reload.append(line)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "changed": bool(self.changes),
            "runtimes": list(self.runtimes),
            "changes": [c.as_json() for c in self.changes],
            "notes": self.notes,
            "warnings": self.warnings,
            "reload": self.reload,
            "error": None,
        }
