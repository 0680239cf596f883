"""The built-in token server's files (auth.mode: token, server: builtin). Pure.

token.yml is the contract with ``regdeploy auth serve`` (regdeploy/tokens/config.py reads it); the
users file is htpasswd-formatted and re-read by the server when it changes (no restart); keys are
0600 and owned by the token unit's user.
"""

from __future__ import annotations

import json

from regdeploy.deploy.files import RenderedDir, RenderedFile
from regdeploy.deploy.layout import TOKEN_CONTAINER_DIR, TOKEN_CONTAINER_PORT, token_config_dir
from regdeploy.materials.host import HostMaterials, TokenMaterial
from regdeploy.spec.registry import RegistrySpec
from regdeploy.spec.token import TokenSpec


def token_document(token: TokenSpec, material: TokenMaterial, tls: bool) -> dict[str, object]:
    """token.yml's content, paths as the token unit sees them."""
    inside = TOKEN_CONTAINER_DIR
    document: dict[str, object] = {
        "service": material.service,
        "issuer": material.issuer,
        "expiry": token.expiry,
        "listen": {"bind": "0.0.0.0", "port": TOKEN_CONTAINER_PORT},
        "signing": {"key": f"{inside}/signing.key", "chain": f"{inside}/signing.crt"},
        "users": f"{inside}/users",
        "anonymous": token.anonymous,
        "acl": [
            {"account": e.account, "type": e.type, "name": e.name, "actions": list(e.actions)}
            for e in token.acl
        ],
        "oidc": [
            {
                "issuer": o.issuer,
                "jwks": f"{inside}/oidc-{i}.json",
                "audience": o.audience,
                "account": o.account,
                "claims": dict(o.claims),
            }
            for i, o in enumerate(token.oidc)
        ],
    }
    if tls:
        document["tls"] = {"cert": f"{inside}/server.crt", "key": f"{inside}/server.key"}
    return document


def token_files(
    spec: RegistrySpec, materials: HostMaterials, htpasswd: bytes, dirs: list[RenderedDir],
    files: list[RenderedFile],
) -> None:  # fmt: skip
    token = spec.auth.builtin_token
    material = materials.token
    assert token is not None and material is not None and material.signing_key is not None
    cfg = token_config_dir(spec)
    owner = token.run.owner
    dirs.append(RenderedDir(cfg, 0o700, owner))
    header = f"# Rendered by regdeploy for host {spec.host} (auth.token). Edits are replaced by `up`.\n"
    text = header + json.dumps(token_document(token, material, materials.tls is not None), indent=2) + "\n"

    def add(name: str, data: bytes, mode: int = 0o600, restart: bool = True, secret: bool = True) -> None:
        files.append(RenderedFile(f"{cfg}/{name}", data, mode, restart=restart, secret=secret, owner=owner))

    add("token.yml", text.encode(), secret=False)
    add("users", htpasswd, restart=False)  # re-read by the server when it changes
    add("signing.key", material.signing_key)
    add("signing.crt", material.bundle, 0o644, secret=False)
    if materials.tls is not None:
        add("server.crt", materials.tls.server_chain, 0o644, secret=False)
        add("server.key", materials.tls.server_key)
    for i, jwks in enumerate(material.jwks):
        add(f"oidc-{i}.json", jwks, 0o644, secret=False)
