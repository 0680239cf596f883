"""The registry's htpasswd file: bcrypt hashes (the only kind it accepts), built and parsed.

Hashing is slow on purpose, and bcrypt salts make every hash new, so re-hashing on each run would
rewrite the file every time. ``HashCache`` remembers, per user, the hash and a keyed fingerprint of
the password it was made from: same password and cost, same hash, same file, no change.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
MAX_PASSWORD_BYTES = 72  # bcrypt ignores everything past this: refuse rather than silently truncate
_COST_RE = re.compile(r"^\$2[aby]\$(\d\d)\$")


class PasswordError(ValueError):
    pass


def hash_password(password: str, cost: int) -> str:
    import bcrypt  # imported late: idempotent runs reuse cached hashes and never need it

    raw = password.encode()
    if len(raw) > MAX_PASSWORD_BYTES:
        raise PasswordError(f"password is {len(raw)} bytes; bcrypt uses at most {MAX_PASSWORD_BYTES}")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=cost)).decode()


def check_password(password: str, hashed: str) -> bool:
    import bcrypt

    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:
        return False


def hash_cost(hashed: str) -> int | None:
    match = _COST_RE.match(hashed)
    return int(match.group(1)) if match else None


def render(entries: Iterable[tuple[str, str]]) -> bytes:
    return "".join(f"{name}:{hashed}\n" for name, hashed in entries).encode()


@dataclass(frozen=True)
class HtpasswdLine:
    name: str
    hashed: str

    @property
    def is_bcrypt(self) -> bool:
        return self.hashed.startswith(BCRYPT_PREFIXES)


def parse(data: bytes) -> list[HtpasswdLine]:
    lines = []
    for raw in data.decode(errors="replace").splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        name, _, hashed = raw.partition(":")
        lines.append(HtpasswdLine(name, hashed))
    return lines


class HashCache:
    """user -> (hash, fingerprint of the password), kept in the state directory."""

    def __init__(self, key: bytes, entries: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._key = key
        self._entries: dict[str, dict[str, str]] = {k: dict(e) for k, e in (entries or {}).items()}
        self.changed = False

    @classmethod
    def from_json(cls, key: bytes, data: bytes | None) -> HashCache:
        return cls(key, json.loads(data) if data else {})

    def to_json(self) -> bytes:
        return json.dumps(self._entries, indent=1, sort_keys=True).encode()

    def _fingerprint(self, name: str, password: str) -> str:
        return hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).hexdigest()

    def hash_for(self, name: str, password: str, cost: int) -> str:
        """The cached hash when password and cost are unchanged, else a new one (and remember it)."""
        fp = self._fingerprint(name, password)
        entry = self._entries.get(name)
        if entry and hmac.compare_digest(entry["fp"], fp) and hash_cost(entry["hash"]) == cost:
            return entry["hash"]
        hashed = hash_password(password, cost)
        self._entries[name] = {"hash": hashed, "fp": fp}
        self.changed = True
        return hashed
