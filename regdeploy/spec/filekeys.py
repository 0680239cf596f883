"""Readers for a service's own YAML file (relay.yml, token.yml) that fail with the file and key path.

The inventory's readers (``validate.Where``) name host and inventory file; these name the one file:
``relay.yml: targets[0].token: is required``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from regdeploy.errors import InputError
from regdeploy.spec.validate import suggest, type_name


class FileKey:
    """A key path in a file, for messages."""

    def __init__(self, source: str, path: str = "") -> None:
        self.source = source
        self.path = path

    def child(self, key: str | int) -> FileKey:
        part = f"[{key}]" if isinstance(key, int) else (f".{key}" if self.path else key)
        return FileKey(self.source, self.path + part)

    def fail(self, message: str) -> NoReturn:
        raise InputError(f"{self.source}: {self.path or '(top level)'}: {message}")


def mapping(value: Any, key: FileKey, known: Sequence[str]) -> Mapping[str, Any]:
    """A mapping whose keys are all known; ``None`` reads as empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        key.fail(f"must be a mapping, got {type_name(value)}")
    for name in value:
        if name not in known:
            hint = suggest(str(name), known)
            key.child(str(name)).fail(f"unknown key{hint}; known keys: {', '.join(known)}")
    return value
