"""One HTTP POST, as the webhook sender and the relay need it: no redirects, no retries, bounded.

Redirects are not followed on purpose: the callers decide what a 3xx means (the registry follows
them; GitHub's API answers 301 for a renamed repository, which the user should fix).
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from regdeploy.errors import describe_network_error

MAX_ANSWER = 64 * 1024  # enough for any error message; a receiver cannot make us buffer more


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: Mapping[str, str]  # names lower-cased
    text: str  # the first MAX_ANSWER bytes of the body, decoded leniently


def post(url: str, body: bytes, headers: Sequence[tuple[str, str]], timeout: float) -> Answer:
    """POST ``body`` to ``url`` with exactly ``headers`` (plus Host and Content-Length).

    Raises OSError (ConnectionRefusedError, TimeoutError, ssl.SSLError...) when no answer came.
    """
    parts = urlsplit(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        ctx = ssl.create_default_context()
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.putrequest("POST", target, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        text = resp.read(MAX_ANSWER).decode(errors="replace")
        return Answer(resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()}, text)
    except http.client.HTTPException as exc:  # a malformed answer: as good as none
        raise ConnectionError(f"bad HTTP answer: {exc!r}") from None
    finally:
        conn.close()


def describe_failure(exc: OSError, timeout: float) -> str:
    """One line for a request that got no answer."""
    return describe_network_error(exc, timeout)
