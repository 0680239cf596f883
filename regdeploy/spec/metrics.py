"""``metrics``: the registry's Prometheus endpoint, served by its debug server and published on a port.

The debug server (``http.debug.addr``) that serves ``/metrics`` also serves ``/debug/vars`` — which
lists every notification endpoint with its headers, tokens included — and ``/debug/pprof`` (profiles,
the command line). It has no authentication and no TLS. So it is published on loopback unless the
inventory says ``expose: true``, and never beyond loopback while an endpoint (or the relay's) carries
headers: Prometheus on another machine then scrapes through an SSH tunnel or a local agent.

Tried on registry 2.8.2 (Debian's build, 2.8.2+ds1): with ``http.debug.prometheus.enabled`` the debug
server answers ``GET /metrics`` in the Prometheus text format (``registry_http_requests_total{code,
handler,method}`` and the request duration/size histograms per route); without it ``/metrics`` is 404
while ``/debug/vars`` answers either way. distribution 3.x serves the same.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from regdeploy.spec import validate as v

METRICS_PATH = "/metrics"  # http.debug.prometheus.path: fixed, so the scrape target is predictable
_KEYS = ("port", "bind", "expose")


@dataclass(frozen=True)
class MetricsSpec:
    port: int  # published on the host
    bind: str = "127.0.0.1"  # the host address it is published on
    expose: bool = False  # a bind beyond loopback, acknowledged
    path: str = METRICS_PATH

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.bind).is_loopback


def parse_metrics(raw: Any, where: v.Where, secret_headers: bool = False) -> MetricsSpec | None:
    """*secret_headers*: whether a notification endpoint of this registry (the relay's included)
    has headers, which ``/debug/vars`` would then show to whoever reaches the port."""
    if raw is None:
        return None
    data = v.mapping(raw, where, _KEYS)
    if data.get("port") is None:
        where.child("port").fail("is required: the host port Prometheus scrapes (/metrics)")
    spec = MetricsSpec(
        port=v.port(data["port"], where.child("port")),
        bind=v.ip_address(data.get("bind", MetricsSpec.bind), where.child("bind")),
        expose=v.boolean(data.get("expose", False), where.child("expose")),
    )
    if spec.loopback and spec.expose:
        where.child("expose").fail(
            f"is only used with a bind beyond loopback (bind is {spec.bind}): remove it"
        )
    if not spec.loopback and not spec.expose:
        where.child("bind").fail(
            f"{spec.bind} is not a loopback address: the debug server behind /metrics also serves "
            "/debug/vars (webhook headers) and /debug/pprof, without auth; set expose: true to publish "
            "it there anyway (and firewall the port), or keep 127.0.0.1"
        )
    if not spec.loopback and secret_headers:
        where.child("bind").fail(
            f"{spec.bind} would publish /debug/vars, which shows this registry's notification "
            "headers (tokens): keep metrics on loopback while an endpoint or the relay has headers"
        )
    return spec


def check_debug_port(metrics: MetricsSpec | None, debug_port: int | None, where: v.Where) -> None:
    """``registry.debug.port`` publishes the same debug server on 127.0.0.1: both may be set only
    when they say the same thing (one port, loopback)."""
    if metrics is None or debug_port is None:
        return
    if metrics.port != debug_port or metrics.bind != "127.0.0.1":
        where.child("port").fail(
            f"registry.debug.port ({debug_port}) publishes the same debug server on 127.0.0.1: "
            "set one of them (metrics alone serves /debug/vars too)"
        )
