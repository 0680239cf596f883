"""``regdeploy auth serve``: the built-in token server for registries in token auth mode."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def register(cli: click.Group) -> None:
    """Add the ``auth`` command group to *cli*."""
    cli.add_command(auth_group)


@click.group("auth")
def auth_group() -> None:
    """The token server behind a registry in token auth mode.

    \b
    The registry sends clients to it (auth.token.realm); it checks their
    credentials (the user file, or a CI job's OIDC JWT), applies the ACL and
    answers with a signed token the registry trusts. `regdeploy up` runs it as
    the <name>-token unit and writes its configuration file.
      regdeploy auth serve --config /etc/regdeploy-token/token.yml
      regdeploy auth serve --config token.yml --check
    """


@auth_group.command("serve")
@click.option(
    "--config",
    "-c",
    "config_path",
    required=True,
    metavar="FILE",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The token server's YAML configuration file.",
)
@click.option(
    "--check", is_flag=True, help="Validate the file and everything it names, print a summary, exit."
)
def serve_command(config_path: Path, check: bool) -> None:
    """Serve token requests until SIGTERM or Ctrl-C (then exit 0).

    \b
    GET /token (docker CLI: Basic credentials) and POST /token (containerd,
    buildkit: grant_type=password) with service and scope parameters. The
    user file is re-read when it changes: users add|remove|rotate need no
    restart. Logs one line per request to stderr, never a password or token:
      token server: listening on https://0.0.0.0:5001 (service reg1:5000, 2 users, 4 acl entries)
      token: alice repository:alice/app:pull,push -> granted repository:alice/app:pull,push
      token: refused (bad credentials for bob)

    \b
    --check loads the keys (the chain must start with the signing key's
    certificate), the TLS pair, the user file and JWKS files; exit 0 when all
    is well, 2 with one line naming the file and key otherwise.
    """
    from regdeploy.tokens.config import load_config
    from regdeploy.tokens.server import check as check_config
    from regdeploy.tokens.server import serve

    config = load_config(config_path)
    if check:
        for line in check_config(config):
            click.echo(line)
        return
    sys.exit(serve(config))
