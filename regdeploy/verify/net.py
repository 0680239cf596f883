"""``tcp`` and ``tls``: the published port answers, and its certificate is one clients will trust."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime

from cryptography import x509

from regdeploy.errors import RegdeployError
from regdeploy.verify.context import VerifyContext
from regdeploy.verify.model import CheckFailed, NotApplicable, describe_error

CONNECT_TIMEOUT = 3.0
_PROTOCOLS_OK = ("TLSv1.2", "TLSv1.3")


def check_tcp(ctx: VerifyContext) -> str:
    t = ctx.target
    try:
        with socket.create_connection((t.address, t.port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise CheckFailed(f"{t.address}:{t.port}: {describe_error(exc)}{_container_state(ctx)}") from None
    return f"{t.address}:{t.port} accepts connections"


def _container_state(ctx: VerifyContext) -> str:
    """Why nothing answers, when the host's engine can tell: the usual cause is the container."""
    name = ctx.job.spec.name
    try:
        info = ctx.transport.engine().inspect_container(name)
    except RegdeployError as exc:
        return f" (and the host's Docker engine cannot be asked: {exc})"
    if info is None:
        return f" (container {name!r} does not exist: run regdeploy up)"
    state = info.get("State") or {}
    status = state.get("Status", "unknown")
    if status != "running":
        return f" (container {name!r} is {status}, exit code {state.get('ExitCode')})"
    return f" (container {name!r} is running: is port {ctx.target.port} published and not firewalled?)"


def check_tls(ctx: VerifyContext) -> str:
    t = ctx.target
    if t.ca_pem is None:
        raise NotApplicable("plain HTTP (tls.mode none): no certificate to check")
    context = ssl.create_default_context(cadata=t.ca_pem.decode())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        with (
            socket.create_connection((t.address, t.port), timeout=CONNECT_TIMEOUT) as sock,
            context.wrap_socket(sock, server_hostname=t.server_name) as tls,
        ):
            version = tls.version() or "unknown"
            cipher = (tls.cipher() or ("?",))[0]
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        message = (exc.verify_message or "").rstrip(".")
        raise CheckFailed(f"certificate verify failed: {message}{_explain(ctx, exc)}") from None
    except ssl.SSLError as exc:
        if exc.reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION"):
            raise CheckFailed("the server offers no protocol of TLS 1.2 or later") from None
        if exc.reason == "WRONG_VERSION_NUMBER":
            raise CheckFailed("the port does not speak TLS (plain HTTP?)") from None
        raise CheckFailed(describe_error(exc)) from None
    except OSError as exc:
        raise CheckFailed(describe_error(exc)) from None
    if version not in _PROTOCOLS_OK:  # the context refuses older ones; kept as the check's statement
        raise CheckFailed(f"negotiated {version}, older than TLS 1.2")
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    days = (cert.not_valid_after_utc - datetime.now(UTC)).days
    text = (
        f"{version} ({cipher}), certificate for {', '.join(_names(cert))} valid for {t.server_name}, "
        f"issued by the inventory's CA, expires in {days} days ({cert.not_valid_after_utc:%Y-%m-%d})"
    )
    renew = ctx.job.spec.tls.renew_before
    if days < renew and ctx.job.spec.tls.mode in ("selfsigned", "ca"):
        text += f"; due for renewal (tls.renew_before {renew}): run regdeploy up"
    return text


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n.value) for n in san if isinstance(n, x509.DNSName | x509.IPAddress)]


def _peer_certificate(ctx: VerifyContext) -> x509.Certificate | None:
    """The certificate the server presents, fetched without verification, to explain a failure."""
    t = ctx.target
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((t.address, t.port), timeout=CONNECT_TIMEOUT) as sock,
            context.wrap_socket(sock, server_hostname=t.server_name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    return x509.load_der_x509_certificate(der) if der else None


def _key_id(cert: x509.Certificate, authority: bool) -> str | None:
    try:
        if authority:
            aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
            raw = aki.key_identifier
        else:
            raw = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None
    return raw.hex(":")[:23] if raw else None  # the first 8 bytes tell CAs apart


def _explain(ctx: VerifyContext, exc: ssl.SSLCertVerificationError) -> str:
    peer = _peer_certificate(ctx)
    if peer is None:
        return ""
    assert ctx.target.ca_pem is not None
    if "mismatch" in (exc.verify_message or ""):
        names = ", ".join(_names(peer)) or "none"
        return (
            f"; the certificate names {names}: add {ctx.target.server_name!r} to registry.tls.sans "
            "and run regdeploy up"
        )
    ca = x509.load_pem_x509_certificate(ctx.target.ca_pem)
    issuer = peer.issuer.rfc4514_string()
    issuer_id = _key_id(peer, authority=True)
    ca_id = _key_id(ca, authority=False)
    if issuer_id and ca_id and issuer_id != ca_id:
        return (
            f"; the server's certificate was issued by {issuer} (key id {issuer_id}), "
            f"not by the inventory's CA {ca.subject.rfc4514_string()} (key id {ca_id})"
        )
    return f"; the server's certificate was issued by {issuer}"
