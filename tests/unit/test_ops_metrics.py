"""The Prometheus text format reader, on a page registry 2.8.2 served and on the format's corners."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from regdeploy.ops.metrics import MetricsFormatError, Sample, parse, read_counts, request_counts

# GET /metrics of registry 2.8.2 (Debian 2.8.2+ds1) after a push, a pull, a 404, a catalog and a delete.
PAGE = (Path(__file__).parent / "data" / "registry-2.8.2-metrics.txt").read_text()


def test_the_registry_page() -> None:
    samples = parse(PAGE)
    assert len(samples) > 400
    counts = request_counts(samples)
    assert counts.as_dict() == {
        "requests": 10,
        "errors": 0,
        "codes": {"200": 3, "201": 3, "202": 3, "404": 1},
    }
    uploads = [s for s in samples if s.name == "registry_http_requests_total" and s.label("code") == "201"]
    assert {s.label("handler") for s in uploads} == {"blob_upload_chunk", "manifest"}


def test_errors_are_the_5xx() -> None:
    text = """
# TYPE registry_http_requests_total counter
registry_http_requests_total{code="200",handler="blob",method="get"} 1.2e+01
registry_http_requests_total{code="401",handler="base",method="get"} 40
registry_http_requests_total{code="500",handler="blob",method="get"} 2
registry_http_requests_total{code="503",handler="manifest",method="put"} 1
registry_http_requests_total{handler="x"} 1
other_requests_total{code="500"} 99
"""
    counts = request_counts(parse(text))
    assert (counts.requests, counts.errors) == (56, 3)
    assert counts.codes == {"200": 12, "401": 40, "500": 2, "503": 1, "unknown": 1}


@pytest.mark.parametrize(
    ("line", "sample"),
    [
        ("up 1", Sample("up", (), 1.0)),
        ("up 1 1712345678000", Sample("up", (), 1.0)),
        ("a:b_c{} 2", Sample("a:b_c", (), 2.0)),
        ('m{a="x",b="y",} -3.5', Sample("m", (("a", "x"), ("b", "y")), -3.5)),
        ('m{ a = "x" , b="y" } 1', Sample("m", (("a", "x"), ("b", "y")), 1.0)),
        ('m{a "x"} 1', None),
        ('m{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 1',
         Sample("m", (("a", 'q"uote'), ("b", "back\\slash"), ("c", "new\nline")), 1.0)),
        ('m{a="} {, ="} 4', Sample("m", (("a", "} {, ="),), 4.0)),
        ("m +Inf", Sample("m", (), math.inf)),
        ("m -Inf", Sample("m", (), -math.inf)),
        ("m\t7", Sample("m", (), 7.0)),
    ],
)  # fmt: skip
def test_sample_lines(line: str, sample: Sample | None) -> None:
    if sample is None:
        with pytest.raises(MetricsFormatError):
            parse(line)
    else:
        assert parse(line) == [sample]


def test_nan_is_read_and_not_counted() -> None:
    (s,) = parse('registry_http_requests_total{code="200"} NaN')
    assert math.isnan(s.value)
    assert request_counts([s]).requests == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{a=\"1\"} 1", "line 1: no metric name"),
        ("# ok\nm", "line 2: expected a value"),
        ("m 1 2 3", "expected a value (and an optional timestamp)"),
        ("m one", "bad value 'one'"),
        ("m 1 soon", "bad timestamp 'soon'"),
        ('m{a="1" b="2"} 1', "expected , or } after a label"),
        ('m{a="1} 1', "unterminated value"),
        ("m{1a=\"1\"} 1", "bad label name"),
        ("m{a=1} 1", "expected =\""),
        ('m{a="1"}1', "expected a value"),
        ("<html>not found</html>", "no metric name"),
    ],
)
def test_bad_pages_name_the_line(text: str, message: str) -> None:
    with pytest.raises(MetricsFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


@pytest.fixture
def server() -> Iterator[tuple[int, dict[str, tuple[int, bytes]]]]:
    pages: dict[str, tuple[int, bytes]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = pages.get(self.path, (404, b"404 page not found\n"))
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], pages
    httpd.shutdown()
    httpd.server_close()


def test_read_counts_over_http(server: tuple[int, dict[str, tuple[int, bytes]]]) -> None:
    port, pages = server
    pages["/metrics"] = (200, PAGE.encode())
    assert read_counts("127.0.0.1", port).requests == 10
    with pytest.raises(OSError, match=r"answered 404: is http.debug.prometheus enabled\?"):
        read_counts("127.0.0.1", port, "/elsewhere")
    pages["/metrics"] = (500, b"oops")
    with pytest.raises(OSError, match="answered 500"):
        read_counts("127.0.0.1", port)
