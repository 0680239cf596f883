"""Which Python distributions regdeploy needs at run time: ``Requires-Dist`` lines with their PEP 508
environment markers evaluated for this interpreter, and their closure.

A small evaluator rather than a dependency on ``packaging`` (not one of regdeploy's run-time
dependencies): the sidecar image must hold exactly what the running interpreter would import.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from regdeploy.errors import ImageError


def canonical_name(name: str) -> str:
    """PEP 503 normalised name: ``Charset_Normalizer`` -> ``charset-normalizer``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Requirement:
    name: str  # canonical
    extras: frozenset[str]
    marker: str | None
    text: str


_REQUIREMENT_RE = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[([^\]]*)\])?")


def parse_requirement(text: str) -> Requirement:
    """One ``Requires-Dist`` line: ``name[extra,...] (specifier | @ url) ; marker``."""
    spec, _, marker = text.partition(";")
    match = _REQUIREMENT_RE.match(spec)
    if not match:
        raise ImageError(f"cannot parse the requirement {text!r}")
    extras = frozenset(canonical_name(e.strip()) for e in (match.group(2) or "").split(",") if e.strip())
    return Requirement(canonical_name(match.group(1)), extras, marker.strip() or None, text.strip())


def marker_environment() -> dict[str, str]:
    """The marker variables of the running interpreter, the one copied into the image."""
    impl = sys.implementation
    iv = impl.version
    impl_version = f"{iv.major}.{iv.minor}.{iv.micro}"
    if iv.releaselevel != "final":
        impl_version += iv.releaselevel[0] + str(iv.serial)
    return {
        "implementation_name": impl.name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
        "extra": "",
    }


_LEGACY_NAMES = {
    "os.name": "os_name",
    "sys.platform": "sys_platform",
    "platform.version": "platform_version",
    "platform.machine": "platform_machine",
    "platform.python_implementation": "platform_python_implementation",
    "python_implementation": "platform_python_implementation",
}
_TOKEN_RE = re.compile(
    r"""\s*(?:(?P<str>'[^']*'|"[^"]*")|(?P<op>===|==|!=|<=|>=|~=|<|>|\(|\))|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"""
)
_VERSION_OPS = ("===", "==", "!=", "<=", ">=", "~=", "<", ">")
_VERSION_RE = re.compile(
    r"v?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview|dev|post)[-_.]?\d*)*(\+.*)?", re.IGNORECASE
)


def _version_key(text: str) -> tuple[tuple[int, ...], int] | None:
    """(release numbers, phase): phase -1 for a pre/dev release, 1 for a post release, 0 otherwise."""
    match = _VERSION_RE.fullmatch(text.strip())
    if not match:
        return None
    release = tuple(int(part) for part in match.group(1).split("."))
    suffix = text.strip()[match.end(1) :].lower().split("+", 1)[0]
    phase = 0
    if suffix:
        phase = 1 if suffix.strip("-_.").startswith("post") else -1
    return release, phase


def _pad(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


def _compare_versions(lhs: str, op: str, rhs: str) -> bool | None:
    """*lhs op rhs* as versions, None when either side is not a version."""
    if op in ("==", "!=") and rhs.endswith(".*"):
        left, right = _version_key(lhs), _version_key(rhs[:-2])
        if left is None or right is None:
            return None
        prefix = left[0][: len(right[0])] + (0,) * max(0, len(right[0]) - len(left[0]))
        return (prefix == right[0]) == (op == "==")
    left, right = _version_key(lhs), _version_key(rhs)
    if left is None or right is None:
        return None
    a, b = _pad(left[0], right[0])
    ka, kb = (a, left[1]), (b, right[1])
    if op == "~=":
        if len(right[0]) < 2:
            return None
        return ka >= kb and left[0][: len(right[0]) - 1] == right[0][:-1]
    return {
        "==": ka == kb,
        "!=": ka != kb,
        "<": ka < kb,
        "<=": ka <= kb,
        ">": ka > kb,
        ">=": ka >= kb,
    }[op]


class _MarkerParser:
    """Recursive descent over ``marker_or := marker_and ('or' marker_and)*`` and so on (PEP 508)."""

    def __init__(self, text: str, environment: Mapping[str, str]) -> None:
        self.text = text
        self.environment = environment
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN_RE.match(text, pos)
            if not match or match.end() == pos:
                raise self._error(f"unexpected {text[pos:].strip()[:20]!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.pos = 0

    def _error(self, why: str) -> ImageError:
        return ImageError(f"cannot evaluate the environment marker {self.text!r}: {why}")

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise self._error("it ends too early")
        self.pos += 1
        return token

    def parse(self) -> bool:
        value = self._or()
        rest = self._peek()
        if rest is not None:
            raise self._error(f"unexpected {rest[1]!r}")
        return value

    def _or(self) -> bool:
        value = self._and()
        while self._peek() == ("word", "or"):
            self._take()
            right = self._and()
            value = value or right
        return value

    def _and(self) -> bool:
        value = self._atom()
        while self._peek() == ("word", "and"):
            self._take()
            right = self._atom()
            value = value and right
        return value

    def _atom(self) -> bool:
        if self._peek() == ("op", "("):
            self._take()
            value = self._or()
            if self._take() != ("op", ")"):
                raise self._error("a '(' is not closed")
            return value
        left, left_is_extra = self._value()
        op = self._operator()
        right, right_is_extra = self._value()
        if left_is_extra or right_is_extra:  # extra names compare normalised (PEP 685)
            left, right = canonical_name(left), canonical_name(right)
        return self._compare(left, op, right)

    def _value(self) -> tuple[str, bool]:
        kind, text = self._take()
        if kind == "str":
            return text[1:-1], False
        if kind == "word":
            name = _LEGACY_NAMES.get(text, text)
            if name not in self.environment:
                raise self._error(f"unknown variable {text!r}")
            return self.environment[name], name == "extra"
        raise self._error(f"expected a variable or a string, not {text!r}")

    def _operator(self) -> str:
        kind, text = self._take()
        if kind == "op" and text in _VERSION_OPS:
            return text
        if (kind, text) == ("word", "in"):
            return "in"
        if (kind, text) == ("word", "not") and self._take() == ("word", "in"):
            return "not in"
        raise self._error(f"expected a comparison, not {text!r}")

    def _compare(self, left: str, op: str, right: str) -> bool:
        if op == "in":
            return left in right
        if op == "not in":
            return left not in right
        if op == "===":
            return left == right
        as_versions = _compare_versions(left, op, right)
        if as_versions is not None:
            return as_versions
        strings = {
            "==": left == right,
            "!=": left != right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }
        if op not in strings:
            raise self._error(f"{op} needs versions on both sides: {left!r}, {right!r}")
        return strings[op]


def evaluate_marker(marker: str, environment: Mapping[str, str]) -> bool:
    """True if the PEP 508 environment *marker* holds in *environment* (see :func:`marker_environment`)."""
    return _MarkerParser(marker, environment).parse()


def requirement_closure(
    root: str,
    requires_of: Callable[[str], Sequence[str] | None],
    environment: Mapping[str, str],
) -> list[str]:
    """Canonical names of *root* and of every distribution it needs at run time, in the order found.

    *requires_of(name)* gives a distribution's ``Requires-Dist`` lines, None when it is not installed.
    A requirement applies when it has no marker or its marker holds for *environment* with ``extra`` set to
    "" or to one of the extras asked of that distribution (``docker[ssh]`` asks ``ssh`` of docker).
    ImageError names the missing distribution and who needs it.
    """
    start = canonical_name(root)
    extras_of: dict[str, set[str]] = {start: set()}
    order = [start]
    queue: list[tuple[str, frozenset[str], str | None]] = [(start, frozenset(), None)]
    while queue:
        name, extras, needed_by = queue.pop(0)
        requires = requires_of(name)
        if requires is None:
            who = f" (required by {needed_by})" if needed_by else ""
            raise ImageError(
                f"the sidecar image needs the Python distribution {name}{who}: it is not installed"
            )
        for line in requires:
            req = parse_requirement(line)
            if req.marker is not None and not any(
                evaluate_marker(req.marker, {**environment, "extra": extra})
                for extra in ("", *sorted(extras))
            ):
                continue
            known = extras_of.get(req.name)
            if known is None:
                extras_of[req.name] = set(req.extras)
                order.append(req.name)
                queue.append((req.name, req.extras, name))
            elif not req.extras <= known:
                known |= req.extras
                queue.append((req.name, frozenset(known), name))
    return order
