"""regdeploy and Ansible read the same inventories the same way, checked against the real
`ansible-inventory` (ansible-core from the test extra):

- regdeploy's own inventories (inventories/example, the built-in local one, molecule's) are plain
  Ansible inventories: `ansible-inventory --list` takes them unchanged, without a warning;
- an inventory written for Ansible (tests/integration/data/ansible-written: INI ranges, :children,
  :vars, typed inline vars, vars directories, JSON, templated variables) gives regdeploy the same
  hosts, groups and variables, and regdeploy deploys from it;
- Vault: an `ansible-vault`-encrypted vars file and an `encrypt_string` value, made by the real
  ansible-vault, load (the values regdeploy does not use are left alone) and are refused where used.

Variables are compared exactly. The one documented difference is `registry:`, which regdeploy
deep-merges across layers: it equals what Ansible gives with hash_behaviour=merge.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansibletools import REPO, output, run_tool
from click.testing import CliRunner

from regdeploy.cli import cli
from regdeploy.errors import InventoryError, SpecError
from regdeploy.inventory import load_inventory
from regdeploy.ops.run import prepare

pytestmark = pytest.mark.integration

WRITTEN_FOR_ANSIBLE = Path(__file__).parent / "data" / "ansible-written"
UNIT_DATA = REPO / "tests" / "unit" / "data" / "inventory"


def ansible_inventory(source: Path, tmp: Path, merge: bool = False, *extra: str) -> dict[str, Any]:
    """`ansible-inventory -i SOURCE --list` as data; fails on any warning Ansible prints."""
    out = tmp / f"ansible-{'merge' if merge else 'replace'}.json"
    env = {"ANSIBLE_HASH_BEHAVIOUR": "merge" if merge else "replace"}
    argv = ["ansible-inventory", "-i", str(source), "--list", "--output", str(out), *extra]
    result = run_tool(argv, tmp, env=env)
    assert result.returncode == 0, output(result)
    assert "WARNING" not in result.stdout and "ERROR" not in result.stdout, output(result)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def ansible_members(listing: dict[str, Any]) -> dict[str, set[str]]:
    """Group -> every host in it or in its children, from `--list` output."""

    def hosts(group: str) -> set[str]:
        entry = listing.get(group, {})
        found = set(entry.get("hosts", []))
        for child in entry.get("children", []):
            found |= hosts(child)
        return found

    groups = {g for g in listing if g != "_meta"}
    groups |= {child for entry in listing.values() for child in entry.get("children", [])}
    return {group: hosts(group) for group in groups}


def assert_same_view(source: Path, tmp: Path) -> None:
    replace, merge = ansible_inventory(source, tmp), ansible_inventory(source, tmp, merge=True)
    ours = load_inventory(source)
    theirs = replace["_meta"]["hostvars"]
    assert sorted(ours.hosts) == sorted(set(theirs) | ansible_members(replace)["all"])
    for group, members in ansible_members(replace).items():
        if members or group != "ungrouped":
            assert set(ours.groups.get(group, ())) == members, group
    for name, host in ours.hosts.items():
        expected = dict(theirs.get(name, {}))
        if "registry" in expected:
            expected["registry"] = merge["_meta"]["hostvars"][name]["registry"]
        assert dict(host.vars) == expected, name


@pytest.mark.parametrize(
    "source",
    [
        REPO / "inventories" / "example",
        REPO / "inventories" / "local" / "hosts.yml",
        REPO / "molecule" / "default" / "inventory" / "hosts.yml",
        WRITTEN_FOR_ANSIBLE,
        WRITTEN_FOR_ANSIBLE / "hosts",
        *sorted(p for p in UNIT_DATA.glob("*/hosts*") if p.is_file()),
    ],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_ansible_and_regdeploy_read_the_same_inventory(source: Path, tmp_path: Path) -> None:
    assert_same_view(source, tmp_path)


INVENTORY_SCRIPT = """#!/usr/bin/env python3
# A dynamic inventory, as a cloud API would answer it: hosts, groups, some variables.
import json
print(json.dumps({
    "_meta": {"hostvars": {"reg-a": {"ansible_host": "10.3.0.1"}, "reg-b": {"ansible_host": "10.3.0.2",
              "registry": {"port": 5443}}}},
    "registries": {"hosts": ["reg-a", "reg-b"], "vars": {"ansible_user": "cloud"}},
    "tag_env_prod": {"hosts": ["reg-a", "reg-b"]},
}))
"""


def test_a_dynamic_inventory_reaches_regdeploy_exported(tmp_path: Path) -> None:
    """regdeploy runs no inventory scripts or plugins: it refuses one with the recipe, and reads
    what `ansible-inventory --list --export` makes of it (group_vars/ beside the script included),
    exactly as Ansible sees the script itself (with hash_behaviour=merge, regdeploy's merge)."""
    site = tmp_path / "site"
    (site / "group_vars" / "registries").mkdir(parents=True)
    script = site / "cloud.py"
    script.write_text(INVENTORY_SCRIPT)
    script.chmod(0o755)
    (site / "group_vars" / "registries" / "main.yml").write_text(
        "registry:\n  image: registry:2\n  tls: {mode: selfsigned}\n"
    )
    (site / "group_vars" / "registries" / "auth.yml").write_text("registry:\n  auth: {users: [{name: ci}]}\n")
    with pytest.raises(InventoryError) as exc:
        load_inventory(script)
    assert str(exc.value) == (
        f"{script}: an inventory script: regdeploy runs no inventory scripts; export its hosts with: "
        f"ansible-inventory -i {script} --list --export > inventory.json"
    )
    exported = tmp_path / "inventory.json"
    argv = ["ansible-inventory", "-i", str(script), "--list", "--export", "--output", str(exported)]
    result = run_tool(argv, tmp_path, env={"ANSIBLE_HASH_BEHAVIOUR": "merge"})
    assert result.returncode == 0, output(result)
    ours = load_inventory(exported)
    theirs = ansible_inventory(script, tmp_path, merge=True)["_meta"]["hostvars"]
    assert sorted(ours.hosts) == sorted(theirs) == ["reg-a", "reg-b"]
    for name, host in ours.hosts.items():
        assert dict(host.vars) == theirs[name], name
    merged = {"image": "registry:2", "tls": {"mode": "selfsigned"}, "auth": {"users": [{"name": "ci"}]}}
    assert ours.hosts["reg-b"].vars["registry"] == {**merged, "port": 5443}
    assert set(ours.groups["tag_env_prod"]) == {"reg-a", "reg-b"}


def test_inventory_written_for_ansible_validates_and_deploys(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unique_name: str,
    free_port: Callable[[], int],
    registry_image: str,
    docker_client: Any,
) -> None:
    monkeypatch.setenv("ALICE_PASSWORD", "alice-password-1234")
    inventory = tmp_path / "site"
    shutil.copytree(WRITTEN_FOR_ANSIBLE, inventory)
    # Every registry host's settings validate (no host is contacted), SSH ones included.
    run = prepare(inventory, None)
    assert sorted(job.name for job in run.jobs) == [
        "localhost", "reg-eu-01.example.com", "reg-eu-02.example.com", "reg-us-a", "reg-us-b"
    ]  # fmt: skip
    specs = {job.name: job.spec for job in run.jobs}
    assert specs["reg-us-a"].port == 5443 and specs["reg-eu-01.example.com"].data_dir == "/srv/registry"
    assert [u.name for u in specs["reg-eu-02.example.com"].auth.users] == ["ci", "alice"]
    # The us group's bastion, named the Ansible way (ansible_ssh_common_args), is where regdeploy goes too.
    import paramiko

    from regdeploy.transport.sshconfig import resolve_target

    us = next(job for job in run.jobs if job.name == "reg-us-a")
    target = resolve_target(us.name, us.vars, paramiko.SSHConfig(), check_files=False)
    assert [str(hop) for hop in target.jumps] == ["jump@bastion.us.example.com:22"]
    assert (target.hop.hostname, target.hop.user, target.become) == ("10.1.0.5", "ops", True)

    # The local one, deployed for real: the test's own name, port and directories.
    port = free_port()
    (inventory / "group_vars" / "local.yml").write_text(yaml.safe_dump({"registry": {
        "name": unique_name, "image": registry_image, "port": port, "bind": "127.0.0.1",
        "config_dir": str(tmp_path / "config"), "data_dir": str(tmp_path / "data"),
        "auth": {"users": [{"name": "ci"}], "bcrypt_cost": 5},
    }}))  # fmt: skip
    runner = CliRunner()
    try:
        result = runner.invoke(cli, ["up", "-i", str(inventory), "--limit", "local", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["hosts"]["localhost"]["changed"] is True
        again = runner.invoke(cli, ["up", "-i", str(inventory), "--limit", "local", "--json"])
        assert json.loads(again.stdout)["changed"] is False, again.output
        assert docker_client.containers.get(unique_name).attrs["State"]["Running"]
    finally:
        runner.invoke(cli, ["down", "-i", str(inventory), "--limit", "local", "--purge-data", "--yes"])


def test_vault_encrypted_by_ansible_vault_loads_and_is_refused_where_used(tmp_path: Path) -> None:
    """Real ciphertext from ansible-vault: Ansible (with the password) and regdeploy (without) agree
    on every variable but the vaulted ones, which regdeploy keeps as placeholders."""
    password_file = tmp_path / "vault-pass"
    password_file.write_text("correct horse battery staple\n")
    inventory = tmp_path / "site"
    shutil.copytree(WRITTEN_FOR_ANSIBLE, inventory)
    vault_yml = inventory / "group_vars" / "registries" / "vault.yml"
    vault_yml.write_text("vault_db_password: s3cret-db\n")
    vault = ["ansible-vault", "encrypt", "--vault-password-file", str(password_file), str(vault_yml)]
    result = run_tool(vault, tmp_path)
    assert result.returncode == 0 and vault_yml.read_text().startswith("$ANSIBLE_VAULT;"), output(result)
    result = run_tool(
        ["ansible-vault", "encrypt_string", "--vault-password-file", str(password_file),
         "--name", "smtp_password", "mail-s3cret"], tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, output(result)
    encrypted = result.stdout[result.stdout.index("smtp_password:") :]
    (inventory / "group_vars" / "clients.yml").write_text(encrypted)

    theirs = ansible_inventory(inventory, tmp_path, False, "--vault-password-file", str(password_file))
    ours = load_inventory(inventory)
    assert theirs["_meta"]["hostvars"]["reg-us-a"]["vault_db_password"] == "s3cret-db"
    assert "vault_db_password" not in ours.hosts["reg-us-a"].vars  # the encrypted file was not read
    note = f"{vault_yml}: encrypted with ansible-vault, not read (regdeploy does not decrypt Vault)"
    assert ours.warnings == (note,)
    ci = ours.hosts["ci.example.com"].vars
    assert str(ci["smtp_password"]) == "<vault-encrypted>"
    assert "mail-s3cret" not in repr(ci)
    vaulted = ("vault_db_password", "smtp_password", "registry")
    for name, host in ours.hosts.items():
        expected = {k: v for k, v in theirs["_meta"]["hostvars"][name].items() if k not in vaulted}
        assert {k: v for k, v in host.vars.items() if k not in vaulted} == expected, name

    # Used where regdeploy needs it, a vaulted value is refused with its key and line.
    (inventory / "group_vars" / "local.yml").write_text(
        "registry:\n  auth:\n    users:\n      - name: ops\n        password: "
        + encrypted.split(":", 1)[1].replace("\n", "\n    ")
    )
    with pytest.raises(SpecError) as exc:
        prepare(inventory, "local")
    assert "registry.auth.users[0].password: is Ansible Vault-encrypted" in str(exc.value)
    assert "mail-s3cret" not in str(exc.value) and "$ANSIBLE_VAULT" not in str(exc.value)
