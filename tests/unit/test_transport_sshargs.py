"""ansible_ssh_common_args / ansible_ssh_extra_args: what Ansible passes to ssh, read the way OpenSSH
reads its command line and layered between the inventory's ansible_* variables and ssh_config."""

from __future__ import annotations

import paramiko
import pytest

from regdeploy.errors import InputError
from regdeploy.transport.sshargs import ssh_args_options
from regdeploy.transport.sshconfig import resolve_target

CONFIG = paramiko.SSHConfig.from_text(
    "Host bastion\n  HostName 10.0.0.1\n  User jumper\n"
    "Host reg\n  HostName 10.1.0.5\n  Port 2200\n  User fromconfig\n  IdentityFile /keys/config\n"
)


def target(args: str, **host_vars: object):  # type: ignore[no-untyped-def]
    return resolve_target("r1", {"ansible_host": "reg", "ansible_ssh_common_args": args, **host_vars}, CONFIG)


def test_proxyjump_in_every_spelling() -> None:
    for args in ("-o ProxyJump=bastion", "-oProxyJump=bastion", "-o 'ProxyJump bastion'", "-J bastion",
                 "-Jbastion"):  # fmt: skip
        (jump,) = target(args).jumps
        assert (jump.hostname, jump.user) == ("10.0.0.1", "jumper"), args


def test_args_win_over_ssh_config_and_lose_to_ansible_variables() -> None:
    t = target("-o Port=2300 -o User=fromargs -i /keys/args -o ConnectTimeout=4 -o IdentitiesOnly=yes")
    assert (t.hop.hostname, t.hop.port, t.hop.user, t.timeout) == ("10.1.0.5", 2300, "fromargs", 4.0)
    assert t.hop.key_files == ("/keys/args", "/keys/config") and not t.hop.allow_agent
    t = target("-p 2300 -l fromargs", ansible_port=2400, ansible_user="fromvars")
    assert (t.hop.port, t.hop.user) == (2400, "fromvars")
    # OpenSSH keeps the first value: common args before extra args, and the first -o of a kind.
    t = target("-o Port=2301 -o Port=2302", ansible_ssh_extra_args="-p 2303")
    assert t.hop.port == 2301


def test_openssh_tuning_is_ignored() -> None:
    args = ("-q -C -o ControlMaster=auto -o ControlPersist=60s -o ServerAliveInterval=30 "
            "-o LogLevel=ERROR -o ForwardAgent=yes")  # fmt: skip
    assert target(args).hop.port == 2200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("-o StrictHostKeyChecking=no", "its ssh args set StrictHostKeyChecking no for reg; regdeploy"),
        ("-o UserKnownHostsFile=/dev/null", "known_hosts file /dev/null: regdeploy checks host keys"),
        ("-o ProxyCommand='ssh -W %h:%p bastion'", "-o proxycommand is not supported by regdeploy's SSH"),
        ("-D 1080", "'-D' is not supported by regdeploy's SSH client"),
        ("-o", "-o needs a value"),
        ("-o Port", "-o 'Port': expected Key=Value"),
        ("-o 'ProxyJump=bastion", "ansible_ssh_common_args: cannot split"),
    ],
)
def test_what_cannot_be_honoured_is_an_error(args: str, message: str) -> None:
    with pytest.raises(InputError) as exc:
        target(args)
    assert message in str(exc.value) and str(exc.value).startswith("host 'r1': ")


def test_accept_new_and_known_hosts_from_args() -> None:
    t = target("-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/tmp/kh")
    assert t.accept_new and t.known_hosts == "/tmp/kh"


def test_config_file_from_args(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "cfg"
    config.write_text("Host reg\n  HostName 10.9.9.9\n")
    t = resolve_target("r1", {"ansible_host": "reg", "ansible_ssh_common_args": f"-F {config}"})
    assert t.hop.hostname == "10.9.9.9"
    assert ssh_args_options("r1", {"ansible_ssh_extra_args": f"-F{config}"})[1] == str(config)


def test_accept_new_from_the_hosts_own_settings_does_not_extend_to_jump_hosts() -> None:
    # OpenSSH passes no -o option to the ssh that reaches a ProxyJump host.
    t = target("-J bastion -o StrictHostKeyChecking=accept-new")
    assert t.accept_new and not t.accept_new_jumps
    t = target("-J bastion", regdeploy_accept_new_host_keys=True)  # the command-line flag: every hop
    assert t.accept_new and t.accept_new_jumps
    with pytest.raises(InputError, match="StrictHostKeyChecking false"):
        target("-o StrictHostKeyChecking=false")


def test_command_line_forms() -> None:
    opts, config = ssh_args_options("r1", {
        "ansible_ssh_common_args": "-qJbastion -o 'IdentityFile /k/a=b' -F /first -o 'User = ops'",
        "ansible_ssh_extra_args": "-F /last",
    })  # fmt: skip
    assert opts == {"proxyjump": "bastion", "identityfile": ["/k/a=b"], "user": "ops"}
    assert config == "/last"  # the last -F counts
    with pytest.raises(InputError, match="'-4' is not supported"):
        ssh_args_options("r1", {"ansible_ssh_common_args": "-4"})
