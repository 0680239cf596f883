"""Pull-through caches as units: one inventory deploys an upstream registry and a registry with a
proxy in front of it (both on this machine's engine), so no traffic leaves the machine. The proxy
trusts the upstream through the inventory's own CA, without `ca`.

The proxy reaches the upstream at the docker bridge gateway (this machine, as its container sees
it); clients talk to both over loopback. Everything is removed by the fixture.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from deploytools import push_small_image, wait_for

from regdeploy.cli import cli
from regdeploy.verify.registry_api import RegistryClient

pytestmark = pytest.mark.integration

ACCEPT = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
UPSTREAM_PASSWORD = "upstream-9d3e-password"


class Pair:
    """hosts `upstream` and `mirror` in one inventory: two registries on this engine, one CA."""

    def __init__(self, tmp: Path, name: str, ports: Callable[[], int], image: str, gateway: str) -> None:
        self.tmp = tmp
        self.inventory = tmp / "hosts.yml"
        self.up_port, self.mirror_port, self.proxy_port, self.token_port = ports(), ports(), ports(), ports()
        self.names = {"upstream": f"{name}-up", "mirror": f"{name}-mirror"}
        self.env = {"UPSTREAM_PASSWORD": UPSTREAM_PASSWORD}
        (tmp / "upstream-user").write_text("puller")
        puller = {"env": "UPSTREAM_PASSWORD"}
        common = {"image": image, "tls": {"mode": "selfsigned", "sans": [gateway]}, "health_timeout": "20s"}
        self.hosts: dict[str, Any] = {
            # distribution's proxy hands its credentials only to an upstream's token server (it
            # discovers the realm at start): the upstream uses token auth, as Docker Hub and GHCR do.
            "upstream": {"ansible_connection": "local", "registry": {
                **common, "name": self.names["upstream"], "port": self.up_port,
                "tls": {"mode": "selfsigned", "sans": [gateway],
                        "external_url": f"https://{gateway}:{self.up_port}"},
                "config_dir": str(tmp / "up" / "config"), "data_dir": str(tmp / "up" / "data"),
                "auth": {"mode": "token", "token": {"port": self.token_port}, "bcrypt_cost": 4,
                         "users": [{"name": "alice"}, {"name": "puller", "password": puller}]},
            }},
            "mirror": {"ansible_connection": "local", "registry": {
                **common, "name": self.names["mirror"], "port": self.mirror_port,
                "config_dir": str(tmp / "mirror" / "config"), "data_dir": str(tmp / "mirror" / "data"),
                "auth": {"users": [{"name": "bob"}], "bcrypt_cost": 4},
                "proxies": [{"name": "up", "remoteurl": f"https://{gateway}:{self.up_port}",
                             "username": {"file": str(tmp / "upstream-user")},
                             "password": {"env": "UPSTREAM_PASSWORD"}, "port": self.proxy_port,
                             "check_image": "team/app:v1"}],
            }},
        }  # fmt: skip
        self.write()

    def write(self) -> None:
        self.inventory.write_text(yaml.safe_dump({"all": {"hosts": self.hosts}}))

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(
            cli, [*args, "-i", str(self.inventory)], env=self.env, catch_exceptions=False
        )

    def password(self, user: str) -> str:
        return (self.tmp / ".regdeploy" / "secrets" / "users" / user).read_text()

    def api(self, port: int, user: str, password: str | None = None) -> RegistryClient:
        ca = (self.tmp / ".regdeploy" / "ca" / "ca.crt").read_bytes()
        return RegistryClient("127.0.0.1", port, ca, user, password or self.password(user),
                              server_hostname="localhost")  # fmt: skip

    def cleanup(self, client: Any) -> None:
        self.run("down", "--purge-data", "--yes")
        for base in self.names.values():
            for cname in (base, f"{base}-proxy-up", f"{base}-token"):
                with contextlib.suppress(Exception):
                    client.api.remove_container(cname, force=True)
            with contextlib.suppress(Exception):
                client.api.remove_network(f"{base}-net")


@pytest.fixture
def pair(tmp_path: Path, unique_name: str, free_port: Callable[[], int], registry_image: str,
         gateway: str, docker_client: Any) -> Iterator[Pair]:  # fmt: skip
    p = Pair(tmp_path, unique_name, free_port, registry_image, gateway)
    yield p
    p.cleanup(docker_client)


def test_a_proxy_serves_the_upstreams_images_and_keeps_them_when_it_is_gone(
    pair: Pair, docker_client: Any
) -> None:
    # The upstream first: distribution's proxy asks it for its token realm when it starts, and
    # stops (panic) when it cannot reach it.
    upstream = pair.run("up", "--limit", "upstream")
    assert upstream.exit_code == 0, upstream.output
    first = pair.run("up", "--json")
    assert first.exit_code == 0, first.output
    mirror_changes = [c["resource"] for c in json.loads(first.stdout)["hosts"]["mirror"]["changes"]]
    proxy = f"{pair.names['mirror']}-proxy-up"
    assert f"container:{proxy}" in mirror_changes
    digest = push_small_image(pair.api(pair.up_port, "alice"), "team/app")

    through = pair.api(pair.proxy_port, "bob")  # the mirror's own users, as for the mirror itself
    got = through.request("GET", "/v2/team/app/manifests/v1", headers=ACCEPT)
    assert got.status == 200, got
    assert got.headers["docker-content-digest"] == digest
    assert pair.api(pair.proxy_port, "bob", "wrong").request("GET", "/v2/").status == 401

    # A push to the proxy is refused, in the registry's words.
    refused = through.request("POST", "/v2/team/other/blobs/uploads/")
    assert refused.status == 405
    assert b"UNSUPPORTED" in refused.body

    verified = pair.run("verify", "--limit", "mirror", "--json")
    assert verified.exit_code == 0, verified.output
    checks = {c["name"]: c for c in json.loads(verified.stdout)["hosts"]["mirror"]["checks"]}
    assert f"up :{pair.proxy_port} pulled team/app:v1 ({digest[:19]})" in checks["proxies"]["detail"]

    # The upstream gone: what the proxy has cached still pulls.
    docker_client.api.stop(pair.names["upstream"])
    cached = through.request("GET", "/v2/team/app/manifests/v1", headers=ACCEPT)
    assert cached.status == 200 and cached.headers["docker-content-digest"] == digest

    # The upstream's credentials are nowhere: docker logs, the plan, status.
    logs = subprocess.run(["docker", "logs", proxy], capture_output=True, text=True)
    assert UPSTREAM_PASSWORD not in logs.stdout + logs.stderr
    docker_client.api.start(pair.names["upstream"])
    plan = pair.run("plan")
    assert plan.exit_code == 0, plan.output
    assert UPSTREAM_PASSWORD not in plan.output
    status = pair.run("status", "--json")
    units = {u["name"]: u for u in json.loads(status.stdout)["hosts"]["mirror"]["units"]}
    assert units[proxy]["role"] == "proxy" and units[proxy]["running"]
    config = pair.tmp / "mirror" / "config" / "proxy-up" / "config.yml"
    assert config.stat().st_mode & 0o777 == 0o600
    again = pair.run("up", "--json")
    assert json.loads(again.stdout)["changed"] is False


def test_bad_proxy_input_changes_nothing(pair: Pair) -> None:
    proxies = pair.hosts["mirror"]["registry"]["proxies"]
    cases = [
        ([{"name": "x", "port": 5999}], "registry.proxies[0].remoteurl: is required"),
        ([proxies[0], {**proxies[0], "name": "two"}], "registry.proxies[1].port:"),
        ([{**proxies[0], "ttl": "168h"}], "registry.proxies[0].ttl: needs distribution 3.x"),
    ]
    for given, fragment in cases:
        pair.hosts["mirror"]["registry"]["proxies"] = given
        pair.write()
        result = pair.run("up")
        assert result.exit_code == 2, result.output
        assert fragment in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not (pair.tmp / "mirror").exists() and not (pair.tmp / "up").exists()
    wait_for(lambda: True)


def test_containerd_pulls_the_upstreams_image_through_the_proxy_as_its_mirror(
    pair: Pair, docker_client: Any, gateway: str, tmp_path: Path
) -> None:
    from clienttools import ClientFilesGuard, ctr_forget, ctr_pull
    from test_certs import DockerCli

    guard = ClientFilesGuard()
    guard.ports = {pair.up_port, pair.mirror_port, pair.proxy_port, pair.token_port}
    guard.proxies = {"up"}
    namespace = f"regdeploy-test-{pair.names['mirror']}"
    upstream_ref = f"{gateway}:{pair.up_port}/team/app:v1"
    docker_cli = DockerCli(tmp_path, docker_client)
    try:
        assert pair.run("up", "--limit", "upstream").exit_code == 0
        assert pair.run("up").exit_code == 0
        # A real image (containerd unpacks what it pulls), pushed by the docker CLI over loopback.
        local = f"localhost:{pair.up_port}/team/app:v1"
        docker_cli.smoke_image(local)
        login = docker_cli("login", f"localhost:{pair.up_port}", "-u", "alice", "--password-stdin",
                           stdin=pair.password("alice"))  # fmt: skip
        assert login.returncode == 0, login.stderr
        assert docker_cli("push", local).returncode == 0
        digest = docker_client.images.get(local).attrs["RepoDigests"][0].split("@", 1)[1]
        trusted = pair.run("certs", "trust", "--local", "--runtime", "containerd")
        assert trusted.exit_code == 0, trusted.output
        mirrored = pair.run("clients", "mirror", "--local", "--runtime", "containerd", "--json")
        assert mirrored.exit_code == 0, mirrored.output
        proxy = f"{pair.names['mirror']}-proxy-up"
        pulled = ctr_pull(upstream_ref, namespace, "bob", pair.password("bob"))
        assert pulled.returncode == 0, pulled.stderr
        logs = subprocess.run(["docker", "logs", proxy], capture_output=True, text=True)
        assert "/v2/team/app/manifests/v1" in logs.stdout + logs.stderr  # the request reached the proxy
        # With the upstream stopped only the proxy can answer, from its cache.
        ctr_forget(namespace, upstream_ref)
        docker_client.api.stop(pair.names["upstream"])
        again = ctr_pull(upstream_ref, namespace, "bob", pair.password("bob"))
        assert again.returncode == 0, again.stderr
        sock = "/var/run/docker/containerd/containerd.sock"
        listed = subprocess.run(
            ["ctr", "-a", sock, "-n", namespace, "images", "ls"], capture_output=True, text=True
        )
        assert upstream_ref in listed.stdout and digest in listed.stdout
    finally:
        docker_cli.cleanup()
        ctr_forget(namespace, upstream_ref)
        pair.run("clients", "mirror", "--local", "--runtime", "containerd", "--remove")
        pair.run("certs", "trust", "--local", "--runtime", "containerd", "--remove")
        guard.cleanup()
