"""What registry 2.8.2's debug server serves, read with regdeploy's Prometheus reader.

The registry is run by hand here (not by `up`): this pins down the behaviour `registry.metrics`
relies on — `/metrics` with `http.debug.prometheus.enabled`, 404 without, `/debug/vars` either way —
and shows the request counters moving with traffic."""

from __future__ import annotations

import contextlib
import http.client
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deploytools import deployment, push_small_image, wait_for

from regdeploy.ops.metrics import read_counts
from regdeploy.verify.registry_api import RegistryClient

__all__ = ["deployment"]  # the fixture, used by name

pytestmark = pytest.mark.integration

CONFIG = """\
version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: /var/lib/registry}}
  delete: {{enabled: true}}
http:
  addr: :5000
  debug:
    addr: :5001
{prometheus}
"""
PROMETHEUS = "    prometheus: {enabled: true, path: /metrics}"


class Probe:
    def __init__(self, api: RegistryClient, debug_port: int) -> None:
        self.api = api
        self.debug_port = debug_port

    def debug(self, path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.debug_port, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        finally:
            conn.close()


@pytest.fixture
def run_registry(tmp_path: Path, docker_client: Any, registry_image: str, unique_name: str,
                 free_port: Callable[[], int]) -> Iterator[Callable[[bool], Probe]]:  # fmt: skip
    names: list[str] = []

    def start(prometheus: bool) -> Probe:
        name = f"{unique_name}-{len(names)}"
        config = tmp_path / f"{name}.yml"
        config.write_text(CONFIG.format(prometheus=PROMETHEUS if prometheus else ""))
        config.chmod(0o644)
        port, debug_port = free_port(), free_port()
        names.append(name)
        docker_client.containers.run(
            registry_image, name=name, detach=True,
            ports={"5000/tcp": ("127.0.0.1", port), "5001/tcp": ("127.0.0.1", debug_port)},
            volumes={str(config): {"bind": "/etc/docker/registry/config.yml", "mode": "ro"}},
        )  # fmt: skip
        probe = Probe(RegistryClient("127.0.0.1", port, None), debug_port)
        wait_for(lambda: probe.api.request("GET", "/").status == 200 and probe.debug("/debug/health") == 200)
        return probe

    yield start
    for name in names:
        with contextlib.suppress(Exception):
            docker_client.api.remove_container(name, force=True, v=True)  # and the image's anonymous volume


def test_2_8_2_serves_prometheus_metrics_and_the_counters_move(run_registry: Callable[[bool], Probe]) -> None:
    probe = run_registry(True)
    before = read_counts("127.0.0.1", probe.debug_port)
    digest = push_small_image(probe.api, "team/app")  # 2 uploads started (202), 2 finished (201), 1 manifest
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    assert probe.api.request("GET", "/v2/team/app/manifests/v1", headers=accept).status == 200
    assert probe.api.request("GET", "/v2/team/app/manifests/missing").status == 404
    assert probe.api.request("DELETE", f"/v2/team/app/manifests/{digest}").status == 202
    assert probe.api.request("GET", "/").status == 200  # the health probe: not an API route, not counted
    after = read_counts("127.0.0.1", probe.debug_port)

    moved = {code: n - before.codes.get(code, 0) for code, n in after.codes.items()}
    assert {code: n for code, n in moved.items() if n} == {"200": 1, "201": 3, "202": 3, "404": 1}
    assert after.requests - before.requests == 8
    assert after.errors == 0
    # The same port serves /debug/vars (notification endpoints with their headers) and pprof:
    # why registry.metrics stays on loopback.
    assert probe.debug("/debug/vars") == 200
    assert probe.debug("/debug/pprof/cmdline") == 200


def test_without_prometheus_enabled_metrics_is_404(run_registry: Callable[[bool], Probe]) -> None:
    probe = run_registry(False)
    with pytest.raises(OSError, match=r"answered 404: is http.debug.prometheus enabled\?"):
        read_counts("127.0.0.1", probe.debug_port)
    assert probe.debug("/debug/vars") == 200



def test_registry_metrics_deployed_by_up_and_counted_by_status(deployment: Any, free_port: Any) -> None:
    """registry.metrics through `up`: /metrics published on loopback only, counters in `status`."""
    d = deployment
    port = free_port()
    d.registry["metrics"] = {"port": port}
    d.write()
    d.up_json()
    bindings = d.container()["HostConfig"]["PortBindings"]["5001/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    before = read_counts("127.0.0.1", port)
    push_small_image(d.api(), "team/metered")
    wait_for(lambda: read_counts("127.0.0.1", port).requests > before.requests)
    result = d.run("status", "--json")
    assert result.exit_code == 0, result.output
    counted = json.loads(result.stdout)["hosts"]["localhost"]["metrics"]
    assert counted["requests"] >= before.requests + 3  # blob uploads and a manifest at least
    assert counted["errors"] == 0
    text = d.run("status")
    assert "requests" in text.stdout and "errors (5xx)" in text.stdout
