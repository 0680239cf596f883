"""Small typed readers for user data that fail with the file, host and key path.

The spec module builds ``RegistrySpec`` with these; keeping them apart keeps each reader testable
and the spec module a readable list of keys.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from regdeploy.errors import SpecError

_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h))+$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# Docker's own rule for container names.
CONTAINER_NAME_RE = r"[a-zA-Z0-9][a-zA-Z0-9_.-]*"
IMAGE_RE = r"[a-z0-9][a-z0-9._/:@-]*(?:[a-zA-Z0-9._:@-])*"


class Fails(Protocol):
    """What a reader names in its error: an inventory key (``Where``) or a file's (``filekeys.FileKey``)."""

    def fail(self, message: str) -> NoReturn: ...


@dataclass(frozen=True)
class Where:
    """Where a value sits: host, dotted key path, and the files that set each path (for messages)."""

    host: str
    path: str
    origins: Mapping[str, str] = field(default_factory=dict)
    fallback_source: str = "inventory"

    def child(self, key: str | int) -> Where:
        suffix = f"[{key}]" if isinstance(key, int) else f".{key}"
        return Where(self.host, self.path + suffix, self.origins, self.fallback_source)

    def source(self) -> str:
        # The nearest recorded ancestor wins: list items and defaults have no entry of their own.
        path = re.sub(r"\[\d+\]", "", self.path)
        while path:
            if path in self.origins:
                return self.origins[path]
            path = path.rpartition(".")[0]
        return self.fallback_source

    def fail(self, message: str) -> NoReturn:
        raise SpecError(f"{self.source()}: host '{self.host}': {self.path}: {message}")


def suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def mapping(value: Any, where: Where, known: Sequence[str]) -> Mapping[str, Any]:
    """A mapping whose keys are all known; ``None`` reads as empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        where.fail(f"must be a mapping, got {type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            where.fail(f"keys must be strings, got {key!r}")
        if key not in known:
            where.child(key).fail(f"unknown key{suggest(key, known)}; known keys: {', '.join(sorted(known))}")
    return value


def type_name(value: Any) -> str:
    return {
        dict: "mapping",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
    }.get(type(value), type(value).__name__)


def string(value: Any, where: Fails, pattern: str | None = None, hint: str = "") -> str:
    if not isinstance(value, str) or not value:
        where.fail(f"must be a non-empty string, got {type_name(value)} {value!r}")
    if pattern is not None and not re.fullmatch(pattern, value):
        where.fail(f"invalid value {value!r}{': ' + hint if hint else ''}")
    return value


def boolean(value: Any, where: Fails) -> bool:
    if not isinstance(value, bool):
        where.fail(f"must be true or false, got {type_name(value)} {value!r}")
    return value


def integer(value: Any, where: Fails, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        where.fail(f"must be an integer, got {type_name(value)} {value!r}")
    if not low <= value <= high:
        where.fail(f"{value} is out of range {low}..{high}")
    return value


def port(value: Any, where: Where) -> int:
    return integer(value, where, 1, 65535)


def choice(value: Any, where: Where, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        where.fail(
            f"unknown value {value!r}{suggest(str(value), choices)}; expected one of {', '.join(choices)}"
        )
    return value


def duration(value: Any, where: Where) -> str:
    """A Go duration as the registry reads it ("500ms", "2s", "1m30s"); returned unchanged."""
    if not isinstance(value, str) or not _DURATION_RE.fullmatch(value):
        where.fail(f"invalid duration {value!r}: use Go syntax such as 500ms, 2s, 1m30s")
    return value


def duration_seconds(text: str) -> float:
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART_RE.findall(text))


def absolute_path(value: Any, where: Where) -> str:
    text = string(value, where)
    if not text.startswith("/"):
        where.fail(f"must be an absolute path, got {text!r}")
    if "\n" in text or "\0" in text:
        where.fail("must not contain newlines or NUL")
    return text.rstrip("/") or "/"


def ip_address(value: Any, where: Where) -> str:
    text = string(value, where)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        where.fail(f"not an IP address: {text!r}")


def sequence(value: Any, where: Where) -> Sequence[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        where.fail(f"must be a list, got {type_name(value)}")
    return value


def string_list(value: Any, where: Where) -> tuple[str, ...]:
    return tuple(string(item, where.child(i)) for i, item in enumerate(sequence(value, where)))
