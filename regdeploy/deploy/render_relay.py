"""The deployed relay's files (registry.relay): relay.yml and one 0600 file per secret. Pure."""

from __future__ import annotations

from regdeploy.deploy.files import RenderedDir, RenderedFile
from regdeploy.deploy.layout import (
    RELAY_CONTAINER_DIR,
    RELAY_PORT,
    RELAY_QUEUE_DIR,
    relay_config_dir,
    relay_queue_dir,
)
from regdeploy.materials.host import RelayMaterial
from regdeploy.spec.registry import RegistrySpec


def relay_files(
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
