"""regdeploy/clients: the pure builders of each runtime's files (hosts.toml, config.toml,
registries.conf.d, daemon.json, registries.yaml), and --runtime parsing."""

from __future__ import annotations

import json
import tomllib

import pytest
import yaml

from regdeploy.clients import containerd, containers, dockerd, k3s
from regdeploy.clients.mirror import upstream_name
from regdeploy.clients.runtimes import parse_runtimes
from regdeploy.errors import InputError

CERTS_D = "/etc/containerd/certs.d"

# --- containerd hosts.toml -----------------------------------------------------------------------------


def test_trust_hosts_toml_is_containerds_documented_form() -> None:
    entry = containerd.trust_entry("10.0.0.7:5000", f"{CERTS_D}/10.0.0.7:5000/ca.crt")
    text = containerd.render(containerd.HostsToml("https://10.0.0.7:5000").with_host(entry))
    assert text == containerd.HEADER + (
        'server = "https://10.0.0.7:5000"\n'
        "\n"
        '[host."https://10.0.0.7:5000"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        '  ca = "/etc/containerd/certs.d/10.0.0.7:5000/ca.crt"\n'
    )
    assert tomllib.loads(text) == {
        "server": "https://10.0.0.7:5000",
        "host": {"https://10.0.0.7:5000": {"capabilities": ["pull", "resolve"],
                                           "ca": "/etc/containerd/certs.d/10.0.0.7:5000/ca.crt"}},
    }  # fmt: skip
    assert containerd.parse(text) == containerd.HostsToml("https://10.0.0.7:5000", (entry,))


def test_mirror_hosts_toml_for_docker_hub_and_ipv6_and_escaping() -> None:
    mirror = containerd.Host("https://[fd00::5]:5010", f"{CERTS_D}/[fd00::5]:5010/ca.crt")
    text = containerd.render(containerd.HostsToml("https://registry-1.docker.io").with_host(mirror))
    data = tomllib.loads(text)
    assert data["server"] == "https://registry-1.docker.io"
    assert list(data["host"]) == ["https://[fd00::5]:5010"]
    odd = containerd.Host("https://a:1", 'C:\\odd "path"')
    assert (
        tomllib.loads(containerd.render(containerd.HostsToml("https://a:1", (odd,))))["host"]["https://a:1"][
            "ca"
        ]
        == 'C:\\odd "path"'
    )


def test_trust_and_mirrors_share_a_file_the_registry_itself_last() -> None:
    """An upstream that is a registry of the same inventory: certs trust's entry and clients mirror's
    live in one file; mirrors are tried first, whichever command ran first, and each removal leaves
    the other's entries."""
    trust = containerd.trust_entry("reg1:5000", f"{CERTS_D}/reg1:5000/ca.crt")
    cache = containerd.Host("https://reg2:5010", f"{CERTS_D}/reg2:5010/ca.crt")
    trust_first = containerd.HostsToml("https://reg1:5000").with_host(trust).with_host(cache)
    mirror_first = (
        containerd.HostsToml("https://reg1:5000").with_host(cache).with_host(trust, "https://reg1:5000")
    )
    assert trust_first == mirror_first
    assert [h.url for h in trust_first.hosts] == ["https://reg2:5010", "https://reg1:5000"]
    assert trust_first.without(["https://reg2:5010"]) == containerd.HostsToml("https://reg1:5000", (trust,))
    assert trust_first.without([trust.url, cache.url]) is None
    # The same entry twice is one entry (idempotent).
    assert trust_first.with_host(cache) == trust_first


def test_only_regdeploys_hosts_toml_is_read_back() -> None:
    assert containerd.parse('server = "https://reg1:5000"\n') is None  # someone else's
    assert containerd.parse(containerd.MARKER + " but broken\n[[[") is None


# --- containerd config.toml ----------------------------------------------------------------------------

V2 = """version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
"""


def test_config_path_problem_per_config_version() -> None:
    assert containerd.config_path_problem(V2, CERTS_D) == (
        'sets no plugins."io.containerd.grpc.v1.cri".registry.config_path'
    )
    right = (
        V2
        + '    [plugins."io.containerd.grpc.v1.cri".registry]\n'
        + '      config_path = "/etc/containerd/certs.d"\n'
    )
    assert containerd.config_path_problem(right, CERTS_D) is None
    several = right.replace('"/etc/containerd/certs.d"', '"/opt/certs.d:/etc/containerd/certs.d/"')
    assert containerd.config_path_problem(several, CERTS_D) is None
    other = right.replace("/etc/containerd/certs.d", "/opt/certs.d")
    assert '= "/opt/certs.d", not "/etc/containerd/certs.d"' in str(
        containerd.config_path_problem(other, CERTS_D)
    )
    v3 = f'version = 3\n[plugins."io.containerd.cri.v1.images".registry]\nconfig_path = "{CERTS_D}"'
    assert containerd.config_path_problem(v3, CERTS_D) is None
    v1 = '[plugins.cri.registry]\nconfig_path = "/etc/containerd/certs.d"\n'
    assert containerd.config_path_problem(v1, CERTS_D) is None
    assert "not valid TOML" in str(containerd.config_path_problem("version = = 2", CERTS_D))


def test_set_config_path_adds_inserts_or_replaces_and_changes_nothing_else() -> None:
    added = containerd.set_config_path(V2, CERTS_D)
    assert added.startswith(V2)  # appended: every byte of the original is still there
    assert containerd.config_path_problem(added, CERTS_D) is None
    assert containerd.CONFIG_PATH_NOTE in added

    table = (
        V2 + '    [plugins."io.containerd.grpc.v1.cri".registry]\n      config_path = ""\n\n[other]\nx = 1\n'
    )
    replaced = containerd.set_config_path(table, CERTS_D)
    assert '      config_path = "/etc/containerd/certs.d"  # set by regdeploy' in replaced
    assert tomllib.loads(replaced)["other"] == {"x": 1}

    empty_table = V2 + '  [plugins."io.containerd.grpc.v1.cri".registry]  # ours\n[other]\nx = 1\n'
    inserted = containerd.set_config_path(empty_table, CERTS_D)
    assert containerd.config_path_problem(inserted, CERTS_D) is None
    assert tomllib.loads(inserted)["other"] == {"x": 1}


def test_set_config_path_refuses_what_it_cannot_do_safely() -> None:
    legacy = (
        V2
        + '    [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n      endpoint = ["x"]\n'
    )
    with pytest.raises(ValueError, match="containerd refuses next to config_path"):
        containerd.set_config_path(legacy, CERTS_D)
    dotted = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  registry.auths = {}\n'
    with pytest.raises(ValueError, match="would not be valid TOML"):
        containerd.set_config_path(dotted, CERTS_D)


# --- containers registries.conf.d ----------------------------------------------------------------------


def test_registries_conf_d_text_and_merge() -> None:
    one = containers.add_mirrors((), "docker.io", [containers.Mirror("10.0.0.7:5010")])
    text = containers.render(one)
    assert text == containers.HEADER + (
        "\n"
        "[[registry]]\n"
        'prefix = "docker.io"\n'
        'location = "docker.io"\n'
        "\n"
        "[[registry.mirror]]\n"
        'location = "10.0.0.7:5010"\n'
    )
    assert tomllib.loads(text) == {
        "registry": [
            {"prefix": "docker.io", "location": "docker.io", "mirror": [{"location": "10.0.0.7:5010"}]}
        ]
    }
    assert containers.parse(text) == one
    two = containers.add_mirrors(one, "docker.io", [containers.Mirror("10.0.0.8:5010", insecure=True)])
    assert [m.location for m in two[0].mirrors] == ["10.0.0.7:5010", "10.0.0.8:5010"]
    assert tomllib.loads(containers.render(two))["registry"][0]["mirror"][1] == {
        "location": "10.0.0.8:5010", "insecure": True}  # fmt: skip
    assert containers.add_mirrors(two, "docker.io", [containers.Mirror("10.0.0.7:5010")]) != two  # moved last
    assert containers.remove_mirrors(two, ["10.0.0.8:5010"]) == one
    assert containers.remove_mirrors(two, ["10.0.0.7:5010", "10.0.0.8:5010"]) == ()
    assert containers.parse('[[registry]]\nprefix = "docker.io"\n') is None  # not ours
    assert containers.dropin_name("dockerhub") == "50-regdeploy-dockerhub.conf"


# --- docker daemon.json ---------------------------------------------------------------------------------


def test_daemon_json_merge_keeps_other_keys_and_removes_only_ours() -> None:
    theirs = '{"log-driver": "journald", "registry-mirrors": ["https://mirror.corp"], "x": {"é": 1}}'
    data = dockerd.load(theirs)
    added = dockerd.add_mirrors(data, ["https://10.0.0.7:5010"])
    assert added == {"log-driver": "journald", "registry-mirrors": ["https://mirror.corp", "https://10.0.0.7:5010"],
                     "x": {"é": 1}}  # fmt: skip
    assert dockerd.add_mirrors(added, ["https://10.0.0.7:5010"]) == added
    text = dockerd.dump(added)
    assert text is not None and json.loads(text) == added and "é" in text
    assert dockerd.remove_mirrors(added, ["https://10.0.0.7:5010"]) == data
    only_ours = dockerd.add_mirrors(dockerd.load(None), ["https://10.0.0.7:5010"])
    assert dockerd.dump(dockerd.remove_mirrors(only_ours, ["https://10.0.0.7:5010"])) is None  # the file goes
    with pytest.raises(ValueError, match="not valid JSON"):
        dockerd.load("{")
    with pytest.raises(ValueError, match="not a JSON object"):
        dockerd.load("[]")


# --- k3s registries.yaml ---------------------------------------------------------------------------------

THEIRS = """configs:
  reg1:5000:
    auth:
      username: ci
      password: s3cret
mirrors:
  quay.io:
    endpoint:
    - https://quay-cache.corp
"""


def test_registries_yaml_merge_keeps_others_entries() -> None:
    data = k3s.load(THEIRS)
    ca = "/etc/rancher/k3s/regdeploy/reg1:5000/ca.crt"
    added = k3s.add_ca(data, "reg1:5000", ca)
    added = k3s.add_endpoint(added, "docker.io", ["https://reg1:5010"])
    assert added["configs"]["reg1:5000"] == {
        "auth": {"username": "ci", "password": "s3cret"},
        "tls": {"ca_file": ca},
    }
    assert added["mirrors"]["quay.io"] == {"endpoint": ["https://quay-cache.corp"]}
    assert added["mirrors"]["docker.io"] == {"endpoint": ["https://reg1:5010"]}
    assert yaml.safe_load(k3s.dump(added) or "") == added
    back = k3s.remove_endpoint(k3s.remove_ca(added, "reg1:5000", ca), "docker.io", ["https://reg1:5010"])
    assert back == data
    # Another ca_file is someone else's: left.
    theirs = k3s.add_ca(data, "reg1:5000", "/x.crt")
    assert k3s.remove_ca(theirs, "reg1:5000", ca) == theirs
    ours_only = k3s.add_ca({}, "reg1:5000", ca)
    assert k3s.dump(k3s.remove_ca(ours_only, "reg1:5000", ca)) is None


def test_registries_yaml_that_rewriting_would_damage_is_refused() -> None:
    with pytest.raises(ValueError, match="has comments"):
        k3s.load("# our registries\nconfigs: {}\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        k3s.load("configs: [\n")
    with pytest.raises(ValueError, match="not a mapping"):
        k3s.load("- a\n")
    with pytest.raises(ValueError, match="not a mapping"):
        k3s.load("configs: [a]\n")
    assert k3s.load(None) == {} and k3s.load("\n") == {}


# --- names ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("remoteurl", "name"), [
    ("https://registry-1.docker.io", "docker.io"),
    ("https://index.docker.io", "docker.io"),
    ("docker.io", "docker.io"),
    ("https://ghcr.io", "ghcr.io"),
    ("ghcr.io", "ghcr.io"),
    ("https://reg1.corp:5000", "reg1.corp:5000"),
    ("reg1:5000", "reg1:5000"),
    ("https://reg1", "reg1:443"),
    ("http://10.0.0.7", "10.0.0.7:80"),
])  # fmt: skip
def test_upstream_names_as_image_references_write_them(remoteurl: str, name: str) -> None:
    assert upstream_name(remoteurl) == name


def test_runtime_option() -> None:
    assert parse_runtimes(None) is None
    assert parse_runtimes("podman, docker,containerd") == ("docker", "containerd", "podman")
    with pytest.raises(
        InputError, match="unknown runtime 'rkt': choose from docker, containerd, podman, k3s"
    ):
        parse_runtimes("docker,rkt")
    with pytest.raises(InputError, match="no runtime named"):
        parse_runtimes(",")
