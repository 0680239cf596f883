"""spec/cluster.py and spec/storage.py: clusters resolved over the whole inventory, their bad input
refused in one line before any host is touched; what config.yml, redis.conf and haproxy.cfg say."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from regdeploy.errors import InputError, SpecError
from regdeploy.ops.rollout import roll_out, waves
from regdeploy.ops.run import load_specs, prepare

S3 = {
    "bucket": "registry",
    "region": "us-east-1",
    "regionendpoint": "http://10.9.0.5:8333",
    "accesskey": {"env": "T_S3_ACCESS"},
    "secretkey": {"env": "T_S3_SECRET"},
    "rootdirectory": "/registry",
}


def inventory(**changes: Any) -> dict[str, Any]:
    registry: dict[str, Any] = {
        "cluster": "main",
        "storage": {"s3": dict(S3)},
        "cache": {"redis": {"deploy_on": "reg1"}},
    }
    data: dict[str, Any] = {
        "all": {
            "children": {
                "registries": {
                    "hosts": {f"reg{i}": {"ansible_host": f"10.9.0.1{i}"} for i in (1, 2, 3)},
                    "vars": {"registry": registry},
                },
                "registry_lbs": {
                    "hosts": {"lb1": {"ansible_host": "10.9.0.5"}},
                    "vars": {"registry_lb": {"cluster": "main", "port": 443}},
                },
            }
        }
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = data["all"]["children"]
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(autouse=True)
def s3_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_S3_ACCESS", "access-key-value")
    monkeypatch.setenv("T_S3_SECRET", "secret-key-value")


def specs(tmp_path: Path, data: dict[str, Any], limit: str | None = None) -> dict[str, Any]:
    _, entries = load_specs(write(tmp_path, data), limit)
    return {name: spec for name, _, spec in entries}


def test_a_cluster_resolves_members_balancer_sans_and_redis(tmp_path: Path) -> None:
    got = specs(tmp_path, inventory())
    view = got["reg2"].cluster_view
    assert [m.host for m in view.members] == ["reg1", "reg2", "reg3"]
    assert [(b.host, b.address, b.port) for b in view.balancers] == [("lb1", "10.9.0.5", 443)]
    assert {"reg1", "10.9.0.11", "lb1", "10.9.0.5"} <= set(view.sans)
    assert got["reg2"].cache.addr == "10.9.0.11:6379" and got["reg1"].redis_here
    lb = got["lb1"]
    assert not lb.serves and [b.address for b in lb.lb.backends] == ["10.9.0.11", "10.9.0.12", "10.9.0.13"]
    assert lb.port == 443 and lb.auth == got["reg1"].auth


def test_limit_still_sees_the_whole_cluster(tmp_path: Path) -> None:
    got = specs(tmp_path, inventory(), limit="lb1")
    assert list(got) == ["lb1"] and len(got["lb1"].lb.backends) == 3


BAD = [
    (
        {
            "registries__hosts__reg2": {
                "ansible_host": "10.9.0.12",
                "registry": {"storage": {"s3": {**S3, "bucket": "other"}}},
            }
        },
        "host 'reg2': registry.storage: differs from reg1's in cluster 'main'",
    ),
    (
        {"registries__hosts__reg3": {"ansible_host": "10.9.0.13", "registry": {"storage": {"s3": None}}}},
        "host 'reg3': registry.storage: differs from reg1's",
    ),
    ({"registries__vars__registry__storage__s3__bucket": None}, "registry.storage.s3.bucket: is required"),
    (
        {"registry_lbs__vars__registry_lb__cluster": "blue"},
        "registry_lb.cluster: names no cluster 'blue' (clusters: main)",
    ),
    (
        {"registries__vars__registry__cache__redis": {"deploy_on": "reg1", "addr": "10.0.0.6:6379"}},
        "registry.cache.redis: has both deploy_on",
    ),
    (
        {"registries__vars__registry__cache__redis": {"deploy_on": "lb1"}},
        "'lb1' is not a replica of cluster 'main'",
    ),
    ({"registries__vars__registry__storage": {}}, "3 replicas on filesystem storage"),
    ({"registries__vars__registry__storage__redirect": "yes"}, "registry.storage.redirect"),
    ({"registries__vars__registry__storage__s3__chunksize": 1024}, "registry.storage.s3.chunksize"),
    (
        {"registries__vars__registry__storage__s3__secretkey": "inline"},
        "registry.storage.s3.secretkey: write secrets as",
    ),
]


@pytest.mark.parametrize(("changes", "message"), BAD)
def test_bad_cluster_input_is_one_line_naming_the_key(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    data = copy.deepcopy(inventory())
    data = inventory(**changes) if changes else data
    with pytest.raises((SpecError, InputError)) as exc:
        specs(tmp_path, data)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_config_yml_for_2_8_and_3(tmp_path: Path) -> None:
    run = prepare(write(tmp_path, inventory()), None)
    jobs = {j.name: j for j in run.jobs}
    two = yaml.safe_load(next(f.data for f in jobs["reg2"].rendered.files if f.path.endswith("config.yml")))
    assert "filesystem" not in two["storage"] and two["storage"]["s3"]["bucket"] == "registry"
    assert (
        two["storage"]["s3"]["secretkey"] == "secret-key-value"
        and "forcepathstyle" not in two["storage"]["s3"]
    )
    assert two["storage"]["redirect"] == {"disable": True}
    assert two["storage"]["cache"] == {"blobdescriptor": "redis"}
    # The upload purger panics 2.8.2 on SeaweedFS: off on S3 (gc purges instead).
    assert two["storage"]["maintenance"]["uploadpurging"] == {"enabled": False}
    assert two["redis"]["addr"] == "10.9.0.11:6379" and two["redis"]["password"]
    one = yaml.safe_load(next(f.data for f in jobs["reg1"].rendered.files if f.path.endswith("config.yml")))
    assert one["redis"]["addr"] == "redis:6379"  # its own redis, by name on the private network
    data = inventory(registries__vars__registry__image="registry:3.0.0")
    run3 = prepare(write(tmp_path, data), "reg2")
    three = yaml.safe_load(next(f.data for f in run3.jobs[0].rendered.files if f.path.endswith("config.yml")))
    assert three["storage"]["s3"]["forcepathstyle"] is True
    assert three["redis"]["addrs"] == ["10.9.0.11:6379"] and "addr" not in three["redis"]


def test_replicas_without_redis_run_no_blob_cache(tmp_path: Path) -> None:
    run = prepare(write(tmp_path, inventory(registries__vars__registry__cache=None)), "reg2")
    config = yaml.safe_load(next(f.data for f in run.jobs[0].rendered.files if f.path.endswith("config.yml")))
    assert "cache" not in config["storage"] and "redis" not in config


def test_units_files_and_secrets_of_redis_and_the_balancer(tmp_path: Path) -> None:
    run = prepare(write(tmp_path, inventory()), None)
    jobs = {j.name: j for j in run.jobs}
    assert [u.role for u in jobs["reg1"].units] == ["redis", "registry"]
    assert [u.role for u in jobs["reg2"].units] == ["registry"]
    lb_units = jobs["lb1"].units
    assert [(u.role, u.published) for u in lb_units] == [("lb", [("0.0.0.0", 443)])]
    redis_conf = next(f for f in jobs["reg1"].rendered.files if f.path.endswith("redis.conf"))
    assert redis_conf.mode == 0o600 and redis_conf.secret
    (password,) = [
        line.split()[1].strip('"')
        for line in redis_conf.data.decode().splitlines()
        if line.startswith("requirepass")
    ]
    for host in ("reg1", "reg2"):  # the replicas authenticate with it; it is masked everywhere
        config = next(f for f in jobs[host].rendered.files if f.path.endswith("config.yml"))
        assert yaml.safe_load(config.data)["redis"]["password"] == password and config.secret
    assert password not in run.masker.mask(redis_conf.data.decode()) and len(password) >= 20
    haproxy = next(f for f in jobs["lb1"].rendered.files if f.path.endswith("haproxy.cfg")).data.decode()
    for i in (1, 2, 3):
        assert f"server reg{i} 10.9.0.1{i}:5000" in haproxy
    assert "check-ssl verify required ca-file" in haproxy and "option httpchk GET /" in haproxy
    assert [f.path for f in jobs["lb1"].rendered.files] == [
        "/etc/regdeploy-lb/lb/haproxy.cfg",
        "/etc/regdeploy-lb/lb/ca.crt",
    ]


def test_rolling_waves_redis_host_first_one_at_a_time_balancer_last(tmp_path: Path) -> None:
    run = prepare(write(tmp_path, inventory()), None)
    assert [[j.name for j in w] for w in waves(run.jobs)] == [["reg1"], ["reg2"], ["reg3"], ["lb1"]]
    # serial can never take every replica behind a balancer down at once
    assert [[j.name for j in w] for w in waves(run.jobs, serial=5)] == [["reg1", "reg2"], ["reg3"], ["lb1"]]


def test_a_failed_replica_stops_its_clusters_rollout(tmp_path: Path) -> None:
    from regdeploy.errors import HostError

    run = prepare(write(tmp_path, inventory()), None)
    slept: list[float] = []

    def up(job: Any) -> str:
        if job.name == "reg2":
            raise HostError("reg2: boom")
        return job.name

    results = roll_out(run.jobs, up, forks=4, sleep=slept.append)
    assert results["reg1"] == "reg1" and isinstance(results["reg2"], HostError)
    assert "not started: reg2 failed in the rolling update of cluster 'main'" in str(results["reg3"])
    assert "not started" in str(results["lb1"])
    assert slept == [2.5]  # after reg1 changed: the balancer's two checks of 1 s, and a margin


def test_gc_of_part_of_a_cluster_is_refused_before_any_host_is_touched(tmp_path: Path) -> None:
    from regdeploy.materials.secrets import Masker
    from regdeploy.ops.gc import gc_all

    run = prepare(write(tmp_path, inventory()), "reg1:reg2")
    with pytest.raises(InputError, match=r"gc of cluster 'main' needs every replica .*: add reg3"):
        gc_all(run.jobs, False, False, Masker(), lambda host, message: None, forks=2)


def test_redis_commands_are_resp_arrays() -> None:
    from regdeploy.storage.redis import command

    assert command("AUTH", "pässword") == b"*2\r\n$4\r\nAUTH\r\n$9\r\np\xc3\xa4ssword\r\n"


def test_a_diff_of_config_yml_never_shows_the_s3_keys(tmp_path: Path) -> None:
    from regdeploy.deploy.diffs import file_diff

    run = prepare(write(tmp_path, inventory()), "reg2")
    config = next(f for f in run.jobs[0].rendered.files if f.path.endswith("config.yml"))
    shown = file_diff(config, None)
    assert "secretkey" in shown and "secret-key-value" not in shown and "access-key-value" not in shown


def test_a_replica_on_the_control_machine_is_refused(tmp_path: Path) -> None:
    data = inventory(registries__hosts__reg1={"ansible_connection": "local"})
    with pytest.raises(
        SpecError, match=r"host 'reg1': registry.cluster: cluster 'main': reg1 is reached as localhost"
    ):
        specs(tmp_path, data)


def test_a_balancer_port_taken_by_redis_on_the_same_host_is_refused(tmp_path: Path) -> None:
    data = inventory(
        registries__hosts__reg1={
            "ansible_host": "10.9.0.11",
            "registry_lb": {"cluster": "main", "port": 6379},
        }
    )
    with pytest.raises(SpecError, match=r"registry_lb.port: 6379 is registry.cache.redis.port already"):
        specs(tmp_path, data)


def test_replicas_must_agree_on_readonly(tmp_path: Path) -> None:
    data = inventory(
        registries__hosts__reg3={"ansible_host": "10.9.0.13", "registry": {"storage": {"readonly": True}}}
    )
    with pytest.raises(SpecError, match=r"host 'reg3': registry.storage.readonly: differs from reg1's"):
        specs(tmp_path, data)


def test_a_host_balancing_one_cluster_and_replica_of_another_keeps_both_whatever_the_order(
    tmp_path: Path,
) -> None:
    for group in ("aa", "zz"):
        data = inventory()
        children = data["all"]["children"]
        other = {"cluster": "other", "port": 5005}
        children[group] = {
            "hosts": {
                "x1": {
                    "ansible_host": "10.9.0.20",
                    "registry": other,
                    "registry_lb": {"cluster": "main", "port": 8443},
                }
            }
        }
        got = specs(tmp_path, data)
        assert len(got["x1"].lb.backends) == 3, group
        assert got["x1"].cluster_view.name == "other", group


def test_a_balancer_on_a_registry_of_its_own_runs_after_the_replicas(tmp_path: Path) -> None:
    data = inventory()
    solo = {"ansible_host": "10.9.0.30", "registry": {}, "registry_lb": {"cluster": "main", "port": 8443}}
    data["all"]["children"]["solo"] = {"hosts": {"solo1": solo}}
    run = prepare(write(tmp_path, data), None)
    assert [[j.name for j in w] for w in waves(run.jobs)] == [["reg1"], ["reg2"], ["reg3"], ["solo1", "lb1"]]


def test_bad_cluster_input_exits_2_with_one_line_from_the_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from regdeploy.cli import cli

    for changes in (
        {"registry_lbs__vars__registry_lb__cluster": "blue"},
        {"registries__vars__registry__storage__s3__bucket": None},
    ):
        path = write(tmp_path, inventory(**changes))
        result = CliRunner().invoke(cli, ["up", "-i", str(path)])
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / ".regdeploy" / "secrets").exists()  # nothing generated, nothing touched


def test_the_balancers_pause_comes_only_before_a_replica(tmp_path: Path) -> None:
    run = prepare(write(tmp_path, inventory()), None)
    slept: list[float] = []
    results = roll_out(run.jobs, lambda job: job.name, forks=4, sleep=slept.append)
    assert list(results) == ["reg1", "reg2", "reg3", "lb1"]
    assert slept == [2.5, 2.5]  # before reg2 and reg3; none before the balancer-only host
