"""``group_vars/`` and ``host_vars/`` beside the inventory, found the way Ansible's host_group_vars does.

For a NAME, the first of ``NAME``, ``NAME.yml``, ``NAME.yaml``, ``NAME.json`` that exists is used
(Ansible ignores the rest). If it is a directory, every file in it with no extension or one of
those extensions is loaded, sorted by name, recursing into subdirectories without an extension;
hidden files and editor backups (``~``) are skipped. Later files override earlier ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regdeploy.errors import InventoryError
from regdeploy.inventory.raw import VarsChunk, check_vars, kind_of
from regdeploy.inventory.yamlio import is_vault_file, parse_data, read_text

VARS_EXTENSIONS = (".yml", ".yaml", ".json")


def find_vars_files(vars_dir: Path, name: str) -> list[Path]:
    # A host called "../x" must not read files outside group_vars/host_vars.
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        return []
    for suffix in ("", *VARS_EXTENSIONS):
        candidate = vars_dir / f"{name}{suffix}"
        if candidate.is_dir():
            return _dir_files(candidate)
        if candidate.is_file():
            return [candidate]
    return []


def _dir_files(directory: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        if entry.is_dir() and not entry.suffix:
            found.extend(_dir_files(entry))
        elif entry.is_file() and (not entry.suffix or entry.suffix in VARS_EXTENSIONS):
            found.append(entry)
    return found


def load_vars_file(path: Path) -> VarsChunk | None:
    """One vars file as a chunk; empty is fine, anything but a mapping is an error naming the file.
    None for a file encrypted whole with ansible-vault: it is not read."""
    display = str(path)
    text = read_text(path, display)
    if is_vault_file(text):
        return None
    data: Any = parse_data(text, path, display)
    if data is not None and not isinstance(data, dict):
        raise InventoryError(f"{display}: variables must be a mapping, got {kind_of(data)}")
    return VarsChunk(display, check_vars(data, display, "top level"))


class VarsDirs:
    """Loads ``group_vars/NAME`` and ``host_vars/NAME`` once each, in precedence order within NAME."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._cache: dict[tuple[str, str], list[VarsChunk]] = {}
        self.skipped: list[str] = []  # vault-encrypted files, not read

    def group(self, name: str) -> list[VarsChunk]:
        return self._load("group_vars", name)

    def host(self, name: str) -> list[VarsChunk]:
        return self._load("host_vars", name)

    def _load(self, kind: str, name: str) -> list[VarsChunk]:
        key = (kind, name)
        if key not in self._cache:
            chunks = []
            for path in find_vars_files(self.base / kind, name):
                chunk = load_vars_file(path)
                if chunk is None:
                    # Ansible's vault.yml pattern: secrets for other plays. Refusing the whole
                    # inventory for it would make regdeploy unusable beside Ansible; the run says so.
                    self.skipped.append(str(path))
                else:
                    chunks.append(chunk)
            self._cache[key] = chunks
        return self._cache[key]
