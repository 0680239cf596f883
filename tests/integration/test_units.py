"""Units on the real engine: the relay deployed by `up` next to the registry, hardening of every
unit (the CIS Docker Benchmark's container checks, read from `docker inspect`), secrets kept out
of `docker logs`, and an older, root-run deployment upgraded in place with its data.

Deliveries go to a stand-in target on the default bridge's gateway (this machine); every unit,
network and directory is removed by the test that made it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from deploytools import TOKEN, WEBHOOK, Deployment, changes, deployment, push_small_image, wait_for
from standins import Got, StandIn

__all__ = ["deployment"]  # the fixture, used by name

pytestmark = pytest.mark.integration

TARGET_SECRET = "relay-target-hmac-7d1f0c"


def with_relay(d: Deployment, target: StandIn) -> None:
    d.registry["notifications"] = {"endpoints": [WEBHOOK]}
    d.registry["relay"] = {
        "targets": [
            {"name": "ci", "type": "generic", "url": f"{target.base}/hook",
             "secret": {"env": "TARGET_SECRET"}, "repositories": ["team/*"]},
        ],
        "retry": {"initial": "200ms", "max": "1s"},
    }  # fmt: skip
    d.env["TARGET_SECRET"] = TARGET_SECRET
    d.write()


def units(d: Deployment) -> dict[str, dict[str, Any]]:
    return {n: dict(d.client.api.inspect_container(n)) for n in (d.name + "-relay", d.name)}


def cis_problems(info: dict[str, Any]) -> list[str]:
    """What fails the CIS Docker Benchmark's container checks 4.1, 5.11, 5.13, 5.26, 5.29, and
    dropping every capability, in a container's inspect document."""
    hc, config = info["HostConfig"], info["Config"]
    problems = []
    user = config.get("User") or ""
    if user.split(":")[0] in ("", "0", "root"):
        problems.append(f"4.1 runs as root (User={user!r})")
    if not hc.get("Memory"):
        problems.append("5.11 no memory limit")
    if hc.get("ReadonlyRootfs") is not True:
        problems.append("5.13 root filesystem is writable")
    if "no-new-privileges:true" not in (hc.get("SecurityOpt") or []):
        problems.append(f"5.26 no-new-privileges not set ({hc.get('SecurityOpt')})")
    if not hc.get("PidsLimit") or hc["PidsLimit"] <= 0:
        problems.append("5.29 no pids limit")
    if hc.get("CapDrop") != ["ALL"]:
        problems.append(f"capabilities not all dropped (CapDrop={hc.get('CapDrop')})")
    if hc.get("Privileged"):
        problems.append("privileged")
    return problems


def state_secret(d: Deployment, key: str) -> str:
    return (d.tmp / ".regdeploy" / "secrets" / key).read_text()


def deliveries(target: StandIn) -> list[Got]:
    return [g for g in target.at("/hook") if g.status == 200]


def test_relay_unit_relays_a_push_and_a_second_up_changes_nothing(
    deployment: Deployment, stand_ins: Callable[..., StandIn], gateway: str
) -> None:
    target = stand_ins(gateway)
    with_relay(deployment, target)
    report = deployment.up_json()
    done = changes(report)
    relay = deployment.name + "-relay"
    network = deployment.name + "-net"
    # The network first, then the relay, then the registry that sends to it.
    names = [r for r, _ in done if r.startswith(("network:", "container:"))]
    assert names == [f"network:{network}", f"container:{relay}", f"container:{deployment.name}"]
    info = units(deployment)
    assert set(info[relay]["NetworkSettings"]["Networks"]) == {network}
    assert set(info[deployment.name]["NetworkSettings"]["Networks"]) == {network}
    assert info[relay]["HostConfig"]["PortBindings"] in ({}, None)  # only what clients use is published

    digest = push_small_image(deployment.api(), "team/app")
    wait_for(lambda: len(deliveries(target)) == 1)
    got = deliveries(target)[0]
    event = got.json()
    assert (event["repository"], event["tag"], event["digest"]) == ("team/app", "v1", digest)
    expected = "sha256=" + hmac.new(TARGET_SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-regdeploy-signature-256"] == expected

    again = deployment.up_json()
    assert again["changed"] is False and changes(again) == []
    assert {n: i["Id"] for n, i in units(deployment).items()} == {n: i["Id"] for n, i in info.items()}


def test_relay_queue_survives_down_and_up(
    deployment: Deployment, stand_ins: Callable[..., StandIn], gateway: str
) -> None:
    answer = {"status": 503}
    target = stand_ins(gateway, lambda g: (answer["status"], b""))
    with_relay(deployment, target)
    deployment.up_json()
    digest = push_small_image(deployment.api(), "team/queued")
    wait_for(lambda: len(target.at("/hook")) >= 2)  # refused, retried: the event is in the queue
    result = deployment.run("down")
    assert result.exit_code == 0, result.output
    assert f"container:{deployment.name}-relay" in result.output
    queue = deployment.tmp / "data" / "relay-queue"
    assert any(p.is_file() for p in queue.rglob("*")), "the pending event should be on disk"
    answer["status"] = 200
    deployment.up_json()
    wait_for(lambda: len(deliveries(target)) == 1)
    assert deliveries(target)[0].json()["digest"] == digest


def test_every_unit_passes_the_cis_container_checks(
    deployment: Deployment, stand_ins: Callable[..., StandIn], gateway: str
) -> None:
    with_relay(deployment, stand_ins(gateway))
    deployment.up_json()
    for name, info in units(deployment).items():
        assert cis_problems(info) == [], name
        assert info["State"]["Status"] == "running", name
    # The registry's user owns what it reads and writes; nothing it reads is open to others.
    data = deployment.tmp / "data"
    assert (data.stat().st_uid, data.stat().st_mode & 0o777) == (65532, 0o700)
    for f in ("config.yml", "auth/htpasswd", "certs/server.key", "relay/relay.yml", "relay/inbound.token"):
        st = (deployment.config / f).stat()
        assert (st.st_uid, st.st_mode & 0o777) == (65532, 0o600), f


def test_run_overrides_reach_the_container(deployment: Deployment) -> None:
    deployment.registry["run"] = {"user": "4242:4243", "memory": "256m", "pids": 128}
    deployment.write()
    deployment.up_json()
    info = deployment.container()
    assert info["Config"]["User"] == "4242:4243"
    assert (info["HostConfig"]["Memory"], info["HostConfig"]["PidsLimit"]) == (256 << 20, 128)
    assert (deployment.tmp / "data").stat().st_uid == 4242
    push_small_image(deployment.api(), "team/owned")  # the registry can write its data as that user


def test_docker_logs_of_every_unit_hold_no_secret(
    deployment: Deployment, stand_ins: Callable[..., StandIn], gateway: str
) -> None:
    target = stand_ins(gateway)
    with_relay(deployment, target)
    deployment.up_json()
    push_small_image(deployment.api(), "team/logs")
    wait_for(lambda: len(deliveries(target)) == 1)
    # A refused delivery and a bad token at the relay's door: the error paths log too.
    result = deployment.run("up")  # unchanged: no restart, logs keep the start lines
    assert result.exit_code == 0, result.output
    secrets = {
        "webhook header": TOKEN,
        "relay inbound token": state_secret(deployment, "relay/localhost/inbound-token"),
        "relay target secret": TARGET_SECRET,
        "password": deployment.password(),
        "http secret": state_secret(deployment, "http-secret"),
    }
    for name in units(deployment):
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, timeout=30)
        text = logs.stdout + logs.stderr
        assert text, f"{name} logged nothing: the check would prove nothing"
        leaked = [what for what, value in secrets.items() if value in text]
        assert leaked == [], f"{name}: {leaked}"


def old_definition(current: dict[str, Any]) -> dict[str, Any]:
    """The definition label regdeploy 0.1 (before units) wrote: no network, no run options."""
    labels = current["Config"]["Labels"]
    definition = json.loads(labels["io.regdeploy.definition"])
    for key in ("network", "aliases", "run"):
        definition.pop(key)
    return definition


def test_a_root_run_deployment_is_upgraded_in_place_with_its_data(
    deployment: Deployment, registry_image: str
) -> None:
    deployment.up_json()
    first = push_small_image(deployment.api(), "team/before")
    current = deployment.container()
    # Put the host back as regdeploy 0.1 left it: a root-owned data dir and config, the container
    # running as root on the default bridge, labelled with the old definition.
    deployment.client.api.remove_container(deployment.name, force=True)
    deployment.client.api.remove_network(deployment.name + "-net")
    data, config = deployment.tmp / "data", deployment.config
    subprocess.run(["chown", "-R", "0:0", str(data), str(config)], check=True)
    data.chmod(0o755)
    definition = old_definition(current)
    old = deployment.client.containers.create(
        registry_image, definition["command"], name=deployment.name, detach=True,
        ports={"5000/tcp": ("0.0.0.0", deployment.port)},
        volumes={str(config): {"bind": "/etc/regdeploy", "mode": "ro"},
                 str(data): {"bind": "/var/lib/registry", "mode": "rw"}},
        restart_policy={"Name": "unless-stopped"},
        labels={"io.regdeploy.managed": "true", "io.regdeploy.host": "localhost",
                "io.regdeploy.definition": json.dumps(definition, sort_keys=True, separators=(",", ":"))},
    )  # fmt: skip
    old.start()
    wait_for(lambda: deployment.api().catalog() == ["team/before"])
    second = push_small_image(deployment.api(), "team/as-root")  # root writes root-owned files
    assert (data / "docker").stat().st_uid == 0

    plan = deployment.run("plan")
    assert plan.exit_code == 0, plan.output
    assert f"dir:{data}" in plan.output and "chown: owner 0:0 -> 65532:65532" in plan.output
    report = deployment.up_json()
    done = changes(report)
    assert (f"dir:{data}", "chown") in done
    assert (f"container:{deployment.name}", "recreate") in done
    reason = next(c["reason"] for c in report["hosts"]["localhost"]["changes"]
                  if c["resource"] == f"container:{deployment.name}")  # fmt: skip
    assert "hardening" in reason and "network" in reason
    assert cis_problems(deployment.container()) == []
    api = deployment.api()
    for repo, digest in (("team/before", first), ("team/as-root", second)):
        accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
        got = api.request("GET", f"/v2/{repo}/manifests/v1", headers=accept)
        assert got.status == 200 and got.headers["docker-content-digest"] == digest, repo
    push_small_image(api, "team/after")  # the hardened registry writes where root wrote before
    owners = {p.stat().st_uid for p in data.rglob("*")}
    assert owners == {65532}
    assert deployment.up_json()["changed"] is False


@pytest.mark.parametrize(
    ("relay", "fragment"),
    [
        ({"targets": [{"name": "x", "type": "gitlab"}]},
         "registry.relay.targets[0].type: unknown value 'gitlab' (did you mean 'github'?)"),
        ({"queue": {"max_events": 10}}, "registry.relay.targets: needs at least one target"),
        ({"targets": [{"name": "x", "type": "generic", "url": "http://x/"}], "run": {"pids": 5}},
         "registry.relay.run.pids: 5 is out of range 16..4194304"),
    ],
)  # fmt: skip
def test_bad_relay_or_run_input_changes_nothing(deployment: Deployment, relay: Any, fragment: str) -> None:
    deployment.registry["relay"] = relay
    deployment.write()
    result = deployment.run("up")
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (deployment.tmp / "config").exists()
    names = [c.name for c in deployment.client.containers.list(all=True)]
    assert not any(n.startswith(deployment.name) for n in names)


@pytest.mark.parametrize(
    ("run", "fragment"),
    [
        ({"memory": "8m"}, "registry.run.memory: '8m' is out of range 32m..64g"),
        ({"user": "0"}, "registry.run.user: 0 is root"),
        ({"cap_add": ["ALL"]}, "registry.run.cap_add[0]: ALL would undo the hardening"),
    ],
)
def test_bad_run_override_changes_nothing(deployment: Deployment, run: Any, fragment: str) -> None:
    deployment.registry["run"] = run
    deployment.write()
    result = deployment.run("up")
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert not Path(deployment.tmp / "config").exists()


def test_webhooks_test_reaches_the_deployed_relay(
    deployment: Deployment, stand_ins: Callable[..., StandIn], gateway: str
) -> None:
    target = stand_ins(gateway)
    with_relay(deployment, target)
    deployment.up_json()
    result = deployment.run("webhooks", "test", "-e", "regdeploy-relay", "--repository", "team/sample",
                            "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    (endpoint,) = json.loads(result.stdout)["hosts"]["localhost"]["endpoints"]
    assert (endpoint["name"], endpoint["status"]) == ("regdeploy-relay", 200)
    assert endpoint["url"] == f"http://{deployment.name}-relay:5080/events"
    wait_for(lambda: len(deliveries(target)) == 1)  # the relay took it as the registry's own
    assert deliveries(target)[0].json()["repository"] == "team/sample"
    deployment.client.api.stop(deployment.name + "-relay")
    down = deployment.run("webhooks", "test", "-e", "regdeploy-relay")
    assert down.exit_code == 1
    assert f"the relay unit {deployment.name}-relay cannot be reached" in down.output
    assert state_secret(deployment, "relay/localhost/inbound-token") not in down.output


IDLE_UP = """
import sys
from regdeploy.cli import cli
try:
    cli(["up", "-i", sys.argv[1]], prog_name="regdeploy")
except SystemExit as done:
    assert done.code == 0, done.code
print(sorted(m for m in sys.modules if m.split(".")[0] in ("docker", "requests", "urllib3")))
"""


def test_an_idempotent_up_of_two_units_never_imports_docker_py(
    deployment: Deployment, stand_ins: Callable[..., StandIn], gateway: str
) -> None:
    """The engine seam speaks the Engine API itself: docker-py is for image streams only."""
    with_relay(deployment, stand_ins(gateway))
    deployment.up_json()
    env = {**os.environ, **deployment.env}
    run = subprocess.run([sys.executable, "-c", IDLE_UP, str(deployment.inventory)], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "no changes" in run.stdout
    assert run.stdout.strip().splitlines()[-1] == "[]"
