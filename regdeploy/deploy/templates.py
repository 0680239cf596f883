"""The Jinja templates (built-in, or the user's templates_dir first) and what every config.yml
rendering shares."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regdeploy.deploy.layout import CONTAINER_CONFIG_DIR, CONTAINER_DATA_DIR, REDIS_CONTAINER_PORT
from regdeploy.errors import SpecError

if TYPE_CHECKING:
    import jinja2

    from regdeploy.materials.host import HostMaterials, ResolvedEndpoint
    from regdeploy.spec.registry import RegistrySpec

# distribution logs every notification endpoint's headers at info level when it starts (tried on
# 2.8.2): with a secret header, the registry logs at warn at most (its access log stays on).
QUIET_LEVELS = ("error", "warn")


def builtin_templates_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("regdeploy's templates are missing from the installation")


@functools.lru_cache(maxsize=8)
def _environment(user_dir: str | None) -> jinja2.Environment:
    import jinja2

    dirs = [user_dir] if user_dir else []
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*dirs, str(builtin_templates_dir())]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["q"] = _quote
    env.filters["sh"] = _shell
    return env


def _quote(value: Any) -> str:
    # JSON is valid YAML: strings get quoted and escaped, booleans and numbers stay typed.
    return json.dumps(value)


def _shell(value: Any) -> str:
    import shlex

    return shlex.quote(str(value))


def render_template(spec: RegistrySpec, name: str, context: dict[str, Any]) -> bytes:
    import jinja2

    try:
        return _environment(spec.templates_dir).get_template(name).render(**context).encode()
    except jinja2.TemplateNotFound:
        raise SpecError(f"host '{spec.host}': template {name} not found in {spec.templates_dir}") from None
    except jinja2.UndefinedError as exc:
        raise SpecError(f"host '{spec.host}': template {name}: {exc.message}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise SpecError(
            f"{exc.filename or name}:{exc.lineno}: template syntax error: {exc.message}"
        ) from None


def registry_log_level(wanted: str, materials: HostMaterials) -> str:
    """The registry's log level: *wanted*, but no chattier than warn while an endpoint has headers
    (they would be in `docker logs`)."""
    if wanted in QUIET_LEVELS or not any(e.headers for e in materials.endpoints):
        return wanted
    return "warn"


# In-container paths the config template names (the same for the registry and its proxies).
CONFIG_PATHS = {
    "config": f"{CONTAINER_CONFIG_DIR}/config.yml",
    "htpasswd": f"{CONTAINER_CONFIG_DIR}/auth/htpasswd",
    "server_crt": f"{CONTAINER_CONFIG_DIR}/certs/server.crt",
    "server_key": f"{CONTAINER_CONFIG_DIR}/certs/server.key",
    "token_bundle": f"{CONTAINER_CONFIG_DIR}/auth/token-bundle.crt",
    "data": CONTAINER_DATA_DIR,
}


def blob_cache(spec: RegistrySpec) -> str | None:
    """The blob-descriptor cache: redis when the inventory gives one; in memory on a registry of its
    own; none for replicas of a cluster without redis (one replica's cache goes stale when another
    deletes or collects garbage)."""
    if spec.cache is not None:
        return "redis"
    if spec.cluster_view is not None and len(spec.cluster_view.members) > 1:
        return None
    return "inmemory"


def _s3_context(spec: RegistrySpec, materials: HostMaterials) -> dict[str, Any] | None:
    s3 = spec.storage.s3
    if s3 is None or materials.storage is None:
        return None
    pathstyle = s3.forcepathstyle if s3.forcepathstyle is not None else s3.regionendpoint is not None
    access, secret = materials.storage
    return {"spec": s3, "accesskey": access, "secretkey": secret, "forcepathstyle": pathstyle}


def config_yml(
    spec: RegistrySpec,
    materials: HostMaterials,
    endpoints: Sequence[ResolvedEndpoint],
    proxy: Mapping[str, Any] | None = None,
) -> bytes:
    """config.yml from the template: the registry's, or with *proxy* (remoteurl, username,
    password, ttl) a pull-through cache's."""
    return render_template(
        spec,
        "config.yml.j2",
        {
            "spec": spec,
            "paths": CONFIG_PATHS,
            "tls": materials.tls is not None,
            "http_secret": materials.http_secret,
            "endpoints": endpoints,
            "log_level": registry_log_level(spec.log_level, materials),
            "token": materials.token,
            "proxy": proxy,
            "s3": _s3_context(spec, materials),
            "redis": None
            if spec.cache is None
            else {
                "addr": f"redis:{REDIS_CONTAINER_PORT}" if spec.redis_here else spec.cache.addr,
                "password": materials.redis_password,
                "db": spec.cache.db,
            },
            "cache": blob_cache(spec),
        },
    )
