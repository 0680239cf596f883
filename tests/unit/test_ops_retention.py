"""`regdeploy retention` per host, against an in-memory registry: dry run, deletes, refusals, output."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from fake_registry import FakeRegistry

from regdeploy.cli import cli
from regdeploy.cli.retention import print_retention
from regdeploy.materials.host import HostMaterials
from regdeploy.ops.retention import retention_host, summary
from regdeploy.ops.run import HostJob
from regdeploy.spec.registry import parse_spec

NOW = datetime(2026, 3, 1, tzinfo=UTC)
RULES = [{"repositories": "team/*", "keep_last": 3, "keep_tags": ["latest"]}]


def job(rules: list[dict[str, Any]] | None = None, name: str = "reg1", **registry: Any) -> HostJob:
    spec = parse_spec(name, {"retention": RULES if rules is None else rules, **registry})
    materials = HostMaterials(http_secret="s", users=(), passwords={}, endpoints=(), tls=None)
    return HostJob(name, {}, spec, materials)


def registry() -> FakeRegistry:
    reg = FakeRegistry()
    reg.image("team/app", "latest", {"created": "2026-01-01T00:00:00Z"})
    for i in range(1, 12):
        reg.image("team/app", f"v{i:02d}", {"created": f"2026-01-01T00:00:{i:02d}Z"})
    reg.image("other/tool", "v1", {"created": "2020-01-01T00:00:00Z"})
    return reg


def tags_of(reg: FakeRegistry, repo: str = "team/app") -> set[str]:
    return set(reg.tags[repo])


def test_dry_run_lists_and_deletes_nothing() -> None:
    reg = registry()
    out = retention_host(job(), dry_run=True, now=NOW, api=reg)
    assert out["ok"] and not out["changed"] and out["error"] is None
    app = out["repositories"]["team/app"]
    assert [d["tag"] for d in app["deleted"]] == [f"v{i:02d}" for i in range(8, 0, -1)]
    assert [k["tag"] for k in app["kept"]] == ["v11", "v10", "v09", "latest"]
    assert all(d["digest"].startswith("sha256:") and d["reason"] for d in app["deleted"])
    assert out["unmatched"] == 1 and "other/tool" not in out["repositories"]
    assert len(tags_of(reg)) == 12
    assert not any(m == "DELETE" for m, _ in reg.requests)


def test_apply_deletes_exactly_the_dry_run_list_then_nothing() -> None:
    reg = registry()
    listed = retention_host(job(), dry_run=True, now=NOW, api=reg)["repositories"]["team/app"]["deleted"]
    out = retention_host(job(), dry_run=False, now=NOW, api=reg)
    assert out["ok"] and out["changed"]
    assert out["repositories"]["team/app"]["deleted"] == listed
    assert tags_of(reg) == {"latest", "v09", "v10", "v11"}
    assert tags_of(reg, "other/tool") == {"v1"}
    again = retention_host(job(), dry_run=False, now=NOW, api=reg)
    assert again["ok"] and not again["changed"]
    assert again["repositories"]["team/app"]["deleted"] == []


def test_a_registry_that_refuses_deletes_fails_the_host_naming_the_key() -> None:
    reg = registry()
    reg.delete_status = 405
    out = retention_host(job(), dry_run=False, now=NOW, api=reg)
    assert not out["ok"] and not out["changed"]
    assert out["error"].startswith("reg1: the registry refuses deletes (it answered DELETE with 405): ")
    assert "registry.storage.delete: true" in out["error"]
    assert len(tags_of(reg)) == 12


def test_storage_delete_false_fails_before_any_request() -> None:
    reg = registry()
    out = retention_host(job(storage={"delete": False}), dry_run=False, now=NOW, api=reg)
    assert not out["ok"] and "registry.storage.delete is false" in out["error"]
    assert reg.requests == []
    assert retention_host(job(storage={"delete": False}), dry_run=True, now=NOW, api=reg)["ok"]


def test_a_failure_keeps_what_was_done_and_names_the_repository() -> None:
    reg = registry()
    reg.image("team/zed", "v1", {"created": "2026-01-01T00:00:00Z"})
    reg.fail["GET", "/v2/team/zed/tags/list?n=1000"] = 500
    out = retention_host(job(), dry_run=False, now=NOW, api=reg)
    assert not out["ok"] and out["changed"]
    assert out["error"] == "reg1: team/zed: GET /v2/team/zed/tags/list?n=1000 answered 500: no"
    assert len(out["repositories"]["team/app"]["deleted"]) == 8
    assert "pending" not in out["repositories"]["team/app"]  # done: nothing left over


def test_a_failure_mid_repository_lists_what_is_left() -> None:
    reg = registry()
    second = reg.tags["team/app"]["v07"]
    reg.fail["DELETE", f"/v2/team/app/manifests/{second}"] = 500
    out = retention_host(job(), dry_run=False, now=NOW, api=reg)
    app = out["repositories"]["team/app"]
    assert [d["tag"] for d in app["deleted"]] == ["v08"]
    assert [d["tag"] for d in app["pending"]] == ["v07", "v06", "v05", "v04", "v03", "v02", "v01"]
    assert out["error"].startswith(f"reg1: team/app: DELETE /v2/team/app/manifests/{second} answered 500")


def test_a_host_without_rules_has_nothing_to_do() -> None:
    reg = registry()
    out = retention_host(job([]), dry_run=False, now=NOW, api=reg)
    assert out["ok"] and not out["changed"] and out["note"] == "no registry.retention rules"
    assert reg.requests == []


def test_text_output(capsys: Any) -> None:
    reg = registry()
    hosts = {"reg1": {**retention_host(job(), dry_run=True, now=NOW, api=reg)}}
    print_retention(summary(hosts, dry_run=True))
    text = capsys.readouterr().out
    assert text.startswith("reg1: would delete 8 tags in 1 repository\n  team/app\n")
    assert "    - v08 " in text and "not among the 3 newest (#4, created 2026-01-01T00:00:08Z)" in text
    assert "    = latest               matches keep_tags 'latest'" in text
    assert "  1 other repository: no rule matches, untouched" in text
    assert text.endswith("dry run: nothing was deleted\n")


def test_text_output_of_a_failed_host(capsys: Any) -> None:
    reg = registry()
    reg.delete_status = 405
    failed = retention_host(job(), dry_run=False, now=NOW, api=reg)
    assert [d["tag"] for d in failed["repositories"]["team/app"]["pending"]][:2] == ["v08", "v07"]
    assert failed["repositories"]["team/app"]["deleted"] == []
    refused = retention_host(job(name="reg2", storage={"delete": False}), dry_run=False, now=NOW, api=reg)
    idle = retention_host(job([], "reg3"), False, NOW)
    print_retention(summary({"reg1": failed, "reg2": refused, "reg3": idle}, False))
    out = capsys.readouterr().out.splitlines()
    v08 = reg.tags["team/app"]["v08"]
    assert out[:3] == ["reg1: deleted 0 tags in 1 repository", "  team/app",
                       f"    ! v08                  {v08}  not deleted: the host failed"]
    assert out[-3:] == [
        "reg1: FAILED: the registry refuses deletes (it answered DELETE with 405): set "
        "registry.storage.delete: true, run `regdeploy up`, then retention again",
        "reg2: FAILED: the registry refuses deletes (registry.storage.delete is false): set "
        "registry.storage.delete: true, run `regdeploy up`, then retention again",
        "reg3: no registry.retention rules: nothing to do",
    ]  # fmt: skip


def test_json_shape() -> None:
    reg = registry()
    payload = summary({"reg1": retention_host(job(), dry_run=False, now=NOW, api=reg)}, dry_run=False)
    assert (payload["ok"], payload["changed"], payload["dry_run"]) == (True, True, False)
    host = payload["hosts"]["reg1"]
    assert set(host) >= {"ok", "changed", "repositories", "error"}
    assert set(host["repositories"]["team/app"]["deleted"][0]) == {"tag", "digest", "reason"}
    assert set(host["repositories"]["team/app"]["kept"][0]) == {"tag", "reason"}
    json.dumps(payload)


def inventory(tmp_path: Path, registry: dict[str, Any]) -> Path:
    path = tmp_path / "hosts.yml"
    plain = {"tls": {"mode": "none", "insecure": True}}
    host = {"ansible_connection": "local", "registry": {**plain, **registry}}
    path.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host}}}))
    return path


def test_cli_bad_rules_are_bad_input(tmp_path: Path) -> None:
    for rules, message in (
        ([{"repositories": "team/*"}], "registry.retention[0]: has no keep rule"),
        ([{"repositories": "team/*", "keep_last": 0}], "registry.retention[0].keep_last: 0 would delete"),
        ([{"repositories": "team/*", "keep_last": 1, "older_than": "30x"}], "invalid duration '30x'"),
    ):
        path = inventory(tmp_path, {"retention": rules})
        result = CliRunner().invoke(cli, ["retention", "-i", str(path)])
        assert result.exit_code == 2, result.output
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / ".regdeploy").exists()  # nothing was written, not even the state


def test_cli_without_any_rule_is_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["retention", "--dry-run", "-i", str(inventory(tmp_path, {}))])
    assert result.exit_code == 2
    assert "no host has registry.retention rules: nothing to do" in result.stderr
    assert not (tmp_path / ".regdeploy").exists()
