"""Inventory values that Ansible would evaluate and regdeploy does not: Vault-encrypted values and
Jinja templates.

regdeploy reads an Ansible inventory without Ansible: it neither decrypts Vault nor renders Jinja.
Such values are kept as they are (an inventory full of them for other tools loads fine), and only a
value regdeploy would *use* -- anything under ``registry:``, or a connection variable -- is refused,
naming the key, instead of being used literally (a password of "{{ vault_pw }}").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_TEMPLATE = re.compile(r"\{\{|\{%|\{#")
HINT = "write the value itself, or reference a secret with {env: NAME} or {file: PATH}"


@dataclass(frozen=True)
class Vaulted:
    """A ``!vault`` value: where it was written, never its ciphertext."""

    source: str
    line: int | None  # None when the source has no lines to speak of (a JSON listing)

    def __str__(self) -> str:
        return "<vault-encrypted>"


class Unsafe(str):
    """A ``!unsafe`` string: Ansible never templates it, so braces in it are literal."""

    __slots__ = ()


def problem(value: Any) -> str | None:
    """Why regdeploy cannot use *value* as written, or None when it can."""
    if isinstance(value, Vaulted):
        where = value.source if value.line is None else f"{value.source}:{value.line}"
        return f"is Ansible Vault-encrypted ({where}): regdeploy does not decrypt Vault; {HINT}"
    if isinstance(value, str) and not isinstance(value, Unsafe) and _TEMPLATE.search(value):
        return f"is a Jinja template, which Ansible renders and regdeploy does not; {HINT}"
    return None


def find(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(dotted path, problem) for every value under *value* that regdeploy cannot use."""
    reason = problem(value)
    if reason is not None:
        yield path, reason
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from find(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from find(item, f"{path}[{index}]")
