"""Read a registry's request counters from its Prometheus endpoint (``registry.metrics``).

The registry (2.8 and 3.x, with ``http.debug.prometheus.enabled``) counts every request to an API
route in ``registry_http_requests_total{code, handler, method}``; ``GET /`` (the health probe) is no
route and is not counted. ``requests`` sums that counter; ``errors`` is its 5xx part, the registry's
own failures: 401 (every client's first request, the auth challenge) and 404 (a push asks whether
each blob exists first) are normal traffic, and stay visible by code in ``codes``.

The text format (version 0.0.4, which ``promhttp`` serves without content negotiation) is parsed
here: ``# HELP`` / ``# TYPE`` comments, ``name{label="value",...} value [timestamp]`` samples (blanks
allowed around labels and ``=``, as Prometheus' own parser allows), label values with ``\\\\``,
``\\"`` and ``\\n`` escapes, and ``NaN``/``+Inf``/``-Inf``.
"""

from __future__ import annotations

import http.client
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

REQUESTS_METRIC = "registry_http_requests_total"
_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
MAX_BYTES = 16 << 20


class MetricsFormatError(ValueError):
    """Not the Prometheus text format: ``str()`` names the line."""


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


@dataclass(frozen=True)
class RequestCounts:
    requests: int
    errors: int  # 5xx
    codes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"requests": self.requests, "errors": self.errors, "codes": dict(self.codes)}


def parse(text: str) -> list[Sample]:
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            samples.append(_sample(line))
        except MetricsFormatError as exc:
            raise MetricsFormatError(f"line {number}: {exc}: {line[:120]!r}") from None
    return samples


def request_counts(samples: Iterable[Sample], metric: str = REQUESTS_METRIC) -> RequestCounts:
    codes: dict[str, float] = {}
    for s in samples:
        if s.name == metric and not math.isnan(s.value):
            code = s.label("code") or "unknown"
            codes[code] = codes.get(code, 0.0) + s.value
    counts = {code: round(n) for code, n in sorted(codes.items())}
    return RequestCounts(
        requests=sum(counts.values()),
        errors=sum(n for code, n in counts.items() if code.startswith("5")),
        codes=counts,
    )


def scrape(address: str, port: int, path: str = "/metrics", timeout: float = 5.0) -> str:
    """GET the metrics page (plain HTTP: the debug server has no TLS). Raises OSError."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read(MAX_BYTES)
    except http.client.HTTPException as exc:
        raise OSError(f"GET {path} on {address}:{port}: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    if resp.status == 404:
        raise OSError(f"GET {path} on {address}:{port} answered 404: is http.debug.prometheus enabled?")
    if resp.status != 200:
        raise OSError(f"GET {path} on {address}:{port} answered {resp.status}")
    return body.decode("utf-8", "replace")


def read_counts(address: str, port: int, path: str = "/metrics", timeout: float = 5.0) -> RequestCounts:
    """The registry's request counters as its metrics endpoint gives them now. Raises OSError, or
    MetricsFormatError when the page is not the text format."""
    return request_counts(parse(scrape(address, port, path, timeout)))


def _sample(line: str) -> Sample:
    name_match = _NAME_RE.match(line)
    if name_match is None:
        raise MetricsFormatError("no metric name")
    name = name_match.group()
    pos = name_match.end()
    labels: list[tuple[str, str]] = []
    if pos < len(line) and line[pos] == "{":
        pos = _labels(line, pos + 1, labels)
    rest = line[pos:].split()
    if not rest or len(rest) > 2 or (pos < len(line) and line[pos] not in " \t"):
        raise MetricsFormatError("expected a value (and an optional timestamp) after the name")
    value = _float(rest[0])
    if len(rest) == 2 and not re.fullmatch(r"-?\d+", rest[1]):
        raise MetricsFormatError(f"bad timestamp {rest[1]!r}")
    return Sample(name, tuple(labels), value)


def _labels(line: str, pos: int, out: list[tuple[str, str]]) -> int:
    """Parse ``a="x",b="y"}`` from *pos*; returns the position after ``}``."""
    while True:
        pos = _blanks(line, pos)
        if pos < len(line) and line[pos] == "}":
            return pos + 1
        match = _LABEL_RE.match(line, pos)
        if match is None:
            raise MetricsFormatError("bad label name")
        pos = _blanks(line, match.end())
        if not line.startswith("=", pos) or not line.startswith('"', _blanks(line, pos + 1)):
            raise MetricsFormatError(f"label {match.group()!r}: expected =\"")
        pos = _blanks(line, pos + 1) + 1
        value = []
        while True:
            if pos >= len(line):
                raise MetricsFormatError(f"label {match.group()!r}: unterminated value")
            ch = line[pos]
            if ch == "\\":
                escaped = line[pos + 1 : pos + 2]
                value.append(_ESCAPES.get(escaped, "\\" + escaped))
                pos += 2
            elif ch == '"':
                pos += 1
                break
            else:
                value.append(ch)
                pos += 1
        out.append((match.group(), "".join(value)))
        pos = _blanks(line, pos)
        if pos < len(line) and line[pos] == ",":
            pos += 1
        elif pos < len(line) and line[pos] != "}":
            raise MetricsFormatError("expected , or } after a label")


def _blanks(line: str, pos: int) -> int:
    while pos < len(line) and line[pos] in " \t":
        pos += 1
    return pos


def _float(text: str) -> float:
    special = {"NaN": math.nan, "+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf}
    if text in special:
        return special[text]
    try:
        return float(text)
    except ValueError:
        raise MetricsFormatError(f"bad value {text!r}") from None
