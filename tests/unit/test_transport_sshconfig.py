"""Where a host is reached: Ansible connection variables layered over ssh_config (pure)."""

from __future__ import annotations

import getpass
from pathlib import Path

import paramiko
import pytest

from regdeploy.errors import InputError, TransportError
from regdeploy.transport.factory import check_connection, connection_kind
from regdeploy.transport.hostvars import VAR_ACCEPT_NEW, VAR_CLI_TIMEOUT
from regdeploy.transport.sshconfig import DEFAULT_TIMEOUT, parse_jump, resolve_target

CONFIG = """
Host bastion
    HostName 10.0.0.1
    User jumper
    Port 2222
    IdentityFile ~/.ssh/bastion_key

Host reg-*
    User deployer
    ProxyJump bastion
    IdentityFile /keys/fleet
    ConnectTimeout 7

Host reg-eu
    HostName 10.1.0.5
    Port 2200

Host chained
    HostName 10.2.0.9
    ProxyJump alice@hop1:2022,hop2

Host hop1
    ProxyJump bastion

Host strictless
    StrictHostKeyChecking no

Host acceptnew
    StrictHostKeyChecking accept-new
    UserKnownHostsFile /tmp/regdeploy-kh /tmp/other

Host only
    IdentitiesOnly yes
    IdentityFile /keys/only
"""


@pytest.fixture
def config() -> paramiko.SSHConfig:
    return paramiko.SSHConfig.from_text(CONFIG)


def test_ssh_config_supplies_hostname_port_user_keys_and_jump(config: paramiko.SSHConfig) -> None:
    target = resolve_target("eu", {"ansible_host": "reg-eu"}, config)
    assert (target.hop.hostname, target.hop.port, target.hop.user) == ("10.1.0.5", 2200, "deployer")
    assert target.hop.key_files == ("/keys/fleet",)
    assert not target.hop.look_for_keys  # a named key: no guessing at ~/.ssh/id_*
    assert target.timeout == 7.0
    (jump,) = target.jumps
    assert (jump.hostname, jump.port, jump.user) == ("10.0.0.1", 2222, "jumper")
    assert jump.key_files[0].endswith("/.ssh/bastion_key") and "~" not in jump.key_files[0]


def test_inventory_variables_win_over_ssh_config(config: paramiko.SSHConfig, tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("x")
    target = resolve_target(
        "eu",
        {"ansible_host": "reg-eu", "ansible_port": "22", "ansible_user": "root",
         "ansible_ssh_private_key_file": str(key), "ansible_ssh_timeout": 3},
        config,
    )  # fmt: skip
    assert (target.hop.port, target.hop.user, target.timeout) == (22, "root", 3.0)
    assert target.hop.key_files == (str(key), "/keys/fleet")  # the inventory's key is offered first
    assert target.hop.known_hosts_name == "10.1.0.5"  # port 22: no [host]:port form


def test_defaults_without_ssh_config() -> None:
    target = resolve_target("web1", {}, paramiko.SSHConfig())
    assert (target.hop.hostname, target.hop.port, target.hop.user) == ("web1", 22, getpass.getuser())
    assert target.hop.allow_agent and target.hop.look_for_keys
    assert target.timeout == DEFAULT_TIMEOUT and not target.accept_new and not target.sudo
    assert target.known_hosts.endswith("/.ssh/known_hosts")
    assert target.docker_socket == "/var/run/docker.sock"


def test_cli_timeout_is_below_the_inventory_timeout() -> None:
    config = paramiko.SSHConfig()
    assert resolve_target("h", {VAR_CLI_TIMEOUT: 2.5}, config).timeout == 2.5
    assert resolve_target("h", {VAR_CLI_TIMEOUT: 2.5, "ansible_ssh_timeout": "4"}, config).timeout == 4.0


def test_proxyjump_chain_resolves_each_hop_recursively(config: paramiko.SSHConfig) -> None:
    target = resolve_target("c", {"ansible_host": "chained"}, config)
    assert [(h.alias, h.hostname, h.port, h.user) for h in target.jumps] == [
        ("bastion", "10.0.0.1", 2222, "jumper"),  # hop1's own ProxyJump comes first
        ("hop1", "hop1", 2022, "alice"),
        ("hop2", "hop2", 22, getpass.getuser()),
    ]
    assert target.hop.hostname == "10.2.0.9"


def test_proxyjump_loop_is_refused() -> None:
    config = paramiko.SSHConfig.from_text("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    with pytest.raises(InputError, match="ProxyJump chain longer"):
        resolve_target("a", {}, config)


def test_parse_jump_forms() -> None:
    assert parse_jump("u@h:2200,[fe80::1]:22,plain") == [
        ("h", "u", 2200),
        ("fe80::1", None, 22),
        ("plain", None, None),
    ]
    with pytest.raises(InputError, match="expected \\[user@\\]host\\[:port\\]"):
        parse_jump("u@h:port")


def test_host_key_checking_cannot_be_switched_off(config: paramiko.SSHConfig) -> None:
    with pytest.raises(InputError, match=r"StrictHostKeyChecking no .* always checks host keys"):
        resolve_target("s", {"ansible_host": "strictless"}, config)


def test_accept_new_from_ssh_config_or_cli(config: paramiko.SSHConfig) -> None:
    target = resolve_target("a", {"ansible_host": "acceptnew"}, config)
    assert target.accept_new and target.known_hosts == "/tmp/regdeploy-kh"
    assert resolve_target("b", {VAR_ACCEPT_NEW: True}, config).accept_new
    explicit = resolve_target("a", {"ansible_host": "acceptnew", "regdeploy_known_hosts": "/k"}, config)
    assert explicit.known_hosts == "/k"
    assert resolve_target("c", {"ansible_ssh_known_hosts_file": "/k2"}, config).known_hosts == "/k2"


def test_identities_only_turns_the_agent_off(config: paramiko.SSHConfig) -> None:
    hop = resolve_target("o", {"ansible_host": "only"}, config).hop
    assert hop.key_files == ("/keys/only",) and not hop.allow_agent and not hop.look_for_keys


def test_become(config: paramiko.SSHConfig) -> None:
    target = resolve_target("h", {"ansible_user": "deploy", "ansible_become": "yes"}, config)
    assert target.become and target.sudo and target.become_user == "root"
    assert not resolve_target("h", {"ansible_user": "root", "ansible_become": True}, config).sudo
    with pytest.raises(InputError, match="ansible_become_method 'su' is not supported"):
        resolve_target("h", {"ansible_become": True, "ansible_become_method": "su"}, config)
    with pytest.raises(InputError, match="ansible_become: expected true or false"):
        resolve_target("h", {"ansible_become": "maybe"}, config)


@pytest.mark.parametrize(
    ("host_vars", "message"),
    [
        ({"ansible_port": 0}, "ansible_port: 0 is out of range 1..65535"),
        ({"ansible_port": "ssh"}, "ansible_port: expected an integer"),
        ({"ansible_ssh_timeout": "soon"}, "ansible_ssh_timeout: expected seconds"),
        ({"regdeploy_docker_host": "tcp://10.0.0.1:2375"}, "only a unix:// socket"),
        ({"ansible_become_method": "su", "ansible_become": True}, "ansible_become_method 'su'"),
    ],
)
def test_bad_connection_variables_are_input_errors(host_vars: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_connection("web1", {"ansible_connection": "ssh", **host_vars})


def test_files_are_checked_when_connecting_not_before() -> None:
    # `certs generate` and friends never connect: they must not need the key on this machine.
    missing = {"ansible_ssh_private_key_file": "/nonexistent/key", "regdeploy_ssh_config": "/nonexistent/cfg"}
    check_connection("web1", missing)
    with pytest.raises(InputError, match="ssh config file /nonexistent/cfg does not exist"):
        resolve_target("web1", missing)
    with pytest.raises(TransportError, match=r"^web1: ansible_ssh_private_key_file /nonexistent/key"):
        resolve_target("web1", {"ansible_ssh_private_key_file": "/nonexistent/key"})


def test_connection_kind() -> None:
    assert connection_kind("localhost", {}) == "local"
    assert connection_kind("::1", {}) == "local"
    assert connection_kind("web1", {}) == "ssh"
    assert connection_kind("web1", {"ansible_connection": "paramiko"}) == "ssh"
    with pytest.raises(InputError, match="ansible_connection 'winrm' is not supported"):
        connection_kind("web1", {"ansible_connection": "winrm"})


def test_remote_docker_socket() -> None:
    target = resolve_target(
        "h", {"regdeploy_docker_host": "unix:///run/user/1000/docker.sock"}, paramiko.SSHConfig()
    )
    assert target.docker_socket == "/run/user/1000/docker.sock"
