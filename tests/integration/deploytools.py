"""Shared by integration tests: deploy a test registry with regdeploy's CLI, talk to it, remove it.

Every Deployment has its own container name, port, config and data dirs under tmp_path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from regdeploy.cli import cli
from regdeploy.verify.registry_api import RegistryClient

TOKEN = "tok-3f9c1a7e-secret-webhook-token"
# Port 9 (discard) on loopback: nothing listens, deliveries fail quietly and stay on this machine.
WEBHOOK = {"name": "ci", "url": "http://127.0.0.1:9/hook", "headers": {"Authorization": {"env": "CI_TOKEN"}}}


class Deployment:
    """One test registry: its inventory file, and helpers to run regdeploy against it."""

    def __init__(self, tmp: Path, name: str, port: int, image: str, client: Any) -> None:
        self.tmp = tmp
        self.name = name
        self.port = port
        self.client = client
        self.inventory = tmp / "hosts.yml"
        self.registry: dict[str, Any] = {
            "name": name,
            "image": image,
            "port": port,
            "config_dir": str(tmp / "config"),
            "data_dir": str(tmp / "data"),
            "tls": {"mode": "selfsigned"},
            # Cost 5, not the default 10: the registry pays it on every request, and tests make many.
            "auth": {"users": [{"name": "alice"}], "bcrypt_cost": 5},
            "health_timeout": "20s",
        }
        self.env: dict[str, str] = {"CI_TOKEN": TOKEN}
        self.write()

    def write(self, **host_vars: Any) -> None:
        host = {"ansible_connection": "local", "registry": self.registry, **host_vars}
        self.inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host}}}))

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(
            cli, [*args, "-i", str(self.inventory)], env=self.env, catch_exceptions=False
        )

    def up_json(self, *args: str) -> dict[str, Any]:
        result = self.run("up", "--json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    @property
    def config(self) -> Path:
        return self.tmp / "config"

    @property
    def ca(self) -> bytes:
        return (self.config / "certs" / "ca.crt").read_bytes()

    def password(self, user: str = "alice") -> str:
        return (self.tmp / ".regdeploy" / "secrets" / "users" / user).read_text()

    def api(
        self, user: str | None = "alice", password: str | None = None, port: int | None = None
    ) -> RegistryClient:
        pw = password if password is not None else (self.password(user) if user else None)
        return RegistryClient("127.0.0.1", port or self.port, self.ca, user, pw, server_hostname="localhost")

    def container(self) -> dict[str, Any]:
        return dict(self.client.api.inspect_container(self.name))

    def file_times(self) -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for p in sorted(self.config.rglob("*"))}

    def cleanup(self) -> None:
        CliRunner().invoke(cli, ["down", "--purge-data", "--yes", "-i", str(self.inventory)], env=self.env)
        for unit in (self.name, self.name + "-relay", self.name + "-token"):
            for cname in (unit, unit + "-regdeploy-old"):
                with contextlib.suppress(Exception):  # usually already gone: down removed it
                    self.client.api.remove_container(cname, force=True)
        with contextlib.suppress(Exception):
            self.client.api.remove_network(self.name + "-net")


@pytest.fixture
def deployment(tmp_path: Path, unique_name: str, free_port: Callable[[], int], registry_image: str,
               docker_client: Any) -> Iterator[Deployment]:  # fmt: skip
    d = Deployment(tmp_path, unique_name, free_port(), registry_image, docker_client)
    yield d
    d.cleanup()


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Until *predicate* is true (an exception counts as not yet); fails the test after *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if predicate():
                return
        if time.monotonic() > deadline:
            pytest.fail(f"not true after {timeout:.0f}s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(0.2)


def changes(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["resource"], c["action"]) for c in report["hosts"]["localhost"]["changes"]]


MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def image_config(created: str | None = None, diff_ids: Sequence[str] = ()) -> dict[str, Any]:
    """An image config: *created* (what retention sorts by) and *diff_ids* make it one of its own."""
    config: dict[str, Any] = {"architecture": "amd64", "os": "linux"}
    if created is not None:
        config["created"] = created
    config["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    return config


def upload_blob(api: RegistryClient, repo: str, data: bytes) -> str:
    """A monolithic blob upload (POST, then PUT with the digest); the blob's digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = api.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert start.status == 202, start
    location = start.headers["location"]
    sep = "&" if "?" in location else "?"
    path = location.split("://", 1)[-1]
    path = path[path.index("/") :] if not location.startswith("/") else location
    done = api.request("PUT", f"{path}{sep}digest={digest}", body=data,
                       headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert done.status == 201, done
    return digest


def push_small_image(
    api: RegistryClient,
    repo: str,
    layer: bytes = b"regdeploy test layer",
    tag: str = "v1",
    config: Mapping[str, Any] | None = None,
) -> str:
    """Push one blob (*layer*), a config (*config*, else :func:`image_config`'s) and a manifest (as
    *tag*) through the HTTP API; return the manifest digest."""
    config_data = json.dumps(image_config() if config is None else dict(config)).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config_data), "digest": upload_blob(api, repo, config_data)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer), "digest": upload_blob(api, repo, layer)}],
    }).encode()  # fmt: skip
    put = api.request(
        "PUT", f"/v2/{repo}/manifests/{tag}", body=manifest, headers={"Content-Type": MANIFEST_V2}
    )
    assert put.status == 201, put
    return put.headers["docker-content-digest"]
