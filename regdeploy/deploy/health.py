"""Wait for a freshly started registry to serve, and recognise the ways it fails to."""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Callable
from typing import Any

from regdeploy.errors import ApplyError

# The registry invents a user 'docker' with a random password, and logs that password, when its
# htpasswd file is missing at start. regdeploy always writes the file, so this line is a failure.
HTPASSWD_MISSING = ("htpasswd is missing", "provisioning with default user")


# What Go's net/http answers (400) to plain HTTP on a TLS listener.
_TLS_LISTENER = b"HTTP request to an HTTPS server"


def probe(
    address: str, port: int, ca_pem: bytes | None, timeout: float = 2.0, acme: bool = False
) -> int:
    """Status of ``GET /`` (200 without auth on a healthy registry); raises OSError when not serving.

    Without a CA (tls.mode none, or letsencrypt where the registry gets its own certificate) it
    speaks plain HTTP. With *acme* (letsencrypt), a TLS listener answering that with Go's "HTTP
    request to an HTTPS server" serves, and counts as 200: a TLS handshake there would make the
    registry ask Let's Encrypt for a certificate, which readiness must not depend on (nor cause).
    In tls.mode none the same answer means the registry is not the plain-HTTP one wanted."""
    if ca_pem is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(address, port, timeout=timeout)
    else:
        ctx = ssl.create_default_context(cadata=ca_pem.decode())
        # Readiness only: the address may be a loopback alias; verify checks names properly.
        ctx.check_hostname = False
        conn = http.client.HTTPSConnection(address, port, timeout=timeout, context=ctx)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        if acme and ca_pem is None and response.status == 400 and _TLS_LISTENER in response.read(512):
            return 200
        return response.status
    finally:
        conn.close()


def wait_ready(
    container: Any,
    address: str,
    port: int,
    ca_pem: bytes | None,
    timeout: float,
    mask: Callable[[str], str],
    acme: bool = False,
) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    delay = 0.05
    while True:
        container.reload()
        state = container.attrs.get("State", {})
        status = state.get("Status")
        # A crashing registry under a restart policy shows "restarting", or "running" again with a
        # restart count: either way it will not come up by waiting.
        if status in ("exited", "dead") or container.attrs.get("RestartCount", 0) > 0:
            code = state.get("ExitCode")
            raise ApplyError(f"the registry container exited (code {code}){log_tail(container, mask)}")
        if status == "running":
            try:
                code = probe(address, port, ca_pem, acme=acme)
                if code == 200:
                    break
                last_error = f"GET / answered {code}"
            except (OSError, ssl.SSLError) as exc:
                last_error = str(exc) or type(exc).__name__
        if time.monotonic() > deadline:
            raise ApplyError(
                f"the registry did not answer on {address}:{port} within {timeout:g}s ({last_error})"
                f"{log_tail(container, mask)}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    logs = container.logs(tail=200).decode(errors="replace")
    if any(marker in logs for marker in HTPASSWD_MISSING):
        raise ApplyError(
            f"the registry found no htpasswd file and made its own user{log_tail(container, mask)}"
        )


def log_tail(container: Any, mask: Callable[[str], str], lines: int = 8) -> str:
    """The registry's own complaint (panic/fatal/error lines) or else its last log lines, secrets
    masked (the registry logs webhook headers at start)."""
    try:
        text = container.logs(tail=300).decode(errors="replace").strip()
    except Exception:
        return ""
    all_lines = text.splitlines()
    # A Go panic is followed by a long stack trace: its first line is what the user needs.
    wanted = [ln for ln in all_lines if ln.startswith(("panic:", "fatal")) or "level=fatal" in ln
              or "level=error" in ln]  # fmt: skip
    chosen = (wanted or all_lines)[-lines:]
    if not chosen:
        return ""
    return "\n  registry log:\n    " + "\n    ".join(mask(line)[:300] for line in chosen)
