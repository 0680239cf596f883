"""The ``regdeploy`` command line: thin click commands that parse, call the core and print."""

from __future__ import annotations

import click

from regdeploy import __version__
from regdeploy.cli.common import RegdeployGroup


@click.group(cls=RegdeployGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="regdeploy")
def cli() -> None:
    """Provision private Docker registries from an Ansible-style inventory.

    \b
    A run goes: load the inventory -> render files -> gather facts on each host
    -> plan the changes -> apply them -> verify with a real push and pull.

    \b
    Quick start (a TLS + auth registry on this machine, on port 5000):
      regdeploy plan          # what would change, nothing is touched
      regdeploy up            # make it so (safe to re-run: no change, says so)
      regdeploy verify        # prove it: TLS, auth, push, pull
      regdeploy status        # what runs where
      regdeploy inventory     # each registry: value and the file that set it

    Every host command takes -i/--inventory (default: $REGDEPLOY_INVENTORY, else the
    built-in local inventory), --limit PATTERN, --forks N and --json.
    Exit codes: 0 ok, 1 a host or check failed, 2 bad input.
    """


def _register() -> None:
    # Imported here so that each command module stays independent of the others.
    from regdeploy.cli import auth as auth_cli
    from regdeploy.cli import backup as backup_cli
    from regdeploy.cli import certs as certs_cli
    from regdeploy.cli import clients as clients_cli
    from regdeploy.cli import gc as gc_cli
    from regdeploy.cli import image, inventory, lifecycle, verify
    from regdeploy.cli import retention as retention_cli
    from regdeploy.cli import users as users_cli
    from regdeploy.cli import webhooks as webhooks_cli

    for module in (lifecycle, inventory, image, certs_cli, users_cli, verify, webhooks_cli, auth_cli,
                   retention_cli, clients_cli, gc_cli, backup_cli):  # fmt: skip
        module.register(cli)


_register()


def main() -> None:
    cli(prog_name="regdeploy")
