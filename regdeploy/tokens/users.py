"""The user file: ``NAME:BCRYPT`` lines (the registry's htpasswd format), re-read when it changes.

``users add|remove|rotate`` replace the file while the server runs; each check stats it first (a
microsecond), so a rotated password works on the next token request with no restart.

A password that verified is remembered for VERIFIED_TTL seconds, as an HMAC under a key made at
start (never the password): clients ask for a token on every pull and push, and a bcrypt compare
per request is what token auth is there to avoid. Failures are never remembered (each costs a
bcrypt compare), and a changed file forgets everything.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from regdeploy.errors import InputError
from regdeploy.materials.htpasswd import BCRYPT_PREFIXES, check_password, hash_cost, parse
from regdeploy.tokens.watch import Stamp, stamp

_DEFAULT_COST = 10
VERIFIED_TTL = 60.0
_VERIFIED_MAX = 4096


def _log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def read_users(path: Path) -> dict[str, str]:
    """Name -> hash. Lines whose hash is not bcrypt are kept: they never verify, as in the registry."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: user file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    users: dict[str, str] = {}
    for number, line in enumerate(parse(data), start=1):
        if not line.name:
            raise InputError(f"{path}: entry {number}: expected NAME:BCRYPT_HASH")
        users[line.name] = line.hashed
    return users


def _dummy_hash(users: dict[str, str]) -> bytes:
    # An unknown user still costs one bcrypt compare at the file's own cost: the answer time must not
    # tell which names exist.
    import bcrypt

    costs = [c for c in (hash_cost(h) for h in users.values()) if c is not None]
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=max(costs, default=_DEFAULT_COST)))


class UserFile:
    """Checks passwords against the file as it is now; thread-safe (cheroot serves from a pool)."""

    def __init__(self, path: Path, log: Callable[[str], None] = _log_to_stderr) -> None:
        self.path = path
        self._log = log
        self._lock = threading.Lock()
        self._stamp: Stamp | None = stamp(path)
        self._users = read_users(path)  # a bad file at start is the operator's error: exit 2
        self._dummy = _dummy_hash(self._users)
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, float] = {}  # HMAC of name, password and hash -> until

    def _current(self) -> tuple[dict[str, str], bytes]:
        now = stamp(self.path)
        with self._lock:
            if now != self._stamp:
                self._stamp = now
                self._verified.clear()
                try:
                    users = read_users(self.path)
                except InputError as exc:
                    # Fail closed: keeping the old set would keep a removed user's password working.
                    self._users = {}
                    self._log(f"token server: {exc}; password logins are refused until it is fixed")
                else:
                    self._users, self._dummy = users, _dummy_hash(users)
                    self._log(f"token server: users file re-read ({len(users)} users)")
            return self._users, self._dummy

    def __len__(self) -> int:
        return len(self._current()[0])

    def check(self, name: str, password: str, clock: Callable[[], float] = time.monotonic) -> bool:
        users, dummy = self._current()
        hashed = users.get(name)
        if hashed is None or not hashed.startswith(BCRYPT_PREFIXES):
            check_password(password, dummy.decode())
            return False
        mark = hmac.new(self._key, f"{name}\0{password}\0{hashed}".encode(), hashlib.sha256).digest()
        now = clock()
        with self._lock:
            if self._verified.get(mark, 0.0) > now:
                return True
        if not check_password(password, hashed):
            return False
        with self._lock:
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified = {k: v for k, v in self._verified.items() if v > now}
            if len(self._verified) < _VERIFIED_MAX:
                self._verified[mark] = now + VERIFIED_TTL
        return True
