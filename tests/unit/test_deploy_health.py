"""Readiness helpers that need no engine."""

from __future__ import annotations

from regdeploy.deploy.health import started_since


def test_started_at_becomes_the_logs_apis_since() -> None:
    # 2026-12-01T16:20:01Z is 1796142001 s after the epoch; Docker keeps nanoseconds.
    assert started_since("2026-12-01T16:20:01.123456789Z") == "1796142001.123456789"
    assert started_since("2026-12-01T16:20:01.5Z") == "1796142001.500000000"
    assert started_since("2026-12-01T16:20:01Z") == "1796142001.000000000"
    assert started_since("not a time") == ""
