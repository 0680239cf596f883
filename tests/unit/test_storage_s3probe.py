"""The S3 probe: SigV4 against AWS's published examples, and the probe against a stand-in S3 on loopback
(what it sends, what it makes of S3's answers, and that no message carries a credential)."""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from regdeploy.errors import EXIT_FAILED, HostError
from regdeploy.storage import s3probe
from regdeploy.storage.s3probe import S3Target, StorageError, probe, request, sign

# The AWS S3 SigV4 documentation's examples ("Examples: Signature Calculations in AWS Signature
# Version 4", Authenticating Requests: Using the Authorization Header).
AWS_KEYS = {
    "accesskey": "AKIAIOSFODNN7EXAMPLE",
    "secretkey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "region": "us-east-1",
    "when": datetime(2013, 5, 24, 0, 0, 0, tzinfo=UTC),
}
AWS_HOST = "examplebucket.s3.amazonaws.com"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
CREDENTIAL = "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"

ACCESS = "AKREGDEPLOYTEST0001"
SECRET = "s3cr3t/Key+ThatMustNeverShow"


def test_sign_the_aws_get_object_example() -> None:
    headers = sign("GET", AWS_HOST, "/test.txt", headers={"Range": "bytes=0-9"}, **AWS_KEYS)
    assert headers == {
        "Range": "bytes=0-9",
        "Host": AWS_HOST,
        "x-amz-date": "20130524T000000Z",
        "x-amz-content-sha256": EMPTY_SHA256,
        "Authorization": f"AWS4-HMAC-SHA256 {CREDENTIAL},SignedHeaders=host;range;x-amz-content-sha256;"
        "x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    }


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "payload", "signed", "signature"),
    [
        (  # PUT Object: a payload, a Date header, and a key with a character to encode ($ -> %24)
            "PUT",
            "/test$file.text",
            None,
            {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
            b"Welcome to Amazon S3.",
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        ),
        (  # GET Bucket Lifecycle: a query parameter without a value
            "GET",
            "/",
            {"lifecycle": ""},
            None,
            b"",
            "host;x-amz-content-sha256;x-amz-date",
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        ),
        (  # Get Bucket (List Objects): sorted query parameters
            "GET",
            "/",
            {"prefix": "J", "max-keys": "2"},
            None,
            b"",
            "host;x-amz-content-sha256;x-amz-date",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        ),
    ],
    ids=["put-object", "get-bucket-lifecycle", "list-objects"],
)
def test_sign_the_other_aws_examples(method, path, query, headers, payload, signed, signature) -> None:
    out = sign(method, AWS_HOST, path, query=query, headers=headers, payload=payload, **AWS_KEYS)
    assert out["Authorization"] == (
        f"AWS4-HMAC-SHA256 {CREDENTIAL},SignedHeaders={signed},Signature={signature}"
    )
    assert out["x-amz-content-sha256"] == hashlib.sha256(payload).hexdigest()


def test_sign_takes_any_timezone_and_naive_as_utc() -> None:
    keys = dict(AWS_KEYS)
    expected = sign("GET", AWS_HOST, "/test.txt", **keys)["Authorization"]
    keys["when"] = datetime(2013, 5, 24, 2, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert sign("GET", AWS_HOST, "/test.txt", **keys)["Authorization"] == expected
    keys["when"] = datetime(2013, 5, 24, 0, 0, 0)
    assert sign("GET", AWS_HOST, "/test.txt", **keys)["Authorization"] == expected


def test_sign_replaces_a_given_host_and_authorization() -> None:
    out = sign("GET", AWS_HOST, "/test.txt", headers={"host": "x", "Authorization": "y"}, **AWS_KEYS)
    assert out["Host"] == AWS_HOST
    assert "host" not in out
    assert out["Authorization"].startswith("AWS4-HMAC-SHA256 ")


@pytest.mark.parametrize(
    ("endpoint", "secure", "url"),
    [
        (None, True, "https://s3.eu-west-1.amazonaws.com"),
        ("http://10.0.0.5:8333/", True, "http://10.0.0.5:8333"),
        ("https://s3.example.com", False, "https://s3.example.com"),
        ("10.0.0.5:8333", False, "http://10.0.0.5:8333"),
        ("s3.example.com", True, "https://s3.example.com"),
    ],
)
def test_endpoint(endpoint: str | None, secure: bool, url: str) -> None:
    target = S3Target("b", "eu-west-1", ACCESS, SECRET, regionendpoint=endpoint, secure=secure)
    assert target.endpoint == url


@pytest.mark.parametrize(
    ("root", "prefix"), [("", ""), ("/", ""), ("/registry", "registry/"), ("a/b/", "a/b/")]
)
def test_prefix(root: str, prefix: str) -> None:
    assert S3Target("b", "r", ACCESS, SECRET, rootdirectory=root).prefix == prefix


def test_the_target_repr_holds_no_key() -> None:
    text = repr(S3Target("b", "r", ACCESS, SECRET))
    assert ACCESS not in text
    assert SECRET not in text


def test_storage_error_is_a_host_failure() -> None:
    assert issubclass(StorageError, HostError)
    assert StorageError("x").exit_code == EXIT_FAILED


# -- a stand-in S3 on loopback ---------------------------------------------------------------------


@dataclass
class Got:
    method: str
    path: str  # as sent, encoded
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeS3:
    """Objects in memory; ``answer`` may override the answer to one request."""

    port: int = 0
    objects: dict[str, bytes] = field(default_factory=dict)
    got: list[Got] = field(default_factory=list)
    answer: Callable[[Got], tuple[int, bytes] | None] = lambda got: None

    def target(self, **kwargs: object) -> S3Target:
        options: dict[str, object] = {"regionendpoint": f"http://127.0.0.1:{self.port}", **kwargs}
        return S3Target("registry", "us-east-1", ACCESS, SECRET, **options)

    def respond(self, got: Got) -> tuple[int, bytes]:
        self.got.append(got)
        override = self.answer(got)
        if override is not None:
            return override
        path = unquote(got.path)
        if got.method == "PUT":
            self.objects[path] = got.body
            return 200, b""
        if got.method == "GET" and path == "/registry":
            return 200, b"<ListBucketResult><KeyCount>0</KeyCount></ListBucketResult>"
        if got.method == "GET":
            if path not in self.objects:
                return 404, error_xml("NoSuchKey", "The specified key does not exist.")
            return 200, self.objects[path]
        if got.method == "DELETE":
            self.objects.pop(path, None)
            return 204, b""
        return 405, b""


def error_xml(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        "<Resource>/registry</Resource><RequestId>1</RequestId></Error>"
    ).encode()


@pytest.fixture
def s3() -> Iterator[FakeS3]:
    fake = FakeS3()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            got = Got(
                self.command,
                url.path,
                dict(parse_qsl(url.query, keep_blank_values=True)),
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            status, body = fake.respond(got)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_DELETE = _serve

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()


def assert_signed(got: Got, host: str) -> None:
    """What was sent is what was signed: recompute the signature from the request as received."""
    assert got.headers["host"] == host
    assert got.headers["x-amz-content-sha256"] == hashlib.sha256(got.body).hexdigest()
    when = datetime.strptime(got.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    again = sign(
        got.method, host, unquote(got.path), accesskey=ACCESS, secretkey=SECRET, region="us-east-1",
        when=when, query=got.query, payload=got.body,
    )  # fmt: skip
    assert got.headers["authorization"] == again["Authorization"]


def test_probe_write_puts_reads_back_and_deletes(s3: FakeS3) -> None:
    seconds = probe(s3.target(rootdirectory="/registry"))
    assert 0 < seconds < 5
    assert [g.method for g in s3.got] == ["PUT", "GET", "DELETE"]
    paths = {g.path for g in s3.got}
    assert len(paths) == 1
    assert re.fullmatch(r"/registry/registry/\.regdeploy-probe-[0-9a-f]{16}", paths.pop())
    assert s3.got[0].body
    assert s3.objects == {}
    for got in s3.got:
        assert_signed(got, f"127.0.0.1:{s3.port}")


def test_probe_read_lists_one_key_under_the_root(s3: FakeS3) -> None:
    probe(s3.target(rootdirectory="/registry"), write=False)
    [got] = s3.got
    assert (got.method, got.path) == ("GET", "/registry")
    assert got.query == {"list-type": "2", "max-keys": "1", "prefix": "registry/"}
    assert_signed(got, f"127.0.0.1:{s3.port}")
    probe(s3.target(), write=False)
    assert s3.got[-1].query == {"list-type": "2", "max-keys": "1"}


def test_a_missing_bucket(s3: FakeS3) -> None:
    s3.answer = lambda got: (404, error_xml("NoSuchBucket", "The specified bucket does not exist"))
    with pytest.raises(StorageError) as info:
        probe(s3.target(), write=False)
    assert str(info.value) == (
        f"S3 at http://127.0.0.1:{s3.port} refused bucket 'registry' (GET /registry): "
        "NoSuchBucket: The specified bucket does not exist"
    )
    assert info.value.code == "NoSuchBucket"


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("SignatureDoesNotMatch", "(check secretkey)"),
        ("InvalidAccessKeyId", "(check accesskey)"),
        ("AccessDenied", "(the key lacks permission"),
    ],
)
def test_a_403_names_the_code_and_never_a_credential(s3: FakeS3, code: str, hint: str) -> None:
    def echo(got: Got) -> tuple[int, bytes]:
        # A careless server that echoes the request's credentials back in its message.
        auth = got.headers["authorization"]
        message = f"bad {auth} for {ACCESS} with {SECRET}, we wanted Signature={'ab' * 32}\nsecond line"
        return 403, error_xml(code, message)

    s3.answer = echo
    with pytest.raises(StorageError) as info:
        probe(s3.target())
    text = str(info.value)
    assert "refused bucket 'registry' (PUT /registry/.regdeploy-probe-" in text
    assert f"{code}: bad " in text
    assert hint in text
    assert "\n" not in text
    signature = s3.got[0].headers["authorization"].rsplit("=", 1)[1]
    for secret in (SECRET, ACCESS, signature, "AWS4-HMAC-SHA256 Credential"):
        assert secret not in text
    assert "Signature=***" in text
    assert info.value.__context__ is None
    assert info.value.__cause__ is None
    assert SECRET not in repr(info.value)


def test_an_answer_that_is_not_xml(s3: FakeS3) -> None:
    s3.answer = lambda got: (502, b"<html>bad gateway</html")
    expected = r"refused bucket 'registry' \(GET /registry\): HTTP 502 Bad Gateway$"
    with pytest.raises(StorageError, match=expected):
        probe(s3.target(), write=False)


def test_different_bytes_read_back_still_deletes(s3: FakeS3) -> None:
    s3.answer = lambda got: (200, b"something else") if got.method == "GET" else None
    expected = r"reading back '\.regdeploy-probe-[0-9a-f]+' gave different bytes \(14 bytes, \d+ written\)$"
    with pytest.raises(StorageError, match=expected):
        probe(s3.target())
    assert [g.method for g in s3.got] == ["PUT", "GET", "DELETE"]
    assert s3.objects == {}


def test_a_failed_read_still_deletes_and_reports_the_read(s3: FakeS3) -> None:
    s3.answer = lambda got: (500, error_xml("InternalError", "oops")) if got.method != "PUT" else None
    expected = r"\(GET /registry/\.regdeploy-probe-[0-9a-f]+\): InternalError: oops$"
    with pytest.raises(StorageError, match=expected):
        probe(s3.target())
    assert [g.method for g in s3.got] == ["PUT", "GET", "DELETE"]


def test_a_failed_write_still_deletes_and_reports_the_write(s3: FakeS3) -> None:
    # A PUT the client gave up on may still have been stored: the probe must not leave it behind.
    s3.answer = lambda got: (503, error_xml("SlowDown", "busy")) if got.method == "PUT" else None
    with pytest.raises(StorageError, match=r"\(PUT /registry/\.regdeploy-probe-[0-9a-f]+\): SlowDown: busy$"):
        probe(s3.target())
    assert [g.method for g in s3.got] == ["PUT", "DELETE"]


def test_request_on_the_bucket_and_an_encoded_key(s3: FakeS3) -> None:
    assert request(s3.target(), "PUT", "a b/c$d.txt", body=b"x") == b""
    assert s3.got[0].path == "/registry/a%20b/c%24d.txt"
    assert_signed(s3.got[0], f"127.0.0.1:{s3.port}")
    assert request(s3.target(), "GET", "a b/c$d.txt") == b"x"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused() -> None:
    port = free_port()
    target = S3Target("registry", "us-east-1", ACCESS, SECRET, regionendpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(StorageError) as info:
        probe(target)
    assert str(info.value) == (
        f"cannot reach S3 at http://127.0.0.1:{port} (bucket 'registry'): connection refused"
    )
    assert info.value.__context__ is None
    assert info.value.code is None


def test_no_answer_times_out() -> None:
    with socket.socket() as sock:  # listens, never accepts: the connect succeeds, the read waits
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        endpoint = f"127.0.0.1:{port}"
        target = S3Target("registry", "us-east-1", ACCESS, SECRET, regionendpoint=endpoint, secure=False)
        expected = rf"^cannot reach S3 at http://{endpoint} \(bucket 'registry'\): no answer within 0\.2s$"
        with pytest.raises(StorageError, match=expected):
            probe(target, write=False, timeout=0.2)


@pytest.mark.parametrize("endpoint", ["ftp://host", "http://host:notaport", "http://"])
def test_a_bad_endpoint(endpoint: str) -> None:
    with pytest.raises(StorageError, match="is not an http\\(s\\) URL"):
        probe(S3Target("b", "r", ACCESS, SECRET, regionendpoint=endpoint))


def test_a_key_that_cannot_be_a_header_value(s3: FakeS3) -> None:
    target = S3Target("registry", "us-east-1", "AK\nX", SECRET, regionendpoint=f"http://127.0.0.1:{s3.port}")
    with pytest.raises(StorageError, match="cannot be sent in an HTTP header") as info:
        probe(target)
    assert "AK\nX" not in str(info.value)
    assert info.value.__context__ is None


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (TimeoutError("timed out"), "no answer within 5s"),
        (socket.gaierror(-2, "Name unknown"), "cannot resolve the host name: Name unknown"),
        (ConnectionResetError(104, "reset"), "connection reset by the server"),
        (OSError(113, "No route to host"), "OSError: No route to host"),
    ],
)
def test_describe_connection_failures(exc: OSError, text: str) -> None:
    assert s3probe._describe(exc, 5.0) == text


def test_describe_tls_failures() -> None:
    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cert.verify_message = "self-signed certificate"
    assert s3probe._describe(cert, 5.0) == (
        "TLS certificate not trusted: self-signed certificate"
        " (storage.s3.skipverify, or a CA the host trusts?)"
    )
    assert s3probe._describe(ssl.SSLError(1, "x"), 5.0).startswith("TLS failed: ")


@pytest.mark.parametrize(
    ("body", "parsed"),
    [
        (error_xml("NoSuchBucket", "The specified\n   bucket does not exist"),
         ("NoSuchBucket", "The specified bucket does not exist")),
        (b'<Error xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Code>AccessDenied</Code></Error>',
         ("AccessDenied", "")),
        (b"<Error><Code>X</Code><Message>" + b"m" * 1000 + b"</Message></Error>", ("X", "m" * 300)),
        (b"not xml", ("", "")),
        (b"", ("", "")),
    ],
)  # fmt: skip
def test_s3_error_documents(body: bytes, parsed: tuple[str, str]) -> None:
    assert s3probe._s3_error(body) == parsed
