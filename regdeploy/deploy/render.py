"""Render the exact set of files a host must have (path, bytes, mode) from Jinja templates. Pure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from regdeploy.deploy.files import Rendered, RenderedDir, RenderedFile
from regdeploy.deploy.templates import config_yml, render_template

if TYPE_CHECKING:

    from regdeploy.materials.host import HostMaterials
    from regdeploy.spec.registry import RegistrySpec


def render(spec: RegistrySpec, materials: HostMaterials) -> Rendered:
    if not spec.serves:  # a balancer-only host: haproxy.cfg and the CA it checks replicas with
        from regdeploy.deploy.render_cluster import lb_files

        dirs = [RenderedDir(spec.config_dir, 0o755)]
        files: list[RenderedFile] = []
        lb_files(spec, materials, dirs, files)
        return Rendered(tuple(dirs), tuple(files))
    cfg = spec.config_dir
    config = config_yml(spec, materials, materials.endpoints)
    htpasswd = render_template(spec, "htpasswd.j2", {"users": materials.users})
    # The registry runs as spec.run's user: what it reads is that user's, and stays 0600/0700.
    me = spec.run.owner
    dirs = [
        RenderedDir(cfg, 0o755),
        RenderedDir(f"{cfg}/auth", 0o700, me),
        RenderedDir(spec.data_dir, 0o700, me),
    ]
    files = [RenderedFile(f"{cfg}/config.yml", config, 0o600, restart=True, secret=True, owner=me)]
    if spec.redis_here or spec.lb is not None:
        from regdeploy.deploy.render_cluster import lb_files, redis_files

        if spec.redis_here:
            redis_files(spec, materials, dirs, files)
        if spec.lb is not None:
            lb_files(spec, materials, dirs, files)
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
    if spec.proxies:
        from regdeploy.deploy.render_proxy import proxy_files

        proxy_files(spec, materials, dirs, files)
    from regdeploy.deploy.render_gc import gc_absent, gc_files

    if spec.gc is not None:  # last: the one-off container mounts what the registry reads
        gc_files(spec, materials, dirs, files)
    return Rendered(tuple(dirs), tuple(files), () if spec.gc is not None else gc_absent(spec))
