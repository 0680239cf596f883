"""Each pull-through cache's files (registry.proxies): its config.yml and the CAs it trusts. Pure.

A proxy is the registry binary in proxy mode: the same template, with the ``proxy:`` section, no
notifications and no debug server; the same TLS certificate and the same auth as the registry (it
reads them from the config dir's auth/ and certs/, mounted read-only).
"""

from __future__ import annotations

from regdeploy.deploy.files import RenderedDir, RenderedFile
from regdeploy.deploy.layout import proxy_config_dir, proxy_data_dir
from regdeploy.deploy.templates import config_yml
from regdeploy.materials.host import HostMaterials
from regdeploy.spec.registry import RegistrySpec


def proxy_files(
    spec: RegistrySpec, materials: HostMaterials, dirs: list[RenderedDir], files: list[RenderedFile]
) -> None:
    me = spec.run.owner
    for proxy, material in zip(spec.proxies, materials.proxies, strict=True):
        cfg = proxy_config_dir(spec, proxy.name)
        upstream = {"remoteurl": proxy.remoteurl, "username": material.username,
                    "password": material.password, "ttl": proxy.ttl}  # fmt: skip
        config = config_yml(spec, materials, (), upstream)
        dirs += [RenderedDir(cfg, 0o700, me), RenderedDir(f"{cfg}/ca", 0o755, me),
                 RenderedDir(proxy_data_dir(spec, proxy.name), 0o700, me)]  # fmt: skip
        files.append(RenderedFile(f"{cfg}/config.yml", config, 0o600, True, True, owner=me))
        if materials.tls is not None:  # an upstream of this inventory has regdeploy's CA
            files.append(
                RenderedFile(f"{cfg}/ca/regdeploy-ca.crt", materials.tls.ca_cert, 0o644, True, False, me)
            )
        if material.ca is not None:
            files.append(RenderedFile(f"{cfg}/ca/upstream-ca.crt", material.ca, 0o644, True, False, me))
