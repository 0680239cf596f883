"""Render the exact set of files a host must have (path, bytes, mode) from Jinja templates. Pure."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regdeploy.errors import SpecError
from regdeploy.webhooks.relay.config import DEFAULT_PORT as DEFAULT_RELAY_PORT

if TYPE_CHECKING:
    import jinja2

    from regdeploy.materials.host import HostMaterials, RelayMaterial
    from regdeploy.spec.registry import RegistrySpec

Owner = tuple[int, int] | None

# Inside the container, the host's config_dir is mounted read-only here, and the command is
# `serve CONTAINER_CONFIG_DIR/config.yml`: one layout for registry 2.x and 3.x images alike
# (their default config paths differ: /etc/docker/registry vs /etc/distribution).
CONTAINER_CONFIG_DIR = "/etc/regdeploy"
CONTAINER_DATA_DIR = "/var/lib/registry"
# The deployed relay (registry.relay): its files, read-only, and its queue, in its container.
RELAY_CONTAINER_DIR = "/etc/regdeploy-relay"
RELAY_QUEUE_DIR = "/var/lib/regdeploy-relay"
RELAY_PORT = DEFAULT_RELAY_PORT
# distribution logs every notification endpoint's headers at info level when it starts (tried on
# 2.8.2): with a secret header, the registry logs at warn at most (its access log stays on).
QUIET_LEVELS = ("error", "warn")


def relay_config_dir(spec: RegistrySpec) -> str:
    return f"{spec.config_dir}/relay"


def relay_queue_dir(spec: RegistrySpec) -> str:
    return f"{spec.data_dir}/relay-queue"


@dataclass(frozen=True)
class RenderedFile:
    path: str
    data: bytes
    mode: int
    restart: bool  # the registry reads it only at start (config, TLS); htpasswd is re-read live
    secret: bool  # contents never shown in --diff
    owner: Owner = None  # (uid, gid) of the unit that reads it; None: root's

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class RenderedDir:
    path: str
    mode: int
    owner: Owner = None


@dataclass(frozen=True)
class Rendered:
    dirs: tuple[RenderedDir, ...]
    files: tuple[RenderedFile, ...]

    def start_digest(self, paths: tuple[str, ...]) -> str:
        """A digest of the files a unit reads only at start (*paths*): a change needs a restart."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.path):
            if f.path in paths:
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
            "log_level": registry_log_level(spec.log_level, materials),
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
    files = [
        RenderedFile(f"{cfg}/config.yml", config, 0o600, restart=True, secret=True, owner=me),
        RenderedFile(f"{cfg}/auth/htpasswd", htpasswd, 0o600, restart=False, secret=True, owner=me),
    ]
    if materials.tls is not None:
        dirs.append(RenderedDir(f"{cfg}/certs", 0o755))
        files += [
            RenderedFile(f"{cfg}/certs/ca.crt", materials.tls.ca_cert, 0o644, restart=False, secret=False),
            RenderedFile(
                f"{cfg}/certs/server.crt", materials.tls.server_chain, 0o644, restart=True, secret=False
            ),
            RenderedFile(
                f"{cfg}/certs/server.key", materials.tls.server_key, 0o600, restart=True, secret=True,
                owner=me,
            ),
        ]
    if spec.relay is not None and materials.relay is not None:
        _relay_files(spec, materials.relay, dirs, files)
    return Rendered(tuple(dirs), tuple(files))


def registry_log_level(wanted: str, materials: HostMaterials) -> str:
    """The registry's log level: *wanted*, but no chattier than warn while an endpoint has headers
    (they would be in `docker logs`)."""
    if wanted in QUIET_LEVELS or not any(e.headers for e in materials.endpoints):
        return wanted
    return "warn"


def _relay_files(
    spec: RegistrySpec, relay: RelayMaterial, dirs: list[RenderedDir], files: list[RenderedFile]
) -> None:
    """relay.yml and one 0600 file per secret, for the relay unit: `webhooks relay -c` reads them
    at start, and secrets reach it as files it resolves itself ({file: ...}), never as env."""
    import yaml

    assert spec.relay is not None
    cfg = relay_config_dir(spec)
    owner = spec.relay.run.owner
    s = spec.relay.settings
    dirs.append(RenderedDir(cfg, 0o700, owner))
    dirs.append(RenderedDir(relay_queue_dir(spec), 0o700, owner))
    secret_files = {"inbound.token": relay.inbound_token}
    targets = []
    for t in s.targets:
        item: dict[str, object] = {"name": t.name, "type": t.type,
                                   "repositories": list(t.repositories), "tags": list(t.tags)}  # fmt: skip
        name = f"target-{t.name}.secret"
        if t.type == "github":
            item.update(repository=t.repository, api_url=t.api_url, event_type=t.event_type)
            item["token"] = {"file": f"{RELAY_CONTAINER_DIR}/{name}"}
        else:
            item.update(url=t.url, signature_header=t.signature_header)
            if t.name in relay.target_secrets:
                item["secret"] = {"file": f"{RELAY_CONTAINER_DIR}/{name}"}
        if t.name in relay.target_secrets:
            secret_files[name] = relay.target_secrets[t.name]
        targets.append(item)
    document = {
        "listen": {
            "bind": "0.0.0.0",  # the registry's private network only: the relay publishes no port
            "port": RELAY_PORT,
            "token": {"file": f"{RELAY_CONTAINER_DIR}/inbound.token"},
        },
        "queue": {"dir": RELAY_QUEUE_DIR, "max_events": s.max_events},
        "retry": {"initial": f"{s.retry_initial:g}s", "max": f"{s.retry_max:g}s"},
        "timeout": f"{s.timeout:g}s",
        "targets": targets,
    }
    header = f"# Rendered by regdeploy for host {spec.host} (registry.relay). Edits are replaced by `up`.\n"
    text = header + yaml.safe_dump(document, sort_keys=False)
    files.append(RenderedFile(f"{cfg}/relay.yml", text.encode(), 0o600, restart=True, secret=False,
                              owner=owner))  # fmt: skip
    for name, value in sorted(secret_files.items()):
        files.append(RenderedFile(f"{cfg}/{name}", value.encode(), 0o600, restart=True, secret=True,
                                  owner=owner))  # fmt: skip
