"""``up``, ``plan``, ``down`` and ``status``: the commands that converge and inspect registries."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from regdeploy.cli.common import connect_options, connect_vars, emit_json, host_options, progress
from regdeploy.errors import EXIT_FAILED, EXIT_OK, InputError

if TYPE_CHECKING:
    from regdeploy.ops.run import HostOutcome, Run


def register(cli: click.Group) -> None:
    cli.add_command(up)
    cli.add_command(plan)
    cli.add_command(down)
    cli.add_command(status)
    cli.add_command(rollback)


def _run_up(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
            check: bool, with_diff: bool, adopt: bool, connect: dict[str, Any],
            serial: int | None = None, fail_fast: bool = False) -> None:  # fmt: skip
    from regdeploy.certs.notices import tls_warnings
    from regdeploy.cli.output import print_up, up_json
    from regdeploy.ops.rollback import GENERATIONS
    from regdeploy.ops.rollout import roll_out
    from regdeploy.ops.run import outcomes, prepare, up_host

    run = prepare(inventory, limit, connect)
    if not check:
        run.state.commit()
    generations = None if check else run.state.root / GENERATIONS

    def say(host: str, message: str) -> None:
        progress(f"[{host}] {run.masker.mask(message)}")

    for job in run.jobs:  # CA near expiry, plain HTTP, ACME port: worth saying on every run
        for warning in tls_warnings(job.spec, job.materials.tls):
            say(job.name, f"warning: {warning}")

    results = outcomes(
        roll_out(
            run.jobs,
            lambda j: up_host(j, check, with_diff, adopt, say, run.masker, generations),
            forks,
            serial=serial,
            fail_fast=fail_fast,
            # the balancers need their pause only after a container was replaced or started
            changed=lambda plan: not check and any(
                c.kind == "container"
                for c in plan.changes  # type: ignore[union-attr]
            ),
        )
    )
    if as_json:
        emit_json(up_json(results))
    else:
        print_up(results, check, with_diff)
        if not check:
            _first_run_hints(run, results)
    sys.exit(EXIT_OK if all(r.ok for r in results.values()) else EXIT_FAILED)


def _first_run_hints(run: Run, results: Mapping[str, HostOutcome]) -> None:
    """After a first deployment: where the generated password and the CA are (never the values)."""
    from regdeploy.ops.users import login_address

    for job in run.jobs:
        outcome = results[job.name]
        change = outcome.plan.container_change if outcome.ok and outcome.plan else None
        if change is None or change.action != "create":
            continue
        for user in job.spec.auth.users:
            if user.password.kind == "generated":
                path = run.state.root / "secrets" / user.password.name
                click.echo(
                    f"hint: {job.name}: password of '{user.name}' is in {path}\n"
                    f"      docker login {login_address(job)} -u {user.name} --password-stdin < {path}"
                )
            break
        if job.spec.tls.mode == "selfsigned":
            click.echo(
                "hint: make Docker on this machine trust the registry's CA: regdeploy certs trust --local "
                "(other clients: inventory group `clients`, `regdeploy certs trust`)"
            )
        break


@click.command()
@host_options
@click.option("--check", is_flag=True, help="Plan only: show what would change and change nothing.")
@click.option("--diff", "with_diff", is_flag=True, help="Show file differences (secrets masked).")
@click.option("--adopt", is_flag=True, help="Replace a same-named container that regdeploy did not create.")
@click.option(
    "--serial",
    type=click.IntRange(1),
    metavar="N",
    help="Rolling: N hosts at a time, the next batch once the previous one is done "
    "(overrides registry.serial for clusters).",
)
@click.option("--fail-fast", is_flag=True, help="After a host fails, start no other (running ones finish).")
@connect_options
def up(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
       check: bool, with_diff: bool, adopt: bool, serial: int | None, fail_fast: bool,
       connect_timeout: float | None, accept_new_host_keys: bool) -> None:  # fmt: skip
    """Converge every targeted host to its inventory: files, image, container.

    \b
    Safe to repeat: a host that already matches is not touched, and the run
    says "no changes". Bad input stops the run before any host is touched.
    Files the registry re-reads (htpasswd) are replaced in place; a changed
    config.yml or certificate replaces the container, and if the new one does
    not answer, the previous files and container come back.

    \b
    Examples:
      regdeploy up                                # the built-in local registry
      regdeploy up -i inventories/prod --limit eu  # one group of a fleet
      regdeploy up --json | jq .changed
      regdeploy up --serial 2 --fail-fast         # rolling, stop at the first failure

    \b
    A cluster's replicas (registry.cluster) are replaced registry.serial at a
    time (1 by default), never all of them behind a balancer at once; its
    balancers (registry_lb) come after them.
    """
    connect = connect_vars(connect_timeout, accept_new_host_keys)
    _run_up(inventory, limit, forks, as_json, check, with_diff, adopt, connect, serial, fail_fast)


@click.command()
@host_options
@connect_options
def plan(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
         connect_timeout: float | None, accept_new_host_keys: bool) -> None:  # fmt: skip
    """Show what `up` would change, with file diffs (secrets masked). Changes nothing.

    The same as `regdeploy up --check --diff`. Exit code 0 whether or not there
    are changes; 1 if a host cannot be inspected; 2 on bad input.
    """
    connect = connect_vars(connect_timeout, accept_new_host_keys)
    _run_up(inventory, limit, forks, as_json, check=True, with_diff=True, adopt=False, connect=connect)


@click.command()
@host_options
@click.option("--purge-data", is_flag=True, help="Also delete data_dir (all images!) and config_dir.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation of --purge-data.")
@connect_options
def down(inventory: Path | None, limit: str | None, forks: int, as_json: bool, purge_data: bool, yes: bool,
         connect_timeout: float | None, accept_new_host_keys: bool) -> None:  # fmt: skip
    """Stop and remove the registry container. Data and config stay unless --purge-data.

    \b
    A later `regdeploy up` brings the registry back with every pushed image.
    --purge-data deletes data_dir and config_dir too; it asks first, or needs
    --yes when there is no terminal.
    """
    from regdeploy.ops.down import down_host
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.run import load_specs

    _, specs = load_specs(inventory, limit, connect_vars(connect_timeout, accept_new_host_keys))
    if purge_data and not yes:
        if not sys.stdin.isatty():
            raise InputError("--purge-data deletes every pushed image: confirm with --yes")
        names = ", ".join(name for name, _, _ in specs)
        click.confirm(f"Delete the registry data and config on {names}?", abort=True)
    results = fan_out(specs, lambda s: s[0], lambda s: down_host(s[0], s[1], s[2], purge_data), forks)
    hosts: dict[str, dict[str, Any]] = {
        name: (
            {"ok": False, "changed": False, "changes": [], "error": str(r).removeprefix(f"{name}: ")}
            if isinstance(r, Exception)
            else {"ok": True, "changed": bool(r), "changes": r, "error": None}
        )
        for name, r in results.items()
    }
    payload = {
        "ok": all(h["ok"] for h in hosts.values()),
        "changed": any(h["changed"] for h in hosts.values()),
        "hosts": hosts,
    }
    if as_json:
        emit_json(payload)
    else:
        for name, host in hosts.items():
            if host["error"]:
                click.secho(f"{name}: FAILED: {host['error']}", fg="red")
            elif not host["changes"]:
                click.secho(f"{name}: ok, nothing to remove", fg="green")
            else:
                done = "; ".join(f"{c['action']} {c['resource']}" for c in host["changes"])
                click.secho(f"{name}: {done}", fg="yellow")
    sys.exit(EXIT_OK if payload["ok"] else EXIT_FAILED)


@click.command()
@host_options
@connect_options
def status(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
           connect_timeout: float | None, accept_new_host_keys: bool) -> None:  # fmt: skip
    """Show each registry: container state, image, ports, certificate expiry, data size, repositories.

    Read-only. Repositories come from /v2/_catalog (all pages) with the first
    configured user. Exit code 1 if a registry is not running.
    """
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.run import prepare
    from regdeploy.ops.status import ClusterHealth, host_status, print_status

    run = prepare(inventory, limit, connect_vars(connect_timeout, accept_new_host_keys), render_files=False)
    clusters = ClusterHealth()  # one probe of each cluster, shown on each of its hosts
    results = fan_out(run.jobs, lambda j: j.name, lambda j: host_status(j, clusters), forks)
    payload = {
        "ok": all(not isinstance(r, Exception) and r.get("running") for r in results.values()),
        "hosts": {
            name: ({"ok": False, "error": run.masker.mask(str(r))} if isinstance(r, Exception) else r)
            for name, r in results.items()
        },
    }
    if as_json:
        emit_json(payload)
    else:
        print_status(payload)
    sys.exit(EXIT_OK if payload["ok"] else EXIT_FAILED)


@click.command()
@host_options
@connect_options
def rollback(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
             connect_timeout: float | None, accept_new_host_keys: bool) -> None:  # fmt: skip
    """Put back what the last changing `up` replaced: its files and unit definitions.

    \b
    `up` keeps one previous generation per host (in the state directory).
    rollback writes those files back and makes those containers again, each
    replaced only once the previous one serves again (health-gated, as `up`);
    units the last `up` created are removed; data is never touched. A
    cluster's replicas are rolled back one at a time. The next
    `up` then wants the inventory's newer state again, and its plan says why.

    \b
    Example:
      regdeploy up                  # a new image or config goes out ...
      regdeploy rollback --limit reg1   # ... and comes back on reg1
    """
    from regdeploy.cli.output import print_up, up_json
    from regdeploy.ops.rollback import rollback_host
    from regdeploy.ops.rollout import roll_out
    from regdeploy.ops.run import outcomes, prepare

    run = prepare(inventory, limit, connect_vars(connect_timeout, accept_new_host_keys))

    def say(host: str, message: str) -> None:
        progress(f"[{host}] {run.masker.mask(message)}")

    back = partial(rollback_host, state_root=run.state.root, masker=run.masker, progress=say)
    # A cluster's replicas one at a time, as `up` rolls them (never every one behind a balancer).
    results = outcomes(roll_out(run.jobs, back, forks))
    if as_json:
        emit_json(up_json(results))
    else:
        print_up(results, False, False)
    sys.exit(EXIT_OK if all(r.ok for r in results.values()) else EXIT_FAILED)
