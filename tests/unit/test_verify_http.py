"""Registry protocol helpers: Link paging, upload locations, error wording (pure, fake clients)."""

from __future__ import annotations

import json
import socket
import ssl

import pytest

from regdeploy.verify.api import upload_path
from regdeploy.verify.auth import basic_realm
from regdeploy.verify.catalog import find_repository, list_tags, next_link, with_page_size
from regdeploy.verify.engine import drain
from regdeploy.verify.model import CheckFailed, describe_error, registry_error
from regdeploy.verify.registry_api import Response


def _resp(status: int, body: object = None, **headers: str) -> Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    return Response(status, {k.lower(): v for k, v in headers.items()}, data)


class FakeClient:
    """Answers GETs from a path -> Response table and records the paths asked for."""

    def __init__(self, answers: dict[str, Response]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def request(self, method: str, path: str, **_: object) -> Response:
        self.asked.append(path)
        return self.answers[path]


def test_next_link():
    assert next_link('</v2/_catalog?last=a&n=1>; rel="next"') == "/v2/_catalog?last=a&n=1"
    assert next_link("<https://reg:5000/v2/_catalog?n=1&last=b>; rel=next") == "/v2/_catalog?n=1&last=b"
    assert next_link(None) is None and next_link('</x>; rel="prev"') is None


def test_with_page_size_keeps_last():
    assert with_page_size("/v2/_catalog?last=exp%2Fa&n=1", 1000) == "/v2/_catalog?last=exp%2Fa&n=1000"


def test_catalog_first_page_then_follows_links_with_big_pages():
    client = FakeClient(
        {
            "/v2/_catalog?n=1": _resp(
                200, {"repositories": ["alpha"]}, Link='</v2/_catalog?last=alpha&n=1>; rel="next"'
            ),
            "/v2/_catalog?last=alpha&n=1000": _resp(
                200, {"repositories": ["beta", "regdeploy-smoke", "zeta"]}
            ),
        }
    )
    search = find_repository(client, "regdeploy-smoke")  # type: ignore[arg-type]
    assert (search.found, search.pages, search.seen) == (True, 2, 4)
    assert client.asked == ["/v2/_catalog?n=1", "/v2/_catalog?last=alpha&n=1000"]


def test_catalog_without_the_repository_and_errors():
    client = FakeClient({"/v2/_catalog?n=1": _resp(200, {"repositories": ["alpha"]})})
    assert not find_repository(client, "regdeploy-smoke").found  # type: ignore[arg-type]
    client = FakeClient(
        {"/v2/_catalog?n=1": _resp(401, {"errors": [{"code": "UNAUTHORIZED", "message": "x"}]})}
    )
    with pytest.raises(CheckFailed, match=r"GET /v2/_catalog\?n=1 answered 401 UNAUTHORIZED: x"):
        find_repository(client, "regdeploy-smoke")  # type: ignore[arg-type]


def test_tags_follow_links():
    client = FakeClient(
        {
            "/v2/r/tags/list": _resp(200, {"tags": ["a"]}, Link='</v2/r/tags/list?last=a>; rel="next"'),
            "/v2/r/tags/list?last=a": _resp(200, {"name": "r", "tags": None}),
        }
    )
    assert list_tags(client, "r") == ["a"]  # type: ignore[arg-type]


def test_upload_path():
    location = "https://127.0.0.1:5000/v2/r/blobs/uploads/u1?_state=abc"
    assert upload_path(location) == "/v2/r/blobs/uploads/u1?_state=abc"
    assert upload_path(location, "sha256:00") == "/v2/r/blobs/uploads/u1?_state=abc&digest=sha256%3A00"
    assert upload_path("/v2/r/blobs/uploads/u2", "sha256:00") == "/v2/r/blobs/uploads/u2?digest=sha256%3A00"
    with pytest.raises(CheckFailed, match="no upload Location"):
        upload_path(None)


def test_registry_error_wording():
    body = {"errors": [{"code": "UNSUPPORTED", "message": "The operation is unsupported.", "detail": None}]}
    assert registry_error(_resp(405, body)) == "405 UNSUPPORTED: The operation is unsupported."
    assert registry_error(_resp(405, b"Method not allowed\n")) == "405 Method not allowed"
    assert registry_error(_resp(500, b"")) == "500"
    assert registry_error(_resp(404, {"errors": []})) == "404"


def test_describe_error():
    assert describe_error(ConnectionRefusedError(111, "Connection refused")) == "connection refused"
    assert describe_error(TimeoutError()) == "timed out"
    assert describe_error(socket.gaierror(-2, "Name or service not known")) == (
        "cannot resolve the name: Name or service not known"
    )
    err = ssl.SSLCertVerificationError(1, "x")
    err.verify_message = "unable to get local issuer certificate"
    assert describe_error(err) == "certificate verify failed: unable to get local issuer certificate"


def test_basic_realm():
    assert basic_realm(_resp(401, **{"WWW-Authenticate": 'Basic realm="regdeploy"'})) == "regdeploy"
    assert basic_realm(_resp(401, **{"WWW-Authenticate": "Basic"})) == ""
    assert basic_realm(_resp(401, **{"WWW-Authenticate": 'Bearer realm="https://auth",service="r"'})) is None
    assert basic_realm(_resp(401)) is None


def test_engine_progress_streams():
    push = [
        {"status": "The push refers to repository [localhost:5000/regdeploy-smoke]"},
        {"status": "Pushed", "id": "6eb90efc0d0e"},
        {"status": "engine-x: digest: sha256:f496 size: 524"},
        {"aux": {"Tag": "engine-x", "Digest": "sha256:f496", "Size": 524}},
    ]
    assert drain(iter(push)) == "sha256:f496"
    pull = [{"status": "Pulling from regdeploy-smoke", "id": "engine-x"}, {"status": "Digest: sha256:f496"}]
    assert drain(iter(pull)) == "sha256:f496"
    failed = [{"errorDetail": {"message": "unauthorized: authentication required"}, "error": "unauthorized"}]
    with pytest.raises(CheckFailed, match=r"^unauthorized: authentication required$"):
        drain(iter(failed))
