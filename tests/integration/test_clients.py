"""`certs trust` and `clients mirror` for containerd and podman, against a real registry and real
clients: dockerd's containerd through ``ctr``, skopeo and podman from Debian.

The clients reach the registry at the Docker bridge's gateway address (this machine, never the
network), which no client exempts from TLS checks the way loopback can be: there a pull works only
when the files regdeploy wrote give it the CA. Images are pushed through ``localhost`` (the docker
engine skips TLS checks on loopback). Every file, image and namespace a test adds is removed again.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from clienttools import CERTS_DIRS, ClientFilesGuard, Podman, auth_file, ctr_forget, ctr_pull, registry_ports
from deploytools import Deployment, deployment
from test_certs import DockerCli, docker_cli, gateway, trust

from regdeploy.cli import cli

__all__ = ["deployment", "docker_cli", "gateway"]  # fixtures, used by name

pytestmark = pytest.mark.integration

CONTAINERD_D = Path("/etc/containerd/certs.d")
CONTAINERS_D = Path("/etc/containers/certs.d")
CONF_D = Path("/etc/containers/registries.conf.d")
ACCEPT = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
HERE = "(control machine)"


@pytest.fixture
def guard(deployment: Deployment) -> Iterator[ClientFilesGuard]:
    g = ClientFilesGuard()
    yield g
    g.ports |= registry_ports(deployment.registry)
    g.cleanup()


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman | None]:
    if shutil.which("podman") is None:  # scripts/setup.sh installs it; skopeo still covers containers/image
        yield None
        return
    p = Podman(tmp_path)
    yield p
    p.cleanup()


def files_for(port: int) -> set[str]:
    """Every file under the runtimes' certs.d directories for *port*."""
    return {str(f) for d in CERTS_DIRS if d.exists() for e in d.glob(f"*:{port}") for f in e.rglob("*")}


def skopeo_inspect(ref: str, auth: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """skopeo with its default certificate directories (/etc/containers/certs.d) and registries.conf.d."""
    return subprocess.run(["skopeo", "inspect", "--authfile", str(auth), *args, f"docker://{ref}"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def deploy_with_image(deployment: Deployment, gateway: str, docker_cli: DockerCli) -> tuple[str, str]:
    """A TLS registry whose certificate names the gateway, holding one image; (repo:tag, its digest)."""
    deployment.registry["tls"] = {"mode": "selfsigned", "sans": [gateway]}
    deployment.write()
    deployment.up_json()
    local = f"localhost:{deployment.port}"
    login = docker_cli.login(local, deployment.password())
    assert login.returncode == 0, login.stderr
    image = f"regdeploy-test/clients:{deployment.name.rsplit('-', 1)[-1]}"
    docker_cli.smoke_image(f"{local}/{image}")
    pushed = docker_cli("push", f"{local}/{image}")
    assert pushed.returncode == 0, pushed.stderr
    repo, tag = image.split(":")
    head = deployment.api().request("HEAD", f"/v2/{repo}/manifests/{tag}", headers=ACCEPT)
    assert head.status == 200, head
    return image, head.headers["docker-content-digest"]


def test_trust_lets_ctr_skopeo_and_podman_pull_over_tls_then_remove_undoes_it(
    deployment: Deployment, gateway: str, docker_cli: DockerCli, guard: ClientFilesGuard,
    podman: Podman | None, tmp_path: Path,
) -> None:  # fmt: skip
    image, digest = deploy_with_image(deployment, gateway, docker_cli)
    registry = f"{gateway}:{deployment.port}"
    ref = f"{registry}/{image}"
    auth = auth_file(tmp_path / "auth.json", [registry], "alice", deployment.password())
    namespace = f"regdeploy-test-{deployment.name}"

    # Before: each client verifies the registry's certificate at this address, and refuses it.
    untrusted = skopeo_inspect(ref, auth)
    assert untrusted.returncode != 0 and "certificate signed by unknown authority" in untrusted.stderr
    refused = ctr_pull(ref, namespace, "alice", deployment.password())
    assert refused.returncode != 0
    assert "certificate signed by unknown authority" in refused.stderr, refused.stderr
    before = files_for(deployment.port)

    report = trust(deployment, "--runtime", "containerd,podman")
    host = report["hosts"][HERE]
    assert host["runtimes"] == ["containerd", "podman"]
    written = {c["resource"].removeprefix("file:") for c in host["changes"]}
    addresses = ("localhost", "127.0.0.1", gateway)
    assert written == {
        *(f"{CONTAINERD_D}/{a}:{deployment.port}/{f}" for a in addresses for f in ("ca.crt", "hosts.toml")),
        *(f"{CONTAINERS_D}/{a}:{deployment.port}/ca.crt" for a in addresses),
    }
    hosts_toml = tomllib.loads((CONTAINERD_D / registry / "hosts.toml").read_text())
    entry = {"capabilities": ["pull", "resolve"], "ca": f"{CONTAINERD_D}/{registry}/ca.crt"}
    assert hosts_toml == {"server": f"https://{registry}", "host": {f"https://{registry}": entry}}
    assert (CONTAINERS_D / registry / "ca.crt").read_bytes() == deployment.ca
    assert trust(deployment, "--runtime", "containerd,podman")["changed"] is False  # idempotent

    try:
        pulled = ctr_pull(ref, namespace, "alice", deployment.password())
        assert pulled.returncode == 0, pulled.stderr
        listed = subprocess.run(["ctr", "-a", "/var/run/docker/containerd/containerd.sock", "-n", namespace,
                                 "images", "ls", "-q"], capture_output=True, text=True)  # fmt: skip
        assert ref in listed.stdout.split()
    finally:
        ctr_forget(namespace, ref)
    inspected = skopeo_inspect(ref, auth)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == digest
    if podman is not None:
        pulled = podman("pull", "--authfile", str(auth), ref)
        assert pulled.returncode == 0, pulled.stderr
        digests = podman("image", "inspect", "--format", "{{.Digest}}", ref)
        assert digests.stdout.strip() == digest

    removed = trust(deployment, "--runtime", "containerd,podman", "--remove")
    gone = {c["resource"].removeprefix("file:") for c in removed["hosts"][HERE]["changes"]}
    assert gone == written
    assert files_for(deployment.port) == before == set()
    left = [e for d in CERTS_DIRS if d.exists() for e in d.glob(f"*:{deployment.port}")]
    assert left == []  # nor the directories made for them
    again = skopeo_inspect(ref, auth)
    assert again.returncode != 0 and "certificate signed by unknown authority" in again.stderr


def test_mirror_makes_containerd_skopeo_and_podman_pull_an_upstream_through_the_cache(
    deployment: Deployment, gateway: str, docker_cli: DockerCli, guard: ClientFilesGuard,
    podman: Podman | None, tmp_path: Path, free_port: Callable[[], int],
) -> None:  # fmt: skip
    """`clients mirror` writes what makes each runtime try the cache before the upstream.

    The upstream is an address where nothing listens, so a pull of UPSTREAM/image succeeds only
    through the mirror. Standing in for a pull-through cache is the test registry itself, named as the
    cache of a second inventory beside the first (same state directory, so the same CA); the pull
    through a real proxy unit is test_proxies.py's.
    """
    image, digest = deploy_with_image(deployment, gateway, docker_cli)
    trust(deployment, "--runtime", "containerd,podman")  # the cache's CA: certs trust's business
    dead = free_port()
    upstream = f"{gateway}:{dead}"
    proxy = f"t{secrets.token_hex(4)}"
    guard.ports.add(dead)
    guard.proxies.add(proxy)
    spec = {"name": deployment.name + "-m", "port": free_port(), "config_dir": str(tmp_path / "m-config"),
            "data_dir": str(tmp_path / "m-data"), "tls": {"mode": "selfsigned", "sans": [gateway]},
            "proxies": [{"name": proxy, "remoteurl": f"https://{upstream}",
                         "port": deployment.port}]}  # fmt: skip
    inventory = tmp_path / "mirrors.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                                        "registry": spec}}}}))  # fmt: skip

    def mirror(*args: str) -> dict[str, Any]:
        argv = ["clients", "mirror", "--local", "--json", "-i", str(inventory), *args]
        result = CliRunner().invoke(cli, argv, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout)["hosts"][HERE])

    cache = f"localhost:{deployment.port}"
    ref = f"{upstream}/{image}"
    namespace = f"regdeploy-test-{deployment.name}-m"
    hosts_path = CONTAINERD_D / upstream / "hosts.toml"

    host = mirror("--runtime", "containerd")
    assert [c["resource"] for c in host["changes"]] == [f"file:{hosts_path}"]
    entry = {"capabilities": ["pull", "resolve"], "ca": f"{CONTAINERD_D}/{cache}/ca.crt"}
    wanted = {"server": f"https://{upstream}", "host": {f"https://{cache}": entry}}
    assert tomllib.loads(hosts_path.read_text()) == wanted
    # No warning that the cache is untrusted (certs trust ran); this machine's containerd config has no
    # config_path, which is said once.
    assert [w.split(":")[0] for w in host["warnings"]] == ["containerd"]
    assert "config_path" in host["warnings"][0]
    try:
        pulled = ctr_pull(ref, namespace, "alice", deployment.password())
        assert pulled.returncode == 0, pulled.stderr
    finally:
        ctr_forget(namespace, ref)

    host = mirror("--runtime", "podman")
    dropin = CONF_D / f"50-regdeploy-{proxy}.conf"
    assert [c["resource"] for c in host["changes"]] == [f"file:{dropin}"]
    registries = [{"prefix": upstream, "location": upstream, "mirror": [{"location": cache}]}]
    assert tomllib.loads(dropin.read_text()) == {"registry": registries}
    auth = auth_file(tmp_path / "auth.json", [cache, upstream], "alice", deployment.password())
    inspected = skopeo_inspect(ref, auth, "--no-tags")  # tags come from the upstream itself, not a mirror
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == digest
    if podman is not None:
        pulled = podman("pull", "--authfile", str(auth), ref)
        assert pulled.returncode == 0, pulled.stderr

    removed = mirror("--runtime", "containerd,podman", "--remove")
    assert {c["resource"] for c in removed["changes"]} == {f"file:{hosts_path}", f"file:{dropin}"}
    assert not hosts_path.parent.exists() and not dropin.exists()
    # Without the mirror, the upstream is all there is, and nothing answers there.
    try:
        failed = ctr_pull(ref, namespace, "alice", deployment.password())
        assert failed.returncode != 0 and "connection refused" in failed.stderr, failed.stderr
    finally:
        ctr_forget(namespace, ref)
    assert skopeo_inspect(ref, auth, "--no-tags").returncode != 0
