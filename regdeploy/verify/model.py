"""What every check shares: its result, the two ways it can end early, and error wording."""

from __future__ import annotations

import http.client
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from regdeploy.verify.registry_api import Response

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")

# What talking to a registry can raise besides a status code (ssl.SSLError is an OSError).
NETWORK_ERRORS = (OSError, http.client.HTTPException)

# pass: proven; fail: disproven, detail says why; skip: does not apply to this host (counts as ok);
# blocked: not run because a check it builds on failed (counts as a failure: nothing was proven).
Status = Literal["pass", "fail", "skip", "blocked"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    seconds: float
    detail: str

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "skip")

    def as_json(self) -> dict[str, Any]:
        """DESIGN.md's shape: name, ok, seconds, detail."""
        return {"name": self.name, "ok": self.ok, "seconds": round(self.seconds, 3), "detail": self.detail}


class CheckFailed(Exception):
    """A check disproved what it checks; ``str()`` is the precise reason."""


class NotApplicable(Exception):
    """The check does not apply to this host (no TLS, no endpoints...); ``str()`` says why."""


class Blocked(Exception):
    """The check could not run because one it builds on failed; ``str()`` names it."""


def describe_error(exc: BaseException) -> str:
    """One line for a failed connection or request, naming the cause as a client would see it."""
    from regdeploy.verify.registry_api import TokenServerError

    if isinstance(exc, TokenServerError):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {(exc.verify_message or '').rstrip('.')}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the name: {exc.strerror}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


def registry_error(resp: Response) -> str:
    """``405 UNSUPPORTED: The operation is unsupported.`` from a registry's JSON error body, or the
    first line of a plain-text one (``405 Method not allowed``)."""
    text = f"{resp.status}"
    try:
        errors = resp.json().get("errors") or []
    except (ValueError, AttributeError):
        first = resp.body.decode(errors="replace").strip().splitlines()[:1]
        return f"{text} {first[0][:120]}" if first else text
    parts = []
    for err in errors[:3]:
        if not isinstance(err, dict):
            continue
        code = str(err.get("code") or "").strip()
        message = " ".join(str(err.get("message") or "").split())
        parts.append(f"{code}: {message}" if code and message else code or message)
    if parts:
        text += " " + "; ".join(parts)
    return text


def parallel(*funcs: Callable[[], T]) -> list[T]:
    """Run independent requests at once: the registry pays a bcrypt compare per authenticated request
    (tens of ms), and runs them on all its cores. The first exception is re-raised, after all finished."""
    if len(funcs) == 1:
        return [funcs[0]()]
    with ThreadPoolExecutor(max_workers=len(funcs)) as pool:
        futures = [pool.submit(f) for f in funcs]
        return [f.result() for f in futures]


def pair(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """``parallel`` for two requests of different types."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.submit(first), pool.submit(second)
        return a.result(), b.result()
