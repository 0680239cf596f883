"""`regdeploy inventory`: each registry value after the deep merge with the file that set it; secret
references as written, vaulted values as a placeholder; no host contacted."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from regdeploy.cli import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["inventory", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_names_the_file_behind_every_value() -> None:
    code, out, _ = run("-i", str(EXAMPLE), "--json")
    assert code == 0
    data = json.loads(out)
    us = data["hosts"]["reg-us"]
    assert us["registry"]["port"] == 5443 and us["registry"]["image"] == "registry:2"
    assert us["origins"]["registry.port"] == f"{EXAMPLE}/host_vars/reg-us.yml"
    assert us["origins"]["registry.tls.sans"] == f"{EXAMPLE}/host_vars/reg-us.yml"
    assert us["origins"]["registry.tls.mode"] == f"{EXAMPLE}/group_vars/registries.yml"
    assert us["registry"]["auth"]["users"][0]["password"] == {"env": "ALICE_PASSWORD"}  # never resolved
    assert us["connection"] == {"ansible_user": "deploy", "ansible_host": "10.0.0.12"}
    assert data["other_hosts"] == ["ci-runner"]


def test_text_is_one_line_per_value_with_its_file() -> None:
    code, out, _ = run("-i", str(EXAMPLE), "--limit", "reg-us")
    assert code == 0
    lines = [ln.split("#") for ln in out.splitlines() if ln.startswith("  ")]
    by_key = {text.strip(): origin.strip() for text, origin in lines}
    assert by_key["port: 5443"] == "host_vars/reg-us.yml"
    assert by_key['tls.sans: ["registry.us.example.com"]'] == "host_vars/reg-us.yml"
    assert by_key['name: "registry"'] == "group_vars/registries.yml"
    assert "reg-eu" not in out


def test_vaulted_values_and_skipped_files_are_shown_as_such(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    h:\n      registry:\n        port: 5001\n        http_secret: !vault |\n"
        "          $ANSIBLE_VAULT;1.1;AES256\n          6231\n"
    )
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n6231\n")
    code, out, err = run("-i", str(tmp_path / "hosts.yml"))
    assert code == 0
    assert 'http_secret: "<vault-encrypted>"' in out and "6231" not in out
    assert "all.yml: encrypted with ansible-vault, not read" in err


def test_bad_limit_is_bad_input() -> None:
    code, _, err = run("-i", str(EXAMPLE), "--limit", "nosuchhost")
    assert code == 2 and "nosuchhost" in err


def test_literal_secrets_are_masked_references_are_not(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    h:\n      registry:\n"
        "        http_secret: literal-http-secret-value\n"
        "        auth: {users: [{name: a, password: inline-password-value},\n"
        "                       {name: b, password: {env: B_PW}}]}\n"
        "        notifications:\n          endpoints:\n"
        "            - {name: ci, url: 'https://ci.example/hook?token=url-token-value',\n"
        "               headers: {Authorization: Bearer-header-token-value, X-Ref: {env: CI_TOKEN}}}\n"
    )
    for args in ([], ["--json"]):
        code, out, _ = run("-i", str(tmp_path / "hosts.yml"), *args)
        assert code == 0
        for secret in ("literal-http-secret-value", "inline-password-value", "url-token-value",
                       "Bearer-header-token-value"):  # fmt: skip
            assert secret not in out, (args, secret)
        assert "B_PW" in out and "CI_TOKEN" in out


def test_listing_vault_and_unsafe_tags_come_back_as_values(tmp_path: Path) -> None:
    # What `ansible-inventory --list --export` writes for !vault and !unsafe values.
    listing = {"_meta": {"hostvars": {"h": {"registry": {
        "http_secret": {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n6231336539\n"},
        "image": {"__ansible_unsafe": "registry:2"}}}}}, "ungrouped": {"hosts": ["h"]}}  # fmt: skip
    (tmp_path / "inventory.json").write_text(json.dumps(listing))
    code, out, _ = run("-i", str(tmp_path / "inventory.json"), "--json")
    assert code == 0
    registry = json.loads(out)["hosts"]["h"]["registry"]
    assert registry == {"http_secret": "<vault-encrypted>", "image": "registry:2"}
    assert "ANSIBLE_VAULT" not in out
