"""regdeploy/clients: runtime detection, and certs trust / clients mirror applied to a client's files
under a temporary root (RootedFiles), as they are on a real client."""

from __future__ import annotations

import json
import stat
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from regdeploy import pki
from regdeploy.certs.trust import LocalFiles, TrustItem
from regdeploy.clients import containerd
from regdeploy.clients.files import RootedFiles
from regdeploy.clients.mirror import MirrorTarget, apply_mirrors
from regdeploy.clients.runtimes import ClientPaths, detect
from regdeploy.clients.trust import apply_runtime_trust

PATHS = ClientPaths()
ALL = ("docker", "containerd", "podman", "k3s")


def make_ca(cn: str = "CA") -> bytes:
    return pki.make_ca(pki.generate_key(), cn, now=datetime.now(UTC) - timedelta(days=1))


def files_under(root: Path) -> set[str]:
    return {"/" + str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def dirs_under(root: Path) -> set[str]:
    return {"/" + str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}


def test_detect_reads_binaries_in_path_dirs_and_config_dirs(tmp_path: Path) -> None:
    files = RootedFiles(LocalFiles(), str(tmp_path))
    assert detect(files) == ()
    (tmp_path / "usr/local/bin").mkdir(parents=True)
    (tmp_path / "usr/local/bin/skopeo").touch()
    assert detect(files) == ("podman",)
    (tmp_path / "etc/rancher/k3s").mkdir(parents=True)
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/ctr").touch()
    (tmp_path / "etc/docker").mkdir(parents=True)
    assert detect(files) == ("docker", "containerd", "podman", "k3s")


def test_trust_every_runtime_then_remove_leaves_nothing_of_ours(tmp_path: Path) -> None:
    ca = make_ca()
    files = RootedFiles(LocalFiles(), str(tmp_path))
    # Someone else's files that must survive: another registry's entries and a client certificate.
    (tmp_path / "etc/containerd/certs.d/other:5000").mkdir(parents=True)
    (tmp_path / "etc/containerd/certs.d/other:5000/hosts.toml").write_text('server = "https://other:5000"\n')
    (tmp_path / "etc/docker/certs.d/reg1:5000").mkdir(parents=True)
    (tmp_path / "etc/docker/certs.d/reg1:5000/client.cert").write_text("x")
    (tmp_path / "etc/rancher/k3s").mkdir(parents=True)
    registries = tmp_path / "etc/rancher/k3s/registries.yaml"
    registries.write_text("configs:\n  other:5000:\n    auth:\n      username: ci\n      password: pw\n")
    registries.chmod(0o600)
    before = files_under(tmp_path)
    before_dirs = dirs_under(tmp_path)

    items = [TrustItem("reg1", "reg1:5000", ca), TrustItem("reg1", "reg1:5001", ca)]
    out = apply_runtime_trust(files, ALL, items, False, PATHS)
    written = {c.path for c in out.changes}
    assert written == {
        "/etc/docker/certs.d/reg1:5000/ca.crt", "/etc/docker/certs.d/reg1:5001/ca.crt",
        "/etc/containers/certs.d/reg1:5000/ca.crt", "/etc/containers/certs.d/reg1:5001/ca.crt",
        "/etc/containerd/certs.d/reg1:5000/ca.crt", "/etc/containerd/certs.d/reg1:5000/hosts.toml",
        "/etc/containerd/certs.d/reg1:5001/ca.crt", "/etc/containerd/certs.d/reg1:5001/hosts.toml",
        "/etc/rancher/k3s/regdeploy/reg1:5000/ca.crt", "/etc/rancher/k3s/regdeploy/reg1:5001/ca.crt",
        "/etc/rancher/k3s/registries.yaml",
    }  # fmt: skip
    assert {c.runtime for c in out.changes} == set(ALL)
    assert out.reload == ["k3s reads registries.yaml when it starts: `systemctl restart k3s` (or k3s-agent)"]
    hosts = tomllib.loads((tmp_path / "etc/containerd/certs.d/reg1:5000/hosts.toml").read_text())
    assert (
        hosts["host"]["https://reg1:5000"]["ca"] == "/etc/containerd/certs.d/reg1:5000/ca.crt"
    )  # client path
    data = yaml.safe_load(registries.read_text())
    assert data["configs"]["other:5000"]["auth"] == {"username": "ci", "password": "pw"}
    assert data["configs"]["reg1:5000"]["tls"] == {"ca_file": "/etc/rancher/k3s/regdeploy/reg1:5000/ca.crt"}
    assert stat.S_IMODE(registries.stat().st_mode) == 0o600  # it holds passwords: kept private
    ca_file = tmp_path / "etc/containers/certs.d/reg1:5000/ca.crt"
    assert ca_file.read_bytes() == ca and stat.S_IMODE(ca_file.stat().st_mode) == 0o644
    assert apply_runtime_trust(files, ALL, items, False, PATHS).changes == []  # idempotent

    removed = apply_runtime_trust(files, ALL, items, True, PATHS)
    assert {c.path for c in removed.changes} == written
    assert files_under(tmp_path) == before
    assert yaml.safe_load(registries.read_text()) == {
        "configs": {"other:5000": {"auth": {"username": "ci", "password": "pw"}}}}  # fmt: skip
    # The per-address directories it made are gone; the runtimes' own directories stay.
    assert dirs_under(tmp_path) - before_dirs == {"/etc/containers", "/etc/containers/certs.d",
                                                  "/etc/containerd/certs.d"} - before_dirs  # fmt: skip


def test_someone_elses_hosts_toml_and_another_ca_are_left_alone(tmp_path: Path) -> None:
    ca, other = make_ca(), make_ca("Other")
    files = RootedFiles(LocalFiles(), str(tmp_path))
    theirs = tmp_path / "etc/containerd/certs.d/reg1:5000/hosts.toml"
    theirs.parent.mkdir(parents=True)
    theirs.write_text('server = "https://reg1:5000"\n')
    out = apply_runtime_trust(files, ("containerd",), [TrustItem("reg1", "reg1:5000", ca)], False, PATHS)
    assert out.changes == []
    assert out.notes == [
        "/etc/containerd/certs.d/reg1:5000/hosts.toml is not regdeploy's: left as is (for reg1's CA it needs "
        'ca = "/etc/containerd/certs.d/reg1:5000/ca.crt" under [host."https://reg1:5000"])'
    ]
    assert theirs.read_text() == 'server = "https://reg1:5000"\n'
    podman_ca = tmp_path / "etc/containers/certs.d/reg1:5000/ca.crt"
    podman_ca.parent.mkdir(parents=True)
    podman_ca.write_bytes(other)
    gone = apply_runtime_trust(files, ("podman",), [TrustItem("reg1", "reg1:5000", ca)], True, PATHS)
    assert gone.changes == [] and "is not reg1's CA: left in place" in gone.notes[0]


def test_containerd_config_path_warns_once_or_is_set_and_survives_remove(tmp_path: Path) -> None:
    files = RootedFiles(LocalFiles(), str(tmp_path))
    config = tmp_path / "etc/containerd/config.toml"
    config.parent.mkdir(parents=True)
    original = 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "/usr/lib/cni"\n'
    config.write_text(original)
    config.chmod(0o600)
    items = [TrustItem("reg1", "reg1:5000", make_ca())]
    out = apply_runtime_trust(files, ("containerd",), items, False, PATHS)
    assert out.warnings == [
        "containerd: /etc/containerd/config.toml sets no "
        'plugins."io.containerd.grpc.v1.cri".registry.config_path: '
        "its CRI plugin (kubelet) does not read these hosts.toml files (ctr needs --hosts-dir "
        "/etc/containerd/certs.d); `certs trust --configure-containerd` sets it"
    ]
    assert config.read_text() == original

    configured = apply_runtime_trust(files, ("containerd",), items, False, PATHS, configure_containerd=True)
    assert configured.warnings == [] and [c.path for c in configured.changes] == [
        "/etc/containerd/config.toml"
    ]
    assert configured.reload == [
        "containerd reads config_path when it starts: `systemctl restart containerd`"
    ]
    assert containerd.config_path_problem(config.read_text(), "/etc/containerd/certs.d") is None
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # its mode is kept
    assert apply_runtime_trust(files, ("containerd",), items, False, PATHS, True).changes == []

    removed = apply_runtime_trust(files, ("containerd",), items, True, PATHS)
    assert "/etc/containerd/config.toml" not in {c.path for c in removed.changes}
    assert removed.notes == [
        "/etc/containerd/config.toml keeps the config_path --configure-containerd set (it only says where "
        "hosts.toml files are; remove that line by hand if you want it gone)"
    ]


def test_k3s_file_with_comments_is_left_with_a_warning(tmp_path: Path) -> None:
    files = RootedFiles(LocalFiles(), str(tmp_path))
    registries = tmp_path / "etc/rancher/k3s/registries.yaml"
    registries.parent.mkdir(parents=True)
    registries.write_text("# hand-written\nmirrors: {}\n")
    out = apply_runtime_trust(files, ("k3s",), [TrustItem("reg1", "reg1:5000", make_ca())], False, PATHS)
    assert out.changes == []
    assert out.warnings == [
        "k3s: /etc/rancher/k3s/registries.yaml has comments, which rewriting it would drop: "
        'left as is; add configs."HOST:PORT".tls.ca_file by hand'
    ]


HUB = MirrorTarget(
    "reg1", "dockerhub", "https://registry-1.docker.io", "10.0.0.7:5010", unit="main-proxy-dockerhub"
)
GHCR = MirrorTarget("reg1", "ghcr", "https://ghcr.io", "10.0.0.7:5011", unit="main-proxy-ghcr")


def test_mirror_every_runtime_then_remove_restores_the_files(tmp_path: Path) -> None:
    files = RootedFiles(LocalFiles(), str(tmp_path))
    daemon = tmp_path / "etc/docker/daemon.json"
    daemon.parent.mkdir(parents=True)
    daemon.write_text('{"log-driver": "journald"}\n')
    before = files_under(tmp_path)

    out = apply_mirrors(files, ALL, [HUB, GHCR], False, PATHS)
    assert {c.path for c in out.changes} == {
        "/etc/docker/daemon.json",
        "/etc/containerd/certs.d/docker.io/hosts.toml", "/etc/containerd/certs.d/ghcr.io/hosts.toml",
        "/etc/containers/registries.conf.d/50-regdeploy-dockerhub.conf",
        "/etc/containers/registries.conf.d/50-regdeploy-ghcr.conf",
        "/etc/rancher/k3s/registries.yaml",
    }  # fmt: skip
    assert json.loads(daemon.read_text()) == {
        "log-driver": "journald",
        "registry-mirrors": ["https://10.0.0.7:5010"],
    }
    hub = tomllib.loads((tmp_path / "etc/containerd/certs.d/docker.io/hosts.toml").read_text())
    entry = {"capabilities": ["pull", "resolve"], "ca": "/etc/containerd/certs.d/10.0.0.7:5010/ca.crt"}
    assert hub == {"server": "https://registry-1.docker.io", "host": {"https://10.0.0.7:5010": entry}}
    podman = tomllib.loads((tmp_path / "etc/containers/registries.conf.d/50-regdeploy-ghcr.conf").read_text())
    assert podman == {
        "registry": [{"prefix": "ghcr.io", "location": "ghcr.io", "mirror": [{"location": "10.0.0.7:5011"}]}]
    }
    k3s = yaml.safe_load((tmp_path / "etc/rancher/k3s/registries.yaml").read_text())
    assert k3s == {"mirrors": {"docker.io": {"endpoint": ["https://10.0.0.7:5010"]},
                               "ghcr.io": {"endpoint": ["https://10.0.0.7:5011"]}}}  # fmt: skip
    assert out.notes == ["docker: Docker can mirror Docker Hub only: not configured for ghcr.io (pull those "
                         "through the cache by its own name)"]  # fmt: skip
    assert any("systemctl reload docker" in line for line in out.reload)
    assert any("systemctl restart k3s" in line for line in out.reload)
    # No certs trust was run: each runtime says which caches it cannot verify yet.
    assert [w.split(" does not trust")[0] for w in out.warnings] == ["docker", "containerd", "podman", "k3s"]
    assert apply_mirrors(files, ALL, [HUB, GHCR], False, PATHS).changes == []

    removed = apply_mirrors(files, ALL, [HUB, GHCR], True, PATHS)
    assert {c.path for c in removed.changes} == {c.path for c in out.changes}
    assert files_under(tmp_path) == before
    assert json.loads(daemon.read_text()) == {"log-driver": "journald"}
    assert not (tmp_path / "etc/containerd/certs.d/docker.io").exists()


def test_mirror_is_quiet_about_trust_once_certs_trust_ran(tmp_path: Path) -> None:
    files = RootedFiles(LocalFiles(), str(tmp_path))
    ca = make_ca()
    apply_runtime_trust(files, ALL, [TrustItem("reg1", "10.0.0.7:5010", ca)], False, PATHS)
    out = apply_mirrors(files, ALL, [HUB], False, PATHS)
    assert out.warnings == []


def test_two_caches_of_one_upstream_share_one_podman_dropin_and_one_hosts_toml(tmp_path: Path) -> None:
    files = RootedFiles(LocalFiles(), str(tmp_path))
    other = MirrorTarget("reg2", "hub", "https://index.docker.io", "10.0.0.8:5010", unit="eu-proxy-hub")
    out = apply_mirrors(files, ("containerd", "podman"), [HUB, other], False, PATHS)
    dropins = list((tmp_path / "etc/containers/registries.conf.d").iterdir())
    assert [d.name for d in dropins] == ["50-regdeploy-dockerhub.conf"]
    assert [m["location"] for m in tomllib.loads(dropins[0].read_text())["registry"][0]["mirror"]] == [
        "10.0.0.7:5010", "10.0.0.8:5010"]  # fmt: skip
    assert out.notes == ["podman: docker.io has 2 mirrors (main-proxy-dockerhub, eu-proxy-hub), all in "
                         "50-regdeploy-dockerhub.conf"]  # fmt: skip
    hosts = tomllib.loads((tmp_path / "etc/containerd/certs.d/docker.io/hosts.toml").read_text())
    assert list(hosts["host"]) == ["https://10.0.0.7:5010", "https://10.0.0.8:5010"]
    # Removing one registry's cache leaves the other's.
    apply_mirrors(files, ("containerd", "podman"), [HUB], True, PATHS)
    hosts = tomllib.loads((tmp_path / "etc/containerd/certs.d/docker.io/hosts.toml").read_text())
    assert list(hosts["host"]) == ["https://10.0.0.8:5010"]
    assert [m["location"] for m in tomllib.loads(dropins[0].read_text())["registry"][0]["mirror"]] == [
        "10.0.0.8:5010"
    ]


def test_an_upstream_of_the_same_inventory_shares_hosts_toml_with_its_trust(tmp_path: Path) -> None:
    files = RootedFiles(LocalFiles(), str(tmp_path))
    ca = make_ca()
    cache = MirrorTarget("reg2", "main", "https://reg1:5000", "reg2:5010")
    apply_runtime_trust(files, ("containerd",), [TrustItem("reg1", "reg1:5000", ca)], False, PATHS)
    apply_mirrors(files, ("containerd",), [cache], False, PATHS)
    path = tmp_path / "etc/containerd/certs.d/reg1:5000/hosts.toml"
    assert list(tomllib.loads(path.read_text())["host"]) == ["https://reg2:5010", "https://reg1:5000"]
    apply_runtime_trust(files, ("containerd",), [TrustItem("reg1", "reg1:5000", ca)], True, PATHS)
    left = tomllib.loads(path.read_text())
    assert left["server"] == "https://reg1:5000" and list(left["host"]) == ["https://reg2:5010"]
    assert not (path.parent / "ca.crt").exists()
    apply_mirrors(files, ("containerd",), [cache], True, PATHS)
    assert not path.parent.exists()


def test_foreign_mirror_files_are_left_with_a_warning(tmp_path: Path) -> None:
    files = RootedFiles(LocalFiles(), str(tmp_path))
    hub = tmp_path / "etc/containerd/certs.d/docker.io/hosts.toml"
    hub.parent.mkdir(parents=True)
    hub.write_text('server = "https://registry-1.docker.io"\n')
    daemon = tmp_path / "etc/docker/daemon.json"
    daemon.parent.mkdir(parents=True)
    daemon.write_text("{not json")
    out = apply_mirrors(files, ("docker", "containerd"), [HUB], False, PATHS)
    assert out.changes == []
    assert out.warnings[:2] == [
        "docker: /etc/docker/daemon.json is not valid JSON (Expecting property name enclosed in double "
        "quotes, line 1): left as is",
        "containerd: /etc/containerd/certs.d/docker.io/hosts.toml is not regdeploy's: left as is (add "
        '[host."https://10.0.0.7:5010"] to it for main-proxy-dockerhub)',
    ]


def test_caches_of_a_plain_http_registry_are_http_mirrors(tmp_path: Path) -> None:
    files = RootedFiles(LocalFiles(), str(tmp_path))
    plain = MirrorTarget("reg1", "dockerhub", "https://registry-1.docker.io", "10.0.0.7:5010", tls=False)
    out = apply_mirrors(files, ALL, [plain], False, PATHS)
    assert out.warnings == []  # nothing to trust
    hub = tomllib.loads((tmp_path / "etc/containerd/certs.d/docker.io/hosts.toml").read_text())
    assert hub["host"] == {"http://10.0.0.7:5010": {"capabilities": ["pull", "resolve"]}}
    dropin_path = tmp_path / "etc/containers/registries.conf.d/50-regdeploy-dockerhub.conf"
    dropin = tomllib.loads(dropin_path.read_text())
    assert dropin["registry"][0]["mirror"] == [{"location": "10.0.0.7:5010", "insecure": True}]
    assert json.loads((tmp_path / "etc/docker/daemon.json").read_text())["registry-mirrors"] == [
        "http://10.0.0.7:5010"
    ]


def test_removal_is_silent_about_files_that_never_held_regdeploys_entries(tmp_path: Path) -> None:
    """--remove looks at every runtime: someone else's files there are not worth a word, unless they
    name what regdeploy would remove (then the user must take it out by hand)."""
    files = RootedFiles(LocalFiles(), str(tmp_path))
    for path, text in {
        "etc/containerd/certs.d/reg1:5000/hosts.toml": 'server = "https://reg1:5000"\n',
        "etc/containerd/certs.d/docker.io/hosts.toml": 'server = "https://registry-1.docker.io"\n',
        "etc/containers/registries.conf.d/50-regdeploy-dockerhub.conf": "[[registry]]\n",
        "etc/docker/daemon.json": "{broken",
        "etc/rancher/k3s/registries.yaml": "# ours\nmirrors: {}\n",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    trusted = apply_runtime_trust(files, ALL, [TrustItem("reg1", "reg1:5000", make_ca())], True, PATHS)
    mirrored = apply_mirrors(files, ALL, [HUB], True, PATHS)
    for out in (trusted, mirrored):
        assert (out.changes, out.notes, out.warnings) == ([], [], [])
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    (tmp_path / "etc/rancher/k3s/registries.yaml").write_text(
        "# ours\nmirrors:\n  docker.io:\n    endpoint: [https://10.0.0.7:5010]\n"
    )
    assert apply_mirrors(files, ("k3s",), [HUB], True, PATHS).warnings == [
        "k3s: /etc/rancher/k3s/registries.yaml has comments, which rewriting it would drop: left as is; "
        "take its regdeploy endpoints out by hand"
    ]
