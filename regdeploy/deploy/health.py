"""Wait for a freshly started unit to serve, and recognise the ways it fails to."""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Callable

from regdeploy.deploy.units import Probe
from regdeploy.errors import ApplyError, RegdeployError
from regdeploy.transport.engine_api import Engine

# The registry invents a user 'docker' with a random password, and logs that password, when its
# htpasswd file is missing at start. regdeploy always writes the file, so this line is a failure.
HTPASSWD_MISSING = ("htpasswd is missing", "provisioning with default user")


# What Go's net/http answers (400) to plain HTTP on a TLS listener.
_TLS_LISTENER = b"HTTP request to an HTTPS server"


def http_probe(
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
    engine: Engine,
    container: str,
    probe: Probe,
    address: str,
    ca_pem: bytes | None,
    timeout: float,
    mask: Callable[[str], str],
    acme: bool = False,
    name: str = "",
) -> None:
    """Wait until unit *name* (its container: id or name *container*) serves as *probe* says;
    ApplyError with its log when it exits, crash-loops or does not serve in time."""
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    delay = 0.05
    name = name or container
    what = "the registry" if probe.kind == "http" else name
    while True:
        info = engine.inspect_container(container) or {}
        state = info.get("State", {})
        status = state.get("Status")
        # A crashing unit under a restart policy shows "restarting", or "running" again with a
        # restart count: either way it will not come up by waiting.
        if status in ("exited", "dead") or info.get("RestartCount", 0) > 0 or not info:
            code = state.get("ExitCode")
            raise ApplyError(
                f"{what} container exited (code {code}){log_tail(engine, container, mask, name)}"
            )
        if status == "running":
            if probe.kind == "log":
                # Only what this start logged: a restarted container still holds the last start's lines.
                since = started_since(state.get("StartedAt", ""))
                logs = engine.container_logs(container, tail=50, since=since).decode(errors="replace")
                if probe.marker in logs:
                    break
                last_error = f"its log does not show {probe.marker!r} yet"
            else:
                try:
                    code = http_probe(address, probe.port, ca_pem, acme=acme)
                    if code == 200:
                        break
                    last_error = f"GET / answered {code}"
                except (OSError, ssl.SSLError) as exc:
                    last_error = str(exc) or type(exc).__name__
        if time.monotonic() > deadline:
            where = f"on {address}:{probe.port}" if probe.kind == "http" else "to start"
            raise ApplyError(
                f"{what} did not answer {where} within {timeout:g}s ({last_error})"
                f"{log_tail(engine, container, mask, name)}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    if probe.kind != "http":
        return
    logs = engine.container_logs(container, tail=200).decode(errors="replace")
    if any(marker in logs for marker in HTPASSWD_MISSING):
        tail = log_tail(engine, container, mask, name)
        raise ApplyError(f"the registry found no htpasswd file and made its own user{tail}")


def started_since(started_at: str) -> str:
    """Docker's StartedAt (RFC 3339, nanoseconds) as the logs API's ``since`` (``SECONDS.NANOS``)."""
    from datetime import datetime

    stamp, _, fraction = started_at.rstrip("Z").partition(".")
    try:
        seconds = int(datetime.fromisoformat(stamp + "+00:00").timestamp())
    except ValueError:
        return ""
    nanos = "".join(c for c in fraction if c.isdigit())[:9].ljust(9, "0")
    return f"{seconds}.{nanos}"


def log_tail(
    engine: Engine, container: str, mask: Callable[[str], str], name: str = "", lines: int = 8
) -> str:
    """The unit's own complaint (panic/fatal/error lines) or else its last log lines, secrets
    masked."""
    try:
        text = engine.container_logs(container, tail=300).decode(errors="replace").strip()
    except RegdeployError:
        return ""
    all_lines = text.splitlines()
    # A Go panic is followed by a long stack trace: its first line, and the frame that panicked
    # (function, then file:line), are what the user and a bug report need.
    wanted = [ln for ln in all_lines if ln.startswith(("panic:", "fatal")) or "level=fatal" in ln
              or "level=error" in ln]  # fmt: skip
    chosen = (wanted or all_lines)[-lines:] + panic_frame(all_lines)
    if not chosen:
        return ""
    return f"\n  {name or container} log:\n    " + "\n    ".join(mask(line)[:300] for line in chosen)


def panic_frame(lines: list[str]) -> list[str]:
    """The panicking goroutine's top frame of a Go panic (``in FUNC`` and ``at FILE:LINE``), or []."""
    for k, line in enumerate(lines):
        if line.startswith("goroutine ") and line.rstrip().endswith("[running]:") and k + 2 < len(lines):
            func = lines[k + 1].strip()
            where = lines[k + 2].strip().split(" +0x")[0]
            return [f"in {func.split('(')[0]}", f"at {where}"]
    return []
