"""`regdeploy certs trust` for every runtime and `regdeploy clients mirror`, on this machine's files
under a temporary --root: no engine, no host."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from regdeploy.cli import cli

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/regdeploy-test.sock"}
PROXIES = [
    {"name": "dockerhub", "remoteurl": "https://registry-1.docker.io", "port": 5010},
    {"name": "ghcr", "remoteurl": "https://ghcr.io", "port": 5011},
]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=NO_ENGINE, catch_exceptions=False)


def inventory(tmp: Path, **registry: Any) -> Path:
    spec = {"name": "main", "port": 5443, "config_dir": str(tmp / "config"), "data_dir": str(tmp / "data"),
            "tls": {"mode": "selfsigned", "sans": ["10.9.8.7"]}, **registry}  # fmt: skip
    path = tmp / "hosts.yml"
    hosts = {"localhost": {"ansible_connection": "local", "registry": spec}}
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    generated = run("certs", "generate", "-i", str(path))
    assert generated.exit_code == 0, generated.output
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc/containerd").mkdir(parents=True)
    return r


def files_under(root: Path) -> list[str]:
    return sorted("/" + str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_trust_covers_the_token_server_and_proxies_for_each_runtime(tmp_path: Path, root: Path) -> None:
    token = {"mode": "token", "users": [{"name": "alice"}], "token": {"port": 5444}}
    inv = inventory(tmp_path, proxies=PROXIES[:1], auth=token)
    result = run("certs", "trust", "-i", str(inv), "--local", "--root", str(root), "--runtime",
                 "podman,containerd", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    host = json.loads(result.stdout)["hosts"]["(control machine)"]
    assert set(host) >= {"ok", "changed", "changes", "notes", "error", "runtimes", "warnings", "reload"}
    assert host["runtimes"] == ["containerd", "podman"]
    paths = {c["resource"].removeprefix("file:") for c in host["changes"]}
    for address in ("localhost", "127.0.0.1", "10.9.8.7"):
        for port in (5443, 5444, 5010):
            assert f"/etc/containers/certs.d/{address}:{port}/ca.crt" in paths
            assert f"/etc/containerd/certs.d/{address}:{port}/hosts.toml" in paths
    assert {c["runtime"] for c in host["changes"]} == {"containerd", "podman"}
    assert all(c["action"] == "create" and c["reason"] for c in host["changes"])
    assert host["warnings"] == []  # no config.toml under this root: nothing to say about config_path
    assert not (root / "etc/docker").exists()  # not chosen

    removed = run("certs", "trust", "-i", str(inv), "--local", "--root", str(root), "--remove", "--json")
    assert removed.exit_code == 0, removed.output
    gone = json.loads(removed.stdout)["hosts"]["(control machine)"]
    assert gone["runtimes"] == ["docker", "containerd", "podman", "k3s"]  # a removal looks everywhere
    assert {c["resource"].removeprefix("file:") for c in gone["changes"]} == paths
    assert files_under(root) == []


def test_trust_detects_the_runtimes_under_the_root_and_says_when_there_is_none(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("certs", "trust", "-i", str(inv), "--local", "--root", str(empty), "--json")
    host = json.loads(result.stdout)["hosts"]["(control machine)"]
    assert result.exit_code == 0 and host["changes"] == [] and host["runtimes"] == []
    assert host["notes"] == [
        "no container runtime found (docker, containerd, podman, k3s): nothing to do; choose with --runtime"
    ]
    (empty / "usr/bin").mkdir(parents=True)
    (empty / "usr/bin/podman").touch()
    found = json.loads(
        run("certs", "trust", "-i", str(inv), "--local", "--root", str(empty), "--json").stdout
    )
    assert found["hosts"]["(control machine)"]["runtimes"] == ["podman"]


def test_trust_text_output_shows_runtimes_warnings_and_reload(tmp_path: Path, root: Path) -> None:
    inv = inventory(tmp_path)
    (root / "etc/containerd/config.toml").write_text("version = 2\n")
    result = run("certs", "trust", "-i", str(inv), "--local", "--root", str(root), "--runtime", "containerd")
    assert result.exit_code == 0, result.output
    assert "(control machine): 6 changed (containerd)" in result.stdout
    assert "warning: (control machine): containerd: /etc/containerd/config.toml sets no" in result.stderr
    configured = run("certs", "trust", "-i", str(inv), "--local", "--root", str(root),
                     "--runtime", "containerd", "--configure-containerd")  # fmt: skip
    assert "reload: containerd reads config_path when it starts" in configured.stdout
    assert "config_path" in tomllib.loads((root / "etc/containerd/config.toml").read_text())["plugins"][
        "io.containerd.grpc.v1.cri"]["registry"]  # fmt: skip


def test_mirror_writes_and_removes_each_runtimes_files(tmp_path: Path, root: Path) -> None:
    inv = inventory(tmp_path, proxies=PROXIES)
    args = ("clients", "mirror", "-i", str(inv), "--local", "--root", str(root), "--json")
    result = run(*args, "--runtime", "containerd,podman,docker")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mirrors"] == [
        {"registry": "localhost", "proxy": "dockerhub", "unit": "main-proxy-dockerhub",
         "remoteurl": "https://registry-1.docker.io", "upstream": "docker.io", "port": 5010},
        {"registry": "localhost", "proxy": "ghcr", "unit": "main-proxy-ghcr", "remoteurl": "https://ghcr.io",
         "upstream": "ghcr.io", "port": 5011},
    ]  # fmt: skip
    host = report["hosts"]["(control machine)"]
    assert files_under(root) == [
        "/etc/containerd/certs.d/docker.io/hosts.toml", "/etc/containerd/certs.d/ghcr.io/hosts.toml",
        "/etc/containers/registries.conf.d/50-regdeploy-dockerhub.conf",
        "/etc/containers/registries.conf.d/50-regdeploy-ghcr.conf", "/etc/docker/daemon.json",
    ]  # fmt: skip
    # The registry is this machine's, and so is the client: the caches are at localhost.
    hub = tomllib.loads((root / "etc/containerd/certs.d/docker.io/hosts.toml").read_text())
    assert list(hub["host"]) == ["https://localhost:5010"]
    assert json.loads((root / "etc/docker/daemon.json").read_text()) == {
        "registry-mirrors": ["https://localhost:5010"]
    }
    assert any("systemctl reload docker" in line for line in host["reload"])
    assert report["changed"] is True

    only_ghcr = run(*args, "--runtime", "containerd", "--upstream", "ghcr.io", "--remove")
    assert only_ghcr.exit_code == 0, only_ghcr.output
    assert not (root / "etc/containerd/certs.d/ghcr.io").exists()
    assert (root / "etc/containerd/certs.d/docker.io/hosts.toml").exists()
    removed = run(*args, "--remove")
    assert removed.exit_code == 0, removed.output
    assert files_under(root) == []


@pytest.mark.parametrize(("extra", "proxies", "message"), [
    ((), [], "no registry.proxies on localhost: nothing to mirror (add pull-through caches under "
             "registry.proxies)"),
    (("--runtime", "docker,rkt"), PROXIES, "--runtime: unknown runtime 'rkt'"),
    (("--upstream", "quay.io"), PROXIES,
     "--upstream quay.io: no proxy serves it (served: docker.io (main-proxy-dockerhub), "
     "ghcr.io (main-proxy-ghcr))"),
])  # fmt: skip
def test_mirror_bad_input_is_one_line_exit_2_and_changes_nothing(
    tmp_path: Path, root: Path, extra: tuple[str, ...], proxies: list[dict[str, Any]], message: str
) -> None:
    inv = inventory(tmp_path, proxies=proxies)
    result = run("clients", "mirror", "-i", str(inv), "--local", "--root", str(root), *extra)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert files_under(root) == []


def test_mirror_needs_a_client(tmp_path: Path) -> None:
    inv = inventory(tmp_path, proxies=PROXIES)
    result = run("clients", "mirror", "-i", str(inv))
    assert result.exit_code == 2 and "add hosts to an inventory group `clients`" in result.stderr


def test_a_client_elsewhere_reaches_a_local_registrys_caches_by_a_san(tmp_path: Path) -> None:
    from regdeploy.ops.clients import mirror_targets
    from regdeploy.spec.registry import parse_spec

    spec = parse_spec("localhost", {"tls": {"sans": ["reg.corp.example"]}, "proxies": PROXIES[:1]})
    local = {"ansible_connection": "local"}
    here = mirror_targets([("localhost", local, spec)], {"localhost"}, client_here=True)
    elsewhere = mirror_targets([("localhost", local, spec)], {"localhost"}, client_here=False)
    assert [t.address for t in here] == ["localhost:5010"]
    assert [t.address for t in elsewhere] == ["reg.corp.example:5010"]
    remote = mirror_targets([("reg1", {"ansible_host": "10.0.0.7"}, spec)], set(), client_here=True)
    assert [(t.address, t.private_ca, t.unit) for t in remote] == [
        ("10.0.0.7:5010", False, "registry-proxy-dockerhub")
    ]
