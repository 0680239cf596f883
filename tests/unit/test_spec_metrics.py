"""registry.metrics: the Prometheus endpoint's port and bind, and why the bind stays on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from regdeploy.errors import EXIT_INPUT, SpecError
from regdeploy.spec.metrics import MetricsSpec, check_debug_port, parse_metrics
from regdeploy.spec.validate import Where

WHERE = Where("reg1", "registry.metrics", {"registry.metrics": "host_vars/reg1.yml"})


def error(raw: Any, secret_headers: bool = False) -> str:
    with pytest.raises(SpecError) as info:
        parse_metrics(raw, WHERE, secret_headers)
    assert info.value.exit_code == EXIT_INPUT
    message = str(info.value)
    assert "\n" not in message and message.startswith("host_vars/reg1.yml: host 'reg1': registry.metrics")
    return message


def test_absent_is_off() -> None:
    assert parse_metrics(None, WHERE) is None


def test_the_issue_example() -> None:
    spec = parse_metrics({"port": 5002, "bind": "127.0.0.1"}, WHERE)
    assert spec == MetricsSpec(port=5002, bind="127.0.0.1", expose=False, path="/metrics")
    assert spec is not None and spec.loopback


def test_defaults_to_loopback() -> None:
    assert parse_metrics({"port": 9102}, WHERE) == MetricsSpec(9102)
    assert parse_metrics({"port": 9102, "bind": "::1"}, WHERE) == MetricsSpec(9102, "::1")


def test_beyond_loopback_needs_expose() -> None:
    assert "10.0.0.5 is not a loopback address" in error({"port": 5002, "bind": "10.0.0.5"})
    assert "set expose: true" in error({"port": 5002, "bind": "0.0.0.0"})
    spec = parse_metrics({"port": 5002, "bind": "0.0.0.0", "expose": True}, WHERE)
    assert spec is not None and not spec.loopback


def test_never_beyond_loopback_with_webhook_headers() -> None:
    message = error({"port": 5002, "bind": "0.0.0.0", "expose": True}, secret_headers=True)
    assert "registry.metrics.bind: 0.0.0.0 would publish /debug/vars" in message
    assert parse_metrics({"port": 5002}, WHERE, secret_headers=True) == MetricsSpec(5002)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, "registry.metrics.port: is required"),
        ({"bind": "127.0.0.1"}, "registry.metrics.port: is required"),
        ({"port": 0}, "registry.metrics.port: 0 is out of range 1..65535"),
        ({"port": "5002"}, "registry.metrics.port: must be an integer"),
        ({"port": 5002, "bind": "localhost"}, "registry.metrics.bind: not an IP address: 'localhost'"),
        ({"port": 5002, "expose": True}, "registry.metrics.expose: is only used with a bind beyond loopback"),
        ({"port": 5002, "expose": "yes"}, "registry.metrics.expose: must be true or false"),
        ({"port": 5002, "path": "/m"}, "registry.metrics.path: unknown key"),
        (5002, "registry.metrics: must be a mapping, got integer"),
    ],
)
def test_bad_input(raw: Any, expected: str) -> None:
    assert expected in error(raw)


def test_debug_port_and_metrics_must_agree() -> None:
    check_debug_port(MetricsSpec(5002), None, WHERE)
    check_debug_port(None, 5001, WHERE)
    check_debug_port(MetricsSpec(5002), 5002, WHERE)  # the same publication twice: fine
    for metrics in (MetricsSpec(5003), MetricsSpec(5002, "0.0.0.0", expose=True)):
        with pytest.raises(SpecError, match=r"registry.metrics.port: registry.debug.port \(5002\) publishes"):
            check_debug_port(metrics, 5002, WHERE)
