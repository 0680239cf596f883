"""Is an S3 bucket reachable, readable and writable with the registry's credentials?

Standard library only: AWS Signature Version 4 by hand (:func:`sign`, a pure function of the request
and the time, so AWS's published examples test it), path-style URLs (``endpoint/bucket/key``, which
MinIO, Ceph and SeaweedFS need and AWS still serves), one connection per request.

No message, exception or log line ever holds the access key, the secret key, a signature or an
Authorization header: what a server echoes back is scrubbed, and errors are raised outside the
``except`` blocks so that no chained exception carries a request along.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import re
import secrets
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from regdeploy.errors import HostError, describe_network_error

MAX_BODY = 1 << 20  # an error document or the probe object; anything longer is not an answer we want
_HINTS = {
    "SignatureDoesNotMatch": " (check secretkey)",
    "InvalidAccessKeyId": " (check accesskey)",
    "AccessDenied": " (the key lacks permission for this bucket or prefix)",
    "RequestTimeTooSkewed": " (check this machine's clock)",
    "AuthorizationHeaderMalformed": " (check region)",
    "PermanentRedirect": " (check region and regionendpoint)",
}
_AUTH_PARTS = re.compile(r"(Credential|Signature)=[^\s,]+")


@dataclass(frozen=True)
class S3Target:
    """The registry's ``storage.s3`` settings that decide whether the bucket can be used."""

    bucket: str
    region: str
    accesskey: str = field(repr=False)
    secretkey: str = field(repr=False)
    regionendpoint: str | None = None  # "http://10.0.0.5:8333"; None: AWS
    rootdirectory: str = ""  # key prefix, e.g. "/registry"
    secure: bool = True  # only when regionendpoint has no scheme
    skipverify: bool = False

    @property
    def endpoint(self) -> str:
        """The base URL requests go to, without a trailing slash (also what messages name)."""
        if not self.regionendpoint:
            return f"https://s3.{self.region}.amazonaws.com"
        url = self.regionendpoint
        if "://" not in url:
            url = ("https://" if self.secure else "http://") + url
        return url.rstrip("/")

    @property
    def prefix(self) -> str:
        """The key prefix the registry writes under: ``registry/`` for rootdirectory ``/registry``."""
        root = self.rootdirectory.strip("/")
        return f"{root}/" if root else ""


class StorageError(HostError):
    """The registry's object storage cannot be reached, or refused an operation. One line, no secrets."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code  # the S3 error Code ("NoSuchBucket"...), when the server sent one


def sign(
    method: str,
    host: str,
    path: str,
    *,
    accesskey: str,
    secretkey: str,
    region: str,
    when: datetime,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    payload: bytes = b"",
    service: str = "s3",
) -> dict[str, str]:
    """The headers to send: *headers* plus Host, x-amz-date, x-amz-content-sha256 and Authorization.

    *path* is the unencoded URL path (``/bucket/key``); the request must send :func:`encode_path` of it
    and :func:`encode_query` of *query*. The payload hash is the real one: not every server accepts
    UNSIGNED-PAYLOAD.
    """
    stamp = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    amz_date = stamp.strftime("%Y%m%dT%H%M%SZ")
    payload_hash = hashlib.sha256(payload).hexdigest()
    out = {k: v for k, v in (headers or {}).items() if k.lower() not in ("host", "authorization")}
    out.update({"Host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash})
    canonical = {k.lower(): " ".join(v.split()) for k, v in out.items()}
    names = sorted(canonical)
    signed_headers = ";".join(names)
    request = "\n".join(
        [
            method.upper(),
            encode_path(path),
            encode_query(query or {}),
            "".join(f"{n}:{canonical[n]}\n" for n in names),
            signed_headers,
            payload_hash,
        ]
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(request.encode()).hexdigest()}"
    key = f"AWS4{secretkey}".encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={accesskey}/{scope},"
        f"SignedHeaders={signed_headers},Signature={signature}"
    )
    return out


def encode_path(path: str) -> str:
    """SigV4's URI encoding of a path: everything but unreserved characters and ``/``, once."""
    return quote(path, safe="/-_.~")


def encode_query(query: Mapping[str, str]) -> str:
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in query.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def request(
    target: S3Target,
    method: str,
    key: str = "",
    *,
    query: Mapping[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 5.0,
) -> bytes:
    """One signed request on the bucket (``key=""``) or an object of it; the response body of a 2xx.

    Anything else raises :class:`StorageError` naming the endpoint, the bucket and the reason.
    """
    endpoint = target.endpoint
    where = f"{method} /{target.bucket}/{key}".rstrip("/")
    try:
        url = urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(endpoint)
        port = url.port
    except ValueError:
        raise StorageError(f"S3 regionendpoint {target.regionendpoint!r} is not an http(s) URL") from None
    name = f"[{url.hostname}]" if ":" in url.hostname else url.hostname  # IPv6 literals keep brackets
    host = name if port is None else f"{name}:{port}"
    path = f"{url.path.rstrip('/')}/{target.bucket}" + (f"/{key}" if key else "")
    headers = sign(
        method,
        host,
        path,
        accesskey=target.accesskey,
        secretkey=target.secretkey,
        region=target.region,
        when=datetime.now(UTC),
        query=query,
        payload=body,
    )
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        context = ssl.create_default_context()
        if target.skipverify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(url.hostname, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(url.hostname, port, timeout=timeout)
    target_path = encode_path(path) + (f"?{encode_query(query)}" if query else "")
    reason: str | None = None
    try:
        conn.request(method, target_path, body=body or None, headers=headers)
        resp = conn.getresponse()
        status, phrase, data = resp.status, resp.reason, resp.read(MAX_BODY)
    except OSError as exc:
        reason = _describe(exc, timeout)
    except http.client.HTTPException as exc:
        reason = f"not an S3 answer ({type(exc).__name__}: is this the S3 port, and http or https?)"
    except ValueError:  # http.client refuses a header value: a key with a newline or non-latin-1
        reason = "the access key or the region cannot be sent in an HTTP header"
    finally:
        conn.close()
    if reason is not None:
        raise StorageError(f"cannot reach S3 at {endpoint} (bucket '{target.bucket}'): {reason}")
    if 200 <= status < 300:
        return data
    code, message = _s3_error(data)
    detail = f"{code}: {message}" if code and message else code or f"HTTP {status} {phrase}".strip()
    text = f"S3 at {endpoint} refused bucket '{target.bucket}' ({where}): {detail}{_HINTS.get(code, '')}"
    raise StorageError(_scrub(text, target, headers["Authorization"]), code=code or None)


def probe(target: S3Target, write: bool = True, timeout: float = 5.0) -> float:
    """Prove the bucket usable; the seconds it took.

    ``write``: PUT a small object under the root directory, GET it back and compare, DELETE it (also
    when the read fails). Otherwise a ListObjectsV2 of one key under the root directory: read access.
    *timeout* applies to each request's connect and reads.
    """
    start = time.monotonic()
    if not write:
        query = {"list-type": "2", "max-keys": "1"}
        if target.prefix:
            query["prefix"] = target.prefix
        request(target, "GET", query=query, timeout=timeout)
        return time.monotonic() - start
    token = secrets.token_hex(8)
    key = f"{target.prefix}.regdeploy-probe-{token}"
    payload = f"regdeploy storage probe {token}\n".encode()
    try:
        request(target, "PUT", key, body=payload, timeout=timeout)
    except StorageError:
        with contextlib.suppress(StorageError):  # a PUT that timed out may still have been stored
            request(target, "DELETE", key, timeout=timeout)
        raise
    try:
        got = request(target, "GET", key, timeout=timeout)
    except StorageError:
        with contextlib.suppress(StorageError):  # the read's failure is the one to report
            request(target, "DELETE", key, timeout=timeout)
        raise
    request(target, "DELETE", key, timeout=timeout)
    if got != payload:
        raise StorageError(
            f"S3 at {target.endpoint} bucket '{target.bucket}': reading back {key!r} gave different bytes "
            f"({len(got)} bytes, {len(payload)} written)"
        )
    return time.monotonic() - start


def _s3_error(data: bytes) -> tuple[str, str]:
    """``(Code, Message)`` of an S3 XML error document, each one line; empty strings if it is not one."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return "", ""

    def text(name: str) -> str:
        found = root.find(name)
        if found is None:  # some servers qualify the names with the S3 namespace
            found = root.find(f"{{http://s3.amazonaws.com/doc/2006-03-01/}}{name}")
        return " ".join((found.text or "").split())[:300] if found is not None else ""

    return text("Code"), text("Message")


def _scrub(text: str, target: S3Target, authorization: str) -> str:
    """*text* without anything a server may echo back that belongs to the credentials."""
    for secret in sorted({target.secretkey, target.accesskey, authorization}, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return _AUTH_PARTS.sub(r"\1=***", text)


def _describe(exc: OSError, timeout: float) -> str:
    reason = describe_network_error(exc, timeout)
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason += " (storage.s3.skipverify, or a CA the host trusts?)"
    return reason
