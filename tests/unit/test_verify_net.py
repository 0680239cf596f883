"""The tls and tcp checks against an in-process TLS server on loopback (certificates from regdeploy.pki)."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from regdeploy import pki
from regdeploy.spec.registry import TlsSpec
from regdeploy.verify.context import Target, VerifyContext
from regdeploy.verify.model import CheckFailed, NotApplicable
from regdeploy.verify.net import check_tcp, check_tls


@contextlib.contextmanager
def tls_server(tmp_path: Path, sans: list[str], days: int = 90) -> Iterator[tuple[int, bytes]]:
    ca_key = pki.generate_key("ecdsa-p256")
    ca = pki.make_ca(ca_key, days=365)
    key = pki.generate_key("ecdsa-p256")
    cert = pki.issue_server_cert(ca, ca_key, key, sans, days=days)
    (tmp_path / "server.crt").write_bytes(cert)
    (tmp_path / "server.key").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)  # accept() wakes up to see the stop flag: close() alone does not wake it
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], ca
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _ctx(port: int, ca: bytes | None, name: str = "localhost", renew_before: int = 30) -> VerifyContext:
    target = Target("reg", "127.0.0.1", port, name, ca, "alice", "pw")
    spec = SimpleNamespace(
        name="registry", tls=TlsSpec(mode="selfsigned", renew_before=renew_before, days=397)
    )
    job = SimpleNamespace(name="reg", spec=spec)
    return VerifyContext(job, target, SimpleNamespace())  # type: ignore[arg-type]


def test_tls_passes_with_the_right_ca_and_name(tmp_path):
    with tls_server(tmp_path, ["localhost", "127.0.0.1"]) as (port, ca):
        detail = check_tls(_ctx(port, ca))
        assert check_tcp(_ctx(port, ca)) == f"127.0.0.1:{port} accepts connections"
    assert detail.startswith("TLSv1.3 (")
    assert "certificate for localhost, 127.0.0.1 valid for localhost, issued by the inventory's CA" in detail
    assert "expires in 89 days" in detail and "renewal" not in detail


def test_tls_says_when_renewal_is_due(tmp_path):
    with tls_server(tmp_path, ["localhost"], days=10) as (port, ca):
        detail = check_tls(_ctx(port, ca))
    due = r"expires in 9 days \(\d{4}-\d\d-\d\d\); due for renewal \(tls.renew_before 30\): run regdeploy up$"
    assert re.search(due, detail), detail


def test_tls_with_another_ca(tmp_path):
    other = pki.make_ca(pki.generate_key("ecdsa-p256"), days=30)
    with tls_server(tmp_path, ["localhost"]) as (port, _), pytest.raises(CheckFailed) as info:
        check_tls(_ctx(port, other))
    message = str(info.value)
    assert message.startswith("certificate verify failed: unable to get local issuer certificate; ")
    assert "the server's certificate was issued by CN=regdeploy CA (key id " in message
    assert "not by the inventory's CA CN=regdeploy CA (key id " in message


@pytest.mark.parametrize(("name", "kind"), [("registry.example", "Hostname"), ("127.0.0.2", "IP address")])
def test_tls_with_a_name_the_certificate_lacks(tmp_path, name, kind):
    with tls_server(tmp_path, ["localhost", "127.0.0.1"]) as (port, ca), pytest.raises(CheckFailed) as info:
        check_tls(_ctx(port, ca, name))
    assert str(info.value) == (
        f"certificate verify failed: {kind} mismatch, certificate is not valid for '{name}'; "
        f"the certificate names localhost, 127.0.0.1: add '{name}' to registry.tls.sans and run regdeploy up"
    )


def test_tls_against_plain_http(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    ca = pki.make_ca(pki.generate_key("ecdsa-p256"), days=30)
    try:
        with pytest.raises(CheckFailed, match=r"the port does not speak TLS \(plain HTTP\?\)"):
            check_tls(_ctx(listener.getsockname()[1], ca))
    finally:
        listener.close()
        thread.join(5)


def test_tls_does_not_apply_without_tls():
    with pytest.raises(NotApplicable, match=r"plain HTTP \(tls.mode none\)"):
        check_tls(_ctx(1, None))
