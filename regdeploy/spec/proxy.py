"""``proxies``: pull-through caches, one registry unit in proxy mode per upstream.

Each caches what clients pull from one upstream (Docker Hub, GHCR, another registry of this
inventory) in its own storage directory, refuses pushes, serves TLS from regdeploy's CA and asks
for the same credentials as the main registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regdeploy.materials.secrets import SecretRef, secret_ref
from regdeploy.spec import validate as v

_NAME_RE = r"[a-z0-9][a-z0-9-]{0,30}"


@dataclass(frozen=True)
class ProxySpec:
    name: str  # the unit is <registry name>-proxy-<name>
    remoteurl: str
    port: int
    username: SecretRef | None = None
    password: SecretRef | None = None
    ttl: str | None = None  # distribution 3.x only
    ca: SecretRef | None = None  # the upstream's private CA ({file: ...})
    check_image: str | None = None  # REPO:TAG that `verify` pulls through the proxy


def parse_proxies(raw: Any, where: v.Where, version: int) -> tuple[ProxySpec, ...]:
    items = v.sequence(raw, where)
    proxies = tuple(_proxy(item, where.child(i), version) for i, item in enumerate(items))
    for i, p in enumerate(proxies):
        if p.name in [q.name for q in proxies[:i]]:
            where.child(i).child("name").fail(f"duplicate proxy {p.name!r}")
        clash = next((q for q in proxies[:i] if q.port == p.port), None)
        if clash is not None:
            where.child(i).child("port").fail(f"{p.port} is proxy {clash.name!r}'s port already")
    return proxies


def _proxy(raw: Any, where: v.Where, version: int) -> ProxySpec:
    data = v.mapping(
        raw, where, ("name", "remoteurl", "username", "password", "port", "ttl", "ca", "check_image")
    )
    name = v.string(data.get("name"), where.child("name"), _NAME_RE, "lower-case letters, digits and -")
    if data.get("remoteurl") is None:
        where.child("remoteurl").fail(
            "is required: the upstream registry's URL (https://registry-1.docker.io)"
        )
    hint = "expected https://HOST[:PORT] of the upstream registry (no path, no user)"
    remoteurl = v.string(data["remoteurl"], where.child("remoteurl"), r"https?://[^\s/@]+/?", hint)
    if data.get("port") is None:
        where.child("port").fail("is required: the port clients pull through this proxy on")
    if (data.get("username") is None) != (data.get("password") is None):
        missing = "password" if data.get("password") is None else "username"
        where.child(missing).fail("is required with the other one: the upstream's credentials come as a pair")
    ttl = None
    if data.get("ttl") is not None:
        ttl = v.duration(data["ttl"], where.child("ttl"))
        if version < 3:
            where.child("ttl").fail("needs distribution 3.x (proxy.ttl); 2.8 keeps cached content 7 days")
    return ProxySpec(
        name=name,
        remoteurl=remoteurl.rstrip("/"),
        port=v.port(data["port"], where.child("port")),
        username=None
        if data.get("username") is None
        else secret_ref(data["username"], where.child("username"), None, allow_literal=True),
        password=None
        if data.get("password") is None
        else secret_ref(data["password"], where.child("password"), None),
        ttl=ttl,
        ca=None if data.get("ca") is None else secret_ref(data["ca"], where.child("ca"), None),
        check_image=None
        if data.get("check_image") is None
        else v.string(
            data["check_image"],
            where.child("check_image"),
            r"[a-z0-9][a-z0-9._/-]*:[\w][\w.-]{0,127}",
            "expected REPOSITORY:TAG (library/busybox:latest for Docker Hub)",
        ),
    )
