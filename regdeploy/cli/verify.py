"""``regdeploy verify``: prove each registry works end to end, as a client would."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from regdeploy.cli.common import connect_options, connect_vars, emit_json, host_options
from regdeploy.errors import EXIT_FAILED, EXIT_OK, InputError
from regdeploy.verify.checks import CHECKS

_CHECK_HELP = "\n".join(f"  {c.name:<14} {c.summary}" for c in CHECKS)


def register(cli: click.Group) -> None:
    cli.add_command(verify)


@click.command(
    epilog="\b\nChecks (in order; prerequisites of a --check run too):\n" + _CHECK_HELP,
)
@host_options
@click.option(
    "--check",
    "checks",
    multiple=True,
    metavar="NAME",
    type=click.Choice([c.name for c in CHECKS]),
    help="Run only this check (and what it builds on). Repeatable.",
)
@click.option("--persistence", is_flag=True, help="Also restart the container and check the data survived.")
@click.option(
    "--server-name",
    metavar="NAME",
    help="The name clients use for the registry (default: localhost for local hosts, else ansible_host "
    "or the inventory name). The certificate must match it; the engine check pushes to NAME:PORT.",
)
@connect_options
def verify(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
           checks: tuple[str, ...], persistence: bool, server_name: str | None,
           connect_timeout: float | None, accept_new_host_keys: bool) -> None:  # fmt: skip
    """Prove each registry works as a client would use it: TLS, auth, push, pull.

    \b
    Per host: TCP; TLS with the inventory's CA (name, protocol, expiry); the auth
    challenge; a push and pull through this machine's Docker engine and another
    through the registry HTTP API, compared by digest; the catalog; webhook
    delivery; then the smoke images are deleted again. Exit code 0 only when
    every check passed; 1 when one failed; 2 on bad input.

    \b
    Examples:
      regdeploy verify
      regdeploy verify --json | jq '.hosts[].checks[] | select(.ok | not)'
      regdeploy verify --check tls --check auth     # no push
      regdeploy verify --persistence                # restarts the registry container
    """
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.run import prepare
    from regdeploy.verify.checks import select_checks
    from regdeploy.verify.report import VerifyOutcome, payload, table
    from regdeploy.verify.runner import verify_host

    if server_name is not None and (not server_name or any(ch in server_name for ch in " /@\t\n")):
        raise InputError(f"--server-name {server_name!r}: expected a host name or an IP address")
    run = prepare(inventory, limit, connect_vars(connect_timeout, accept_new_host_keys), render_files=False)
    if server_name is not None and len(run.jobs) > 1:
        raise InputError(f"--server-name names one registry, but {len(run.jobs)} hosts match: use --limit")
    selected = select_checks(checks, persistence)
    raw = fan_out(
        run.jobs, lambda j: j.name, lambda j: verify_host(j, selected, run.masker, server_name), forks
    )
    results: dict[str, VerifyOutcome] = {
        name: r if not isinstance(r, Exception) else run.masker.mask(str(r)) for name, r in raw.items()
    }
    out = payload(results)
    if as_json:
        emit_json(out)
    else:
        click.echo(table(results, color=sys.stdout.isatty()))
    sys.exit(EXIT_OK if out["ok"] else EXIT_FAILED)
