"""The files of a cluster's units: redis's redis.conf and the balancer's haproxy.cfg. Pure.

Both are 0600 (redis.conf holds the password) and owned by their unit's user, in a directory of
their own mounted read-only; either unit restarts when its file changes (a balancer's members
changing re-renders haproxy.cfg, so the next `up` restarts it with them).
"""

from __future__ import annotations

from regdeploy.deploy.files import RenderedDir, RenderedFile
from regdeploy.deploy.layout import (
    LB_ADMIN_CONTAINER_DIR,
    LB_CONTAINER_DIR,
    LB_CONTAINER_PORT,
    REDIS_CONTAINER_PORT,
    lb_config_dir,
    redis_config_dir,
    standby_name,
)
from regdeploy.deploy.templates import render_template
from regdeploy.materials.host import HostMaterials
from regdeploy.spec.cluster import LB_RISE, lb_admin_dir, lone_local_replica, standby_server
from regdeploy.spec.registry import RegistrySpec


def redis_quote(value: str) -> str:
    """A redis.conf argument in double quotes (redis unescapes backslash, quote and hex escapes there), so any
    password is one argument, never a config error that would echo it into `docker logs`."""
    out = []
    for ch in value:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch.isprintable() and ord(ch) < 128:
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def redis_files(
    spec: RegistrySpec, materials: HostMaterials, dirs: list[RenderedDir], files: list[RenderedFile]
) -> None:
    assert spec.cache is not None and materials.redis_password is not None
    cfg = redis_config_dir(spec)
    me = spec.cache.run.owner
    context = {
        "spec": spec,
        "password": redis_quote(materials.redis_password),
        "port": REDIS_CONTAINER_PORT,
        "maxmemory": spec.cache.run.memory * 3 // 4,
    }
    dirs.append(RenderedDir(cfg, 0o700, me))
    data = render_template(spec, "redis.conf.j2", context)
    files.append(RenderedFile(f"{cfg}/redis.conf", data, 0o600, restart=True, secret=True, owner=me))


def _standby(spec: RegistrySpec) -> dict[str, object] | None:
    lone = lone_local_replica(spec)
    if lone is None:
        return None
    return {"server": standby_server(lone.host), "address": standby_name(spec), "port": lone.port}


def lb_files(
    spec: RegistrySpec, materials: HostMaterials, dirs: list[RenderedDir], files: list[RenderedFile]
) -> None:
    assert spec.lb is not None
    cfg = lb_config_dir(spec)
    me = spec.lb.run.owner
    tls = materials.tls is not None
    context = {
        "spec": spec,
        "lb": spec.lb,
        "port": LB_CONTAINER_PORT,
        "tls": tls,
        "ca": f"{LB_CONTAINER_DIR}/ca.crt",
        "rise": LB_RISE,
        "admin": f"{LB_ADMIN_CONTAINER_DIR}/admin.sock",
        "standby": _standby(spec),
    }
    dirs.append(RenderedDir(cfg, 0o700, me))
    dirs.append(RenderedDir(lb_admin_dir(spec.config_dir), 0o700, me))
    data = render_template(spec, "haproxy.cfg.j2", context)
    files.append(RenderedFile(f"{cfg}/haproxy.cfg", data, 0o600, restart=True, secret=False, owner=me))
    if materials.tls is not None:
        ca = materials.tls.ca_cert
        files.append(RenderedFile(f"{cfg}/ca.crt", ca, 0o644, restart=True, secret=False, owner=me))
