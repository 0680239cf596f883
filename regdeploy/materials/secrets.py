"""Secret references (``{env: NAME}``, ``{file: PATH}``, generated), their resolution and masking.

A secret's value never enters argv, logs, plans or JSON: code holds a ``SecretRef`` until the moment
a file is rendered, and every resolved value is registered with the run's ``Masker`` so that any
text leaving the process (errors, container logs) can be scrubbed.
"""

from __future__ import annotations

import os
import secrets as pysecrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regdeploy.errors import SecretError

if TYPE_CHECKING:
    from regdeploy.materials.state import StateStore
    from regdeploy.spec.validate import Where

MASK = "********"


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from: kind is env, file, generated or literal (header values only)."""

    kind: str
    name: str

    def describe(self) -> str:
        """A description safe to print: never the value."""
        if self.kind == "literal":
            return "(inline value)"
        return f"{self.kind}:{self.name}" if self.kind != "generated" else "generated"


def mask_url_query(url: str) -> str:
    """Query values often carry tokens (Jenkins' ?token=): keep the names, hide the values."""
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    parts = urlsplit(url)
    if not parts.query:
        return url
    query = "&".join(f"{k}={MASK}" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(query=query))


def secret_ref(raw: Any, where: Where, generated_key: str | None, allow_literal: bool = False) -> SecretRef:
    """Parse a reference; ``None`` means generated (stored under ``generated_key``) when allowed."""
    if raw is None:
        if generated_key is None:
            where.fail("is required")
        return SecretRef("generated", generated_key)
    if isinstance(raw, str) and allow_literal:
        return SecretRef("literal", raw)
    if isinstance(raw, Mapping) and len(raw) == 1:
        ((kind, name),) = raw.items()
        if kind in ("env", "file") and isinstance(name, str) and name:
            return SecretRef(kind, os.path.expanduser(name) if kind == "file" else name)
    if isinstance(raw, str):
        where.fail("write secrets as {env: VARIABLE} or {file: PATH}, not inline in the inventory")
    where.fail(
        "must be {env: VARIABLE} or {file: PATH}" + (" or omitted to generate one" if generated_key else "")
    )


def generate_password() -> str:
    # 32 URL-safe characters: ~190 bits, no ':' or quotes, well under bcrypt's 72-byte limit.
    return pysecrets.token_urlsafe(24)


class Masker:
    """Collects every secret value resolved in this run and replaces them in outgoing text."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> str:
        if len(value) >= 4:  # shorter strings would mask innocent text, and are no secret anyway
            with self._lock:
                self._values.add(value)
        return value

    def mask(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            text = text.replace(value, MASK)
        return text


class SecretResolver:
    """Resolves references against the environment, files and the local state store."""

    def __init__(
        self,
        state: StateStore,
        masker: Masker,
        environ: Mapping[str, str] | None = None,
        generate: Callable[[], str] = generate_password,
    ) -> None:
        self._state = state
        self._masker = masker
        self._environ = os.environ if environ is None else environ
        self._generate = generate

    def resolve(self, ref: SecretRef, what: str) -> str:
        """The value of ``ref``; ``what`` names the key for error messages (e.g. "host 'a': registry.x")."""
        if ref.kind == "literal":
            return self._masker.add(ref.name)
        if ref.kind == "env":
            value = self._environ.get(ref.name)
            if value is None:
                raise SecretError(f"{what}: environment variable {ref.name} is not set")
            if value == "":
                raise SecretError(f"{what}: environment variable {ref.name} is empty")
            return self._masker.add(value)
        if ref.kind == "file":
            path = Path(ref.name)
            try:
                value = path.read_text().rstrip("\r\n")
            except FileNotFoundError:
                raise SecretError(f"{what}: secret file {path} does not exist") from None
            except OSError as exc:
                raise SecretError(f"{what}: cannot read secret file {path}: {exc.strerror}") from None
            if not value:
                raise SecretError(f"{what}: secret file {path} is empty")
            return self._masker.add(value)
        # generated: stored once in the state directory and reused on every later run
        data = self._state.get_or_create(f"secrets/{ref.name}", lambda: self._generate().encode())
        return self._masker.add(data.decode())

    def resolve_bytes(self, ref: SecretRef, what: str) -> bytes:
        """For PEM material given by reference: a file's bytes are kept as they are."""
        if ref.kind == "file":
            try:
                return Path(ref.name).read_bytes()
            except OSError as exc:
                raise SecretError(f"{what}: cannot read {ref.name}: {exc.strerror}") from None
        return self.resolve(ref, what).encode()
