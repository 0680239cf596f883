"""transport/address.py: which hosts are this machine, and how clients write a registry's host:port."""

from __future__ import annotations

import pytest

from regdeploy.transport.address import client_address, host_port, is_local, is_loopback, registry_hostport


@pytest.mark.parametrize(
    ("name", "host_vars", "local"),
    [
        ("localhost", {}, True),  # Ansible's implicit localhost
        ("127.0.0.1", {}, True),
        ("::1", {}, True),
        ("box", {"ansible_connection": "local"}, True),
        ("localhost", {"ansible_connection": "ssh"}, False),  # said so: reached over SSH, as Ansible does
        ("reg1", {}, False),
        ("reg1", {"ansible_connection": "paramiko"}, False),
    ],
)
def test_is_local_follows_ansible(name, host_vars, local):
    assert is_local(name, host_vars) is local


@pytest.mark.parametrize(
    ("name", "host_vars", "expected"),
    [
        ("localhost", {}, "localhost"),
        ("box", {"ansible_connection": "local"}, "localhost"),
        ("reg-eu", {"ansible_host": "10.0.0.5"}, "10.0.0.5"),
        ("reg-us.example", {"ansible_connection": "ssh"}, "reg-us.example"),
    ],
)
def test_the_name_clients_use(name, host_vars, expected):
    assert client_address(name, host_vars) == expected


def test_the_implicit_localhost_is_reached_as_localhost():
    assert client_address("127.0.0.1", {}) == "localhost"
    assert client_address("box", {"ansible_connection": "local", "ansible_host": "10.0.0.5"}) == "localhost"


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("reg.example", 5000, "reg.example:5000"),
        ("fd00::5", 5000, "[fd00::5]:5000"),
        ("[fd00::5]", 5000, "[fd00::5]:5000"),
        ("reg.example", 443, "reg.example"),  # Docker's default port is left out ...
        ("pull.example.com", None, "pull.example.com"),  # ... as a URL without a port means it
        ("10.0.0.5", 443, "10.0.0.5"),
        ("fd00::5", 443, "[fd00::5]"),
        ("localhost", 443, "localhost"),
        ("reg1", 443, "reg1:443"),  # but "reg1/app" would be a Docker Hub namespace
    ],
)
def test_host_port_as_docker_writes_it(host, port, expected):
    assert host_port(host, port) == expected


def test_registry_hostport():
    assert registry_hostport("box", {"ansible_connection": "local"}, 5000) == "localhost:5000"
    assert registry_hostport("reg-eu", {"ansible_host": "fd00::5"}, 5443) == "[fd00::5]:5443"
    assert registry_hostport("reg-eu", {"ansible_host": "reg.eu.example"}, 443) == "reg.eu.example"


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
        ("localhost", True), ("reg.localhost", True),
        ("10.0.0.5", False), ("reg-us.example", False), ("localhost.example", False),
    ],
)  # fmt: skip
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback

