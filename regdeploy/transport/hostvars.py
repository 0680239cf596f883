"""The host variables regdeploy's transports read: Ansible's connection variables, and regdeploy's own.

Owned here, below the modules that read them (factory, sshconfig) and what sets them (the command line,
through ops/connect.py), so that none of those has to import another for a name.
"""

from __future__ import annotations

# Set by the command line (`--accept-new-host-keys`, `--timeout`) into each host's variables; the timeout
# ranks below the inventory's own `ansible_ssh_timeout`, as Ansible ranks command line and variables.
VAR_ACCEPT_NEW = "regdeploy_accept_new_host_keys"
VAR_CLI_TIMEOUT = "regdeploy_connect_timeout"

# Every host variable a transport reads: each is checked (vaulted, templated) before any host is touched.
CONNECTION_VARS = (
    "ansible_connection", "ansible_host", "ansible_ssh_host", "ansible_port", "ansible_ssh_port",
    "ansible_user", "ansible_ssh_user", "ansible_ssh_private_key_file", "ansible_private_key_file",
    "ansible_ssh_known_hosts_file", "ansible_ssh_timeout", "ansible_timeout", "ansible_become",
    "ansible_become_user", "ansible_become_method", "regdeploy_docker_host", "regdeploy_ssh_config",
    "regdeploy_known_hosts", VAR_CLI_TIMEOUT, VAR_ACCEPT_NEW,
    "ansible_ssh_common_args", "ansible_ssh_extra_args",
)  # fmt: skip
