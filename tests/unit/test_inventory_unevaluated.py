"""Inventories written for Ansible hold values Ansible evaluates and regdeploy does not: `!vault`
values, vault-encrypted vars files and Jinja templates. They load; only those regdeploy would use
are refused, naming the key (a password of "{{ vault_pw }}" must never reach a registry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from regdeploy.errors import InputError, InventoryError, SpecError
from regdeploy.inventory import load_inventory, unevaluated
from regdeploy.inventory.unevaluated import Unsafe, Vaulted
from regdeploy.ops.run import load_specs
from regdeploy.spec.registry import parse_spec
from regdeploy.transport.factory import check_connection


def vault_value(indent: int) -> str:
    """A `!vault |` block scalar whose lines sit *indent* spaces in."""
    pad = " " * indent
    return f"!vault |\n{pad}$ANSIBLE_VAULT;1.1;AES256\n{pad}62313365396662343061393464336163\n"


VAULT_FILE = "$ANSIBLE_VAULT;1.1;AES256\n6231336539666234306139346433616338376437376461363365363430623138\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_vault_values_load_as_placeholders_where_regdeploy_does_not_look(tmp_path: Path) -> None:
    text = f"all:\n  vars:\n    db_password: {vault_value(6)}  hosts: {{h: }}\n"
    hosts = write(tmp_path / "hosts.yml", text)
    value = load_inventory(hosts).hosts["h"].vars["db_password"]
    assert value == Vaulted(str(hosts), 3)
    assert str(value) == "<vault-encrypted>" and "ANSIBLE_VAULT" not in repr(value)


def test_vault_value_under_registry_is_refused_naming_key_and_line(tmp_path: Path) -> None:
    hosts = write(
        tmp_path / "hosts.yml",
        "all:\n  hosts:\n    h:\n      registry:\n        auth:\n          users:\n"
        f"            - name: alice\n              password: {vault_value(16)}",
    )
    host = load_inventory(hosts).hosts["h"]
    with pytest.raises(SpecError) as exc:
        parse_spec("h", host.vars["registry"], host.origins, str(hosts))
    assert str(exc.value) == (
        f"{hosts}: host 'h': registry.auth.users[0].password: is Ansible Vault-encrypted ({hosts}:8): "
        "regdeploy does not decrypt Vault; write the value itself, or reference a secret with "
        "{env: NAME} or {file: PATH}"
    )


def test_jinja_under_registry_is_refused_and_unsafe_braces_are_literal(tmp_path: Path) -> None:
    templated = {"auth": {"users": [{"name": "alice", "password": "{{ vault_alice_password }}"}]}}
    with pytest.raises(SpecError) as exc:
        parse_spec("h", templated, {"registry.auth": "group_vars/all.yml"}, "hosts.yml")
    assert str(exc.value).startswith(
        "group_vars/all.yml: host 'h': registry.auth.users[0].password: is a Jinja template, "
        "which Ansible renders and regdeploy does not;"
    )
    hosts = write(
        tmp_path / "hosts.yml",
        "all:\n  hosts:\n    h:\n      registry:\n        auth:\n          users:\n"
        "            - name: alice\n              password: !unsafe 'p{{w}}rd-{% raw %}-long-enough'\n",
    )
    raw = load_inventory(hosts).hosts["h"].vars["registry"]
    password = raw["auth"]["users"][0]["password"]
    assert isinstance(password, Unsafe) and password == "p{{w}}rd-{% raw %}-long-enough"
    assert list(unevaluated.find(raw, "registry")) == []  # literal braces: no template
    with pytest.raises(SpecError, match=r"password: write secrets as \{env: VARIABLE\}"):
        parse_spec("h", raw)  # refused as any inline password is, not as a template


def test_templated_connection_variable_is_refused_others_are_not_read() -> None:
    with pytest.raises(InputError) as exc:
        check_connection("h", {"ansible_host": "{{ lookup('env', 'HOST') }}"})
    assert str(exc.value).startswith("host 'h': ansible_host is a Jinja template")
    with pytest.raises(InputError, match="ansible_become is Ansible Vault-encrypted"):
        check_connection("h", {"ansible_host": "192.0.2.1", "ansible_become": Vaulted("x.yml", 2)})
    # Variables regdeploy never reads may be templated: Ansible's business.
    interpreter = "{{ ansible_playbook_python }}"
    check_connection("h", {"ansible_connection": "local", "ansible_python_interpreter": interpreter})


def test_vault_encrypted_vars_file_is_skipped_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = write(tmp_path / "hosts.yml", "all:\n  hosts:\n    h:\n      ansible_connection: local\n")
    write(tmp_path / "group_vars" / "all" / "vars.yml", "registry: {port: 5001}\n")
    vault = write(tmp_path / "group_vars" / "all" / "vault.yml", VAULT_FILE)
    inventory = load_inventory(hosts)
    assert inventory.hosts["h"].vars["registry"] == {"port": 5001}
    note = f"{vault}: encrypted with ansible-vault, not read (regdeploy does not decrypt Vault)"
    assert inventory.warnings == (note,)
    _, specs = load_specs(hosts, None)
    assert specs[0][2].port == 5001
    captured = capsys.readouterr()
    assert captured.err == f"warning: {note}\n" and captured.out == ""


def test_vault_encrypted_inventory_file_is_an_error(tmp_path: Path) -> None:
    hosts = write(tmp_path / "hosts.yml", VAULT_FILE)
    with pytest.raises(InventoryError) as exc:
        load_inventory(hosts)
    assert str(exc.value) == f"{hosts}: encrypted with ansible-vault: regdeploy does not decrypt Vault"
