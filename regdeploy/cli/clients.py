"""``regdeploy clients mirror``: the clients' container runtimes pull through the registries' caches."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from regdeploy.cli.client_output import print_client_hosts, root_option, runtime_option
from regdeploy.cli.common import connect_options, connect_vars, emit_json, host_options
from regdeploy.errors import EXIT_FAILED, EXIT_OK


def register(cli: click.Group) -> None:
    """Add the ``clients`` command group to *cli*."""
    cli.add_command(clients_group)


@click.group("clients")
def clients_group() -> None:
    """Client machines' container runtimes (trust: `regdeploy certs trust`)."""


@clients_group.command("mirror")
@host_options
@connect_options
@click.option("--local", "include_local", is_flag=True, help="Also (or only) this machine.")
@click.option("--remove", is_flag=True, help="Undo: remove the mirror settings regdeploy added.")
@click.option("--registry", "registry_pattern", metavar="PATTERN",
              help="Whose caches (registry host pattern).  [default: all]")  # fmt: skip
@click.option("--upstream", metavar="HOST",
              help="Only the caches of this upstream (docker.io, ghcr.io, HOST:PORT or a URL).")  # fmt: skip
@runtime_option
@root_option
def mirror_command(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                   connect_timeout: float | None, accept_new_host_keys: bool, include_local: bool,
                   remove: bool, registry_pattern: str | None, upstream: str | None,
                   runtime: str | None, root: str | None) -> None:  # fmt: skip
    """Make clients pull each upstream through its pull-through cache (registry.proxies).

    \b
    Clients are the hosts of the group `clients` (narrowed with --limit) and,
    with --local, this machine. Each cache is reached at its registry host's
    address with the proxy's port. Per runtime (--runtime, else detected):
      containerd  /etc/containerd/certs.d/UPSTREAM/hosts.toml (docker.io for Docker Hub)
      podman      /etc/containers/registries.conf.d/50-regdeploy-PROXY.conf
      docker      registry-mirrors in /etc/docker/daemon.json (Docker Hub only;
                  reload dockerd: regdeploy says so, and does not reload it)
      k3s         mirrors in /etc/rancher/k3s/registries.yaml (restart k3s)
    The caches' CA comes from `regdeploy certs trust` (it trusts every proxy
    port): run it too. --remove takes away only the entries regdeploy added.

    \b
    Examples:
      regdeploy certs trust --local && regdeploy clients mirror --local
      regdeploy clients mirror --upstream docker.io --runtime containerd
      regdeploy clients mirror --local --remove
    """
    from regdeploy.ops.clients import mirror

    connect = connect_vars(connect_timeout, accept_new_host_keys)
    payload = mirror(inventory, limit, connect, include_local, remove, registry_pattern, runtime, upstream,
                     root, forks)  # fmt: skip
    if as_json:
        emit_json(payload)
    else:
        print_client_hosts(payload["hosts"])
    sys.exit(EXIT_OK if payload["ok"] else EXIT_FAILED)
