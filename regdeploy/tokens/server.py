"""Run the token endpoint: cheroot's threaded WSGI server, TLS, bounded requests, clean stop on signals.

cheroot (CherryPy's server) rather than ``http.server``: a worker pool, request-line, header and
body limits, per-connection timeouts and a TLS adapter, all without a reverse proxy in front.
"""

from __future__ import annotations

import logging
import signal
import ssl
import sys
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from cryptography import x509

from regdeploy.errors import InputError, RegdeployError
from regdeploy.tokens.app import MAX_BODY_BYTES, TokenApp
from regdeploy.tokens.config import TlsFiles, TokenConfig
from regdeploy.tokens.issue import load_signing
from regdeploy.tokens.oidc import OidcVerifier
from regdeploy.tokens.users import UserFile

THREADS = 8
SOCKET_TIMEOUT = 10  # seconds a client may idle mid-request: slow-loris connections are dropped
MAX_HEADER_BYTES = 16 * 1024  # request line plus headers; a Basic header with an OIDC JWT fits
LISTENING = "token server: listening on"  # the deploy side waits for this substring
_write_lock = threading.Lock()


def stderr_log(line: str) -> None:
    # One write per line under a lock: worker threads must not interleave halves of lines.
    with _write_lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def open_app(config: TokenConfig, log: Callable[[str], None] = stderr_log) -> TokenApp:
    """Load every file the server needs (keys, chain, users, JWKS): a bad one fails here, at start."""
    return TokenApp(
        service=config.service,
        issuer=config.issuer,
        expiry=config.expiry,
        anonymous=config.anonymous,
        acl=config.acl,
        signing=load_signing(config.signing.key, config.signing.chain),
        users=UserFile(config.users, log) if config.users is not None else None,
        oidc=OidcVerifier(config.oidc, log),
        log=log,
    )


def tls_context_check(tls: TlsFiles) -> x509.Certificate:
    """The TLS certificate (its first one), after proving that cert and key load and belong together."""
    for path in (tls.cert, tls.key):
        if not path.is_file():
            raise InputError(f"{path}: TLS {'certificate' if path == tls.cert else 'key'} not found")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    except ssl.SSLError as exc:
        raise InputError(
            f"{tls.cert}: TLS certificate and key {tls.key} do not load together: {exc.reason}"
        ) from None
    try:
        return x509.load_pem_x509_certificates(tls.cert.read_bytes())[0]
    except ValueError:
        raise InputError(f"{tls.cert}: not a PEM certificate") from None


def _adapter(tls: TlsFiles) -> BuiltinSSLAdapter:
    tls_context_check(tls)
    adapter = BuiltinSSLAdapter(str(tls.cert), str(tls.key))
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    return adapter


def url(config: TokenConfig) -> str:
    host = f"[{config.bind}]" if ":" in config.bind else config.bind
    return f"{'https' if config.tls else 'http'}://{host}:{config.port}"


def describe(config: TokenConfig, app: TokenApp) -> str:
    users = len(app.users) if app.users is not None else 0
    return f"service {config.service}, {users} users, {len(config.acl)} acl entries"


class _Server(wsgi.Server):
    """cheroot's server with its own messages routed to our log (and tracebacks only for errors)."""

    token_log: Callable[[str], None] = staticmethod(stderr_log)

    def error_log(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
        text = f"token server: http: {msg}".rstrip()
        if traceback and level >= logging.ERROR:
            text += "\n" + _format_exc()
        self.token_log(text)


def _format_exc() -> str:
    return traceback.format_exc().rstrip()


def make_server(config: TokenConfig, app: TokenApp, log: Callable[[str], None] = stderr_log) -> wsgi.Server:
    server = _Server(
        (config.bind, config.port),
        app,
        numthreads=THREADS,
        server_name="regdeploy-token",
        request_queue_size=64,
        timeout=SOCKET_TIMEOUT,
        shutdown_timeout=5,
    )
    server.token_log = log
    server.max_request_header_size = MAX_HEADER_BYTES
    # cheroot answers 413 itself above this, before the application reads anything.
    server.max_request_body_size = MAX_BODY_BYTES
    if config.tls is not None:
        server.ssl_adapter = _adapter(config.tls)
    return server


def serve(config: TokenConfig, log: Callable[[str], None] = stderr_log) -> int:
    """Serve until SIGTERM or SIGINT; 0 after a clean stop."""
    app = open_app(config, log)
    server = make_server(config, app, log)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            server.prepare()
        except OSError as exc:
            raise RegdeployError(
                f"token server: cannot listen on {url(config)}: {exc.strerror or exc}"
            ) from None
        log(f"{LISTENING} {url(config)} ({describe(config, app)})")
        # serve() runs in a thread so that the main thread only waits for a signal: stopping cheroot
        # from inside a signal handler, mid-accept, is not safe.
        thread = threading.Thread(target=server.serve, name="token-server", daemon=True)
        thread.start()
        while not stop.wait(0.5):
            if not thread.is_alive():
                log("token server: the server thread ended unexpectedly")
                return 1
        server.stop()
        thread.join(timeout=10)
        log("token server: stopped")
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def check(config: TokenConfig) -> list[str]:
    """Load everything serve() would and describe it (``auth serve --check``); InputError if not ok."""
    app = open_app(config, lambda line: None)
    signing = app.signing
    now = datetime.now(UTC)
    lines = [
        f"{config.source}: ok",
        f"  service {config.service}, issuer {config.issuer}, tokens valid {config.expiry}s",
        f"  listen {url(config)}",
    ]
    if config.tls is not None:
        cert = tls_context_check(config.tls)
        lines.append(f"  TLS certificate {config.tls.cert}, expires {_date(cert.not_valid_after_utc, now)}")
    else:
        lines.append("  TLS off: plain HTTP (for tests only; clients send passwords to this server)")
    lines.append(
        f"  signing key {config.signing.key} (EC P-256, kid {signing.kid}), chain of {len(signing.chain)} "
        f"certificates, leaf expires {_date(signing.leaf_expires, now)}"
    )
    if app.users is not None:
        lines.append(f"  users {config.users}: {len(app.users)} users")
    else:
        lines.append("  users: none (no password logins)")
    lines.append(f"  anonymous access {'on' if config.anonymous else 'off'}; {len(config.acl)} acl entries")
    for provider in config.oidc:
        lines.append(f"  oidc {provider.issuer} (audience {provider.audience}, account {provider.account})")
    return lines


def _date(moment: datetime, now: datetime) -> str:
    return f"{moment:%Y-%m-%d} (in {(moment - now).days} days)"
