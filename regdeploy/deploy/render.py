"""Render the exact set of files a host must have (path, bytes, mode) from Jinja templates. Pure."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regdeploy.deploy.files import Rendered, RenderedDir, RenderedFile
from regdeploy.deploy.layout import CONTAINER_CONFIG_DIR, CONTAINER_DATA_DIR
from regdeploy.errors import SpecError

if TYPE_CHECKING:
    import jinja2

    from regdeploy.materials.host import HostMaterials
    from regdeploy.spec.registry import RegistrySpec

Owner = tuple[int, int] | None

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
    return env


def _quote(value: Any) -> str:
    # JSON is valid YAML: strings get quoted and escaped, booleans and numbers stay typed.
    return json.dumps(value)


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


def render(spec: RegistrySpec, materials: HostMaterials) -> Rendered:
    cfg = spec.config_dir
    paths = {
        "config": f"{CONTAINER_CONFIG_DIR}/config.yml",
        "htpasswd": f"{CONTAINER_CONFIG_DIR}/auth/htpasswd",
        "server_crt": f"{CONTAINER_CONFIG_DIR}/certs/server.crt",
        "server_key": f"{CONTAINER_CONFIG_DIR}/certs/server.key",
        "token_bundle": f"{CONTAINER_CONFIG_DIR}/auth/token-bundle.crt",
        "data": CONTAINER_DATA_DIR,
    }
    config = render_template(
        spec,
        "config.yml.j2",
        {
            "spec": spec,
            "paths": paths,
            "tls": materials.tls is not None,
            "http_secret": materials.http_secret,
            "endpoints": materials.endpoints,
            "log_level": registry_log_level(spec.log_level, materials),
            "token": materials.token,
        },
    )
    htpasswd = render_template(spec, "htpasswd.j2", {"users": materials.users})
    # The registry runs as spec.run's user: what it reads is that user's, and stays 0600/0700.
    me = spec.run.owner
    dirs = [
        RenderedDir(cfg, 0o755),
        RenderedDir(f"{cfg}/auth", 0o700, me),
        RenderedDir(spec.data_dir, 0o700, me),
    ]
    files = [RenderedFile(f"{cfg}/config.yml", config, 0o600, restart=True, secret=True, owner=me)]
    if materials.token is None:
        files.append(
            RenderedFile(f"{cfg}/auth/htpasswd", htpasswd, 0o600, restart=False, secret=True, owner=me)
        )
    else:  # token auth: the registry trusts tokens signed with this; users are the token server's
        files.append(
            RenderedFile(
                f"{cfg}/auth/token-bundle.crt",
                materials.token.bundle,
                0o644,
                restart=True,
                secret=False,
                owner=me,
            )
        )
    if materials.tls is not None:
        dirs.append(RenderedDir(f"{cfg}/certs", 0o755))
        files += [
            RenderedFile(f"{cfg}/certs/ca.crt", materials.tls.ca_cert, 0o644, restart=False, secret=False),
            RenderedFile(
                f"{cfg}/certs/server.crt", materials.tls.server_chain, 0o644, restart=True, secret=False
            ),
            RenderedFile(
                f"{cfg}/certs/server.key",
                materials.tls.server_key,
                0o600,
                restart=True,
                secret=True,
                owner=me,
            ),
        ]
    if spec.relay is not None and materials.relay is not None:
        from regdeploy.deploy.render_relay import relay_files

        relay_files(spec, materials.relay, dirs, files)
    if spec.auth.builtin_token is not None:
        from regdeploy.deploy.render_token import token_files

        token_files(spec, materials, htpasswd, dirs, files)
    return Rendered(tuple(dirs), tuple(files))


def registry_log_level(wanted: str, materials: HostMaterials) -> str:
    """The registry's log level: *wanted*, but no chattier than warn while an endpoint has headers
    (they would be in `docker logs`)."""
    if wanted in QUIET_LEVELS or not any(e.headers for e in materials.endpoints):
        return wanted
    return "warn"
