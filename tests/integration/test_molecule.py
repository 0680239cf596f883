"""Molecule's default scenario (molecule/default), run for real: `molecule test` on this machine's
engine, its idempotence step shown to be truthful, and the example playbook's --check mode.

The scenario's registry has its own container name, port and directories (molecule/default/inventory):
the fixture refuses to start if they are in use and removes whatever a failed run left.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansibletools import REPO, output, run_tool

pytestmark = pytest.mark.integration

SCENARIO = REPO / "molecule" / "default"
PLAYBOOK = REPO / "docs" / "examples" / "registries.yml"


def _scenario_registry() -> dict[str, Any]:
    inventory = yaml.safe_load((SCENARIO / "inventory" / "hosts.yml").read_text())
    registry: dict[str, Any] = inventory["all"]["children"]["registries"]["vars"]["registry"]
    return registry


def _steps(text: str) -> dict[str, str]:
    """Molecule's output cut into its steps: {"converge": "...", "idempotence": "...", ...}."""
    parts = re.split(r"^\S+\s+\[default > (\w+)\] Executing$", text, flags=re.M)
    steps: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        steps[name] = steps.get(name, "") + body
    return steps


def _recap(step: str, host: str) -> dict[str, int]:
    match = re.search(rf"^{re.escape(host)}\s*:\s*(.*)$", step, flags=re.M)
    assert match, f"no PLAY RECAP line for {host} in:\n{step[-3000:]}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@pytest.fixture
def scenario(docker_client: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The scenario's registry settings; everything it creates is gone afterwards, pass or fail."""
    import docker.errors

    registry = _scenario_registry()
    try:
        docker_client.images.get(registry["image"])
    except docker.errors.ImageNotFound:
        missing = f"the scenario's image {registry['image']} is missing: run `bash scripts/setup.sh`"
        pytest.fail(missing, pytrace=False)
    with contextlib.suppress(docker.errors.NotFound):
        docker_client.containers.get(registry["name"])
        taken = f"a container named {registry['name']} exists: not starting the molecule scenario"
        pytest.fail(taken, pytrace=False)
    try:
        yield registry
    finally:
        run_tool(["molecule", "destroy", "-s", "default"], tmp_path)
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(registry["name"]).remove(force=True, v=True)
        for key in ("config_dir", "data_dir"):
            shutil.rmtree(registry[key], ignore_errors=True)
        shutil.rmtree(Path(registry["data_dir"]).parent, ignore_errors=True)


def test_molecule_test_runs_the_whole_sequence(
    scenario: dict[str, Any], docker_client: Any, tmp_path: Path
) -> None:
    import docker.errors

    result = run_tool(["molecule", "test", "-s", "default"], tmp_path)
    assert result.returncode == 0, output(result)
    steps = _steps(result.stdout)
    assert list(steps) == ["destroy", "syntax", "create", "converge", "idempotence", "verify"], list(steps)
    # The first converge changed the host; the second (idempotence) changed nothing, per regdeploy --json.
    assert _recap(steps["converge"], "molecule-registry")["changed"] == 1, steps["converge"][-3000:]
    assert "container:regdeploy-molecule: create: no container yet" in steps["converge"]
    assert _recap(steps["idempotence"], "molecule-registry")["changed"] == 0, steps["idempotence"][-3000:]
    assert '"msg": "no changes"' in steps["idempotence"]
    verify = steps["verify"]
    assert "TASK [Registry verified]" in verify and "ok: [molecule-registry]" in verify, verify[-3000:]
    assert _recap(verify, "molecule-registry")["failed"] == 0
    # destroy: `regdeploy down --purge-data --yes` left no container, data or config.
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(scenario["name"])
    assert not Path(scenario["data_dir"]).exists() and not Path(scenario["config_dir"]).exists()
    assert not (tmp_path / "molecule-ephemeral" / "inventory" / ".regdeploy").exists()


def test_idempotence_fails_when_the_second_converge_changes_something(
    scenario: dict[str, Any], docker_client: Any, tmp_path: Path
) -> None:
    for step in ("create", "converge"):
        result = run_tool(["molecule", step, "-s", "default"], tmp_path)
        assert result.returncode == 0, output(result)
    container = docker_client.containers.get(scenario["name"])
    # Drift on the host: someone edits the rendered config. regdeploy puts it back (a change), and
    # Molecule's idempotence step must see that change and fail, naming the task.
    config = Path(scenario["config_dir"]) / "config.yml"
    config.write_text(config.read_text() + "# edited by hand\n")
    result = run_tool(["molecule", "idempotence", "-s", "default"], tmp_path)
    assert result.returncode != 0, output(result)
    text = result.stdout
    assert "Idempotence test failed because of the following tasks" in text, output(result)
    assert "=> Registry converged" in text
    assert f"file:{config}: update: content changed" in text, output(result)
    assert "# edited by hand" not in config.read_text()
    after = docker_client.containers.get(scenario["name"])
    assert after.attrs["State"]["StartedAt"] != container.attrs["State"]["StartedAt"]  # restarted to read it


def test_example_playbook_check_mode_plans_and_changes_nothing(
    scenario: dict[str, Any], docker_client: Any, tmp_path: Path
) -> None:
    import docker.errors

    inventory = SCENARIO / "inventory" / "hosts.yml"
    state = inventory.parent / ".regdeploy"
    assert not state.exists()
    result = run_tool(["ansible-playbook", "-i", str(inventory), str(PLAYBOOK), "--check"], tmp_path)
    assert result.returncode == 0, output(result)
    # --check reports what `up` would change, as Ansible's check mode does, and touches nothing.
    assert _recap(result.stdout, "molecule-registry")["changed"] == 1, output(result)
    assert "container:regdeploy-molecule: create: no container yet" in result.stdout
    assert "skipping: [molecule-registry]" in result.stdout  # verify is skipped in check mode
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(scenario["name"])
    assert not Path(scenario["config_dir"]).exists() and not Path(scenario["data_dir"]).exists()
    assert not state.exists()  # a plan writes no local state either


FLEET_PREFIX = "regdeploy-molecule-fleet"  # molecule/fleet/vars.yml: lab_prefix


@pytest.fixture
def fleet(docker_client: Any, tmp_path: Path) -> Iterator[None]:
    """The lab image on hand (built once with debootstrap); no lab host of the scenario left after."""
    from lab import ensure_lab_image
    from labctl import stop

    ensure_lab_image(docker_client)
    assert stop(FLEET_PREFIX) == [], "lab hosts of an earlier fleet scenario run were still there"
    try:
        yield
    finally:
        run_tool(["molecule", "destroy", "-s", "fleet"], tmp_path)
        stop(FLEET_PREFIX)


def test_molecule_fleet_deploys_two_ssh_hosts(fleet: None, docker_client: Any, tmp_path: Path) -> None:
    from lab import LAB_LABEL

    result = run_tool(["molecule", "test", "-s", "fleet"], tmp_path)
    assert result.returncode == 0, output(result)
    text = result.stdout.replace("[fleet > ", "[default > ")  # one step splitter for both scenarios
    steps = _steps(text)
    assert list(steps) == ["destroy", "syntax", "create", "converge", "idempotence", "verify"], list(steps)
    for host in ("lab1", "lab2"):
        assert _recap(steps["converge"], host)["changed"] == 1, steps["converge"][-4000:]
        assert _recap(steps["idempotence"], host)["changed"] == 0, steps["idempotence"][-4000:]
        assert _recap(steps["verify"], host)["failed"] == 0
    # The lab cannot pull: the image went to each host over SSH.
    assert steps["converge"].count("image:registry:2: pull: image is not on the host") == 2
    assert "TASK [Registry verified]" in steps["verify"]
    assert "ok: [lab1]" in steps["verify"] and "ok: [lab2]" in steps["verify"]
    left = [c.name for c in docker_client.containers.list(all=True, filters={"label": LAB_LABEL})]
    assert not [name for name in left if name.startswith(FLEET_PREFIX)]
    assert not (tmp_path / "molecule-ephemeral" / "fleet").exists()


class LocalPlay:
    """Registries on this machine's engine, one per inventory host, for running the example playbook
    directly; each with the test's own container name, port and directories."""

    def __init__(self, tmp: Path, image: str, prefix: str, client: Any) -> None:
        self.tmp, self.image, self.prefix, self.client = tmp, image, prefix, client
        self.inventory = tmp / "inventory" / "hosts.yml"
        self.hosts: list[str] = []

    def write(self, ports: dict[str, int]) -> Path:
        """An inventory of group `registries` with one host per *ports* entry (host -> port)."""
        self.hosts = list(ports)
        hosts = {
            host: {"ansible_connection": "local", "registry": {
                "name": f"{self.prefix}-{host}", "image": self.image, "port": port, "bind": "127.0.0.1",
                "config_dir": str(self.tmp / host / "config"), "data_dir": str(self.tmp / host / "data"),
                "auth": {"users": [{"name": "ci"}], "bcrypt_cost": 5}}}
            for host, port in ports.items()
        }  # fmt: skip
        self.inventory.parent.mkdir(exist_ok=True)
        self.inventory.write_text(yaml.safe_dump({"all": {"children": {"registries": {"hosts": hosts}}}}))
        return self.inventory

    def playbook(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_tool(["ansible-playbook", "-i", str(self.inventory), str(PLAYBOOK), *args], self.tmp)

    def cleanup(self) -> None:
        from click.testing import CliRunner

        from regdeploy.cli import cli

        if self.inventory.exists():
            CliRunner().invoke(cli, ["down", "-i", str(self.inventory), "--purge-data", "--yes"])
        for host in self.hosts:
            with contextlib.suppress(Exception):
                self.client.containers.get(f"{self.prefix}-{host}").remove(force=True, v=True)


@pytest.fixture
def local_play(
    tmp_path: Path, registry_image: str, unique_name: str, docker_client: Any
) -> Iterator[LocalPlay]:
    play = LocalPlay(tmp_path, registry_image, unique_name, docker_client)
    try:
        yield play
    finally:
        play.cleanup()


def test_example_playbook_fails_only_the_host_that_failed(local_play: LocalPlay, free_port: Any) -> None:
    """Two registries from one play: one whose port is taken fails on its own task result with
    regdeploy's one-line reason; the other converges, and a re-run reports it unchanged."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        local_play.write({"good": free_port(), "bad": taken.getsockname()[1]})
        result = local_play.playbook()
        assert result.returncode == 2, output(result)  # Ansible's "a host failed"
        assert _recap(result.stdout, "good") == {**_recap(result.stdout, "good"), "changed": 1, "failed": 0}
        assert _recap(result.stdout, "bad")["failed"] == 1, output(result)
        failed = r'fatal: \[bad\]: FAILED! => \{\s*"msg": "port \d+ on 127\.0\.0\.1 is already in use'
        assert re.search(failed, result.stdout), output(result)
        assert "ok: [good]" in result.stdout.split("TASK [Registry verified]")[1]  # verify ran for good
        again = local_play.playbook("--limit", "good")
        assert again.returncode == 0 and _recap(again.stdout, "good")["changed"] == 0, output(again)


def test_example_playbook_rolls_out_in_batches_with_serial(local_play: LocalPlay, free_port: Any) -> None:
    """regdeploy_serial=1: Ansible runs the play host by host, and each batch runs its own `regdeploy
    up` limited to that batch (ansible_play_batch), so the second host is untouched until its turn."""
    local_play.write({"first": free_port(), "second": free_port()})
    result = local_play.playbook("-e", "regdeploy_serial=1", "-e", "regdeploy_verify=false")
    assert result.returncode == 0, output(result)
    converge = r"TASK \[Converge the registries.*\n(?:ok|changed): \[(\w+) -> localhost\]"
    runs = re.findall(converge, result.stdout)
    assert runs == ["first", "second"], output(result)  # one regdeploy run per batch, in order
    for name in ("first", "second"):
        assert _recap(result.stdout, name)["changed"] == 1
