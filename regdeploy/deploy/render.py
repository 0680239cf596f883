"""Render the exact set of files a host must have (path, bytes, mode) from Jinja templates. Pure."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regdeploy.errors import SpecError

if TYPE_CHECKING:
    import jinja2

    from regdeploy.materials.host import HostMaterials
    from regdeploy.spec.registry import RegistrySpec

# Inside the container, the host's config_dir is mounted read-only here, and the command is
# `serve CONTAINER_CONFIG_DIR/config.yml`: one layout for registry 2.x and 3.x images alike
# (their default config paths differ: /etc/docker/registry vs /etc/distribution).
CONTAINER_CONFIG_DIR = "/etc/regdeploy"
CONTAINER_DATA_DIR = "/var/lib/registry"


@dataclass(frozen=True)
class RenderedFile:
    path: str
    data: bytes
    mode: int
    restart: bool  # the registry reads it only at start (config, TLS); htpasswd is re-read live
    secret: bool  # contents never shown in --diff

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class RenderedDir:
    path: str
    mode: int


@dataclass(frozen=True)
class Rendered:
    dirs: tuple[RenderedDir, ...]
    files: tuple[RenderedFile, ...]

    @property
    def restart_digest(self) -> str:
        """A digest of everything the registry reads only at start: a change needs a new container."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.path):
            if f.restart:
                h.update(f"{f.path}\0{f.sha256}\0".encode())
        return h.hexdigest()[:16]


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
        },
    )
    htpasswd = render_template(spec, "htpasswd.j2", {"users": materials.users})
    dirs = [RenderedDir(cfg, 0o755), RenderedDir(f"{cfg}/auth", 0o700), RenderedDir(spec.data_dir, 0o755)]
    files = [
        RenderedFile(f"{cfg}/config.yml", config, 0o600, restart=True, secret=True),
        RenderedFile(f"{cfg}/auth/htpasswd", htpasswd, 0o600, restart=False, secret=True),
    ]
    if materials.tls is not None:
        dirs.append(RenderedDir(f"{cfg}/certs", 0o755))
        files += [
            RenderedFile(f"{cfg}/certs/ca.crt", materials.tls.ca_cert, 0o644, restart=False, secret=False),
            RenderedFile(
                f"{cfg}/certs/server.crt", materials.tls.server_chain, 0o644, restart=True, secret=False
            ),
            RenderedFile(
                f"{cfg}/certs/server.key", materials.tls.server_key, 0o600, restart=True, secret=True
            ),
        ]
    return Rendered(tuple(dirs), tuple(files))
