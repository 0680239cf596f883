"""``regdeploy users list|add|remove|rotate``: registry users, changed with zero downtime."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from regdeploy.cli.common import connect_options, connect_vars, emit_json, host_options, progress
from regdeploy.errors import EXIT_FAILED, EXIT_OK, InputError

if TYPE_CHECKING:
    from regdeploy.ops.users import UsersChanged

FORMATS = ("plain", "env", "docker-config")  # of ops.users.credentials_text
F = TypeVar("F", bound=Callable[..., Any])


def register(cli: click.Group) -> None:
    cli.add_command(users)


@click.group()
def users() -> None:
    """Registry users: list, add, remove, rotate passwords. No restart, ever.

    \b
    The registry re-reads its htpasswd file when it changes, so every command
    here rewrites that one file on each targeted host and nothing else.
    Users normally live in the inventory (registry.auth.users); `users add`
    keeps extra ones in the state directory beside it. Passwords are never
    taken from the command line: use --password-stdin, --password-file, or
    let regdeploy generate one.
    """


def _read_password(password_stdin: bool, password_file: Path | None) -> str | None:
    from regdeploy.ops.users import check_password

    if password_stdin and password_file:
        raise InputError("--password-stdin and --password-file: give one of them")
    if password_stdin:
        return check_password(sys.stdin.readline().rstrip("\r\n"), "--password-stdin")
    if password_file:
        try:
            text = password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise InputError(f"--password-file {password_file}: {exc.strerror}") from None
        return check_password(text, f"--password-file {password_file}")
    return None


def _say(host: str, message: str) -> None:
    progress(f"[{host}] {message}")


def _report(pushed: dict[str, str | None], as_json: bool, extra: dict[str, Any]) -> None:
    ok = all(err is None for err in pushed.values())
    if as_json:
        emit_json({"ok": ok, **extra, "hosts": {h: {"ok": e is None, "error": e} for h, e in pushed.items()}})
    else:
        for host, err in pushed.items():
            if err is None:
                click.secho(f"{host}: htpasswd up to date (no restart)", fg="green")
            else:
                click.secho(f"{host}: FAILED: {err.removeprefix(host + ': ')}", fg="red")
        if not ok:
            click.echo(
                "hosts that failed still have the previous users: re-run the command or `regdeploy up`"
            )
    if not ok:
        sys.exit(EXIT_FAILED)


def _deliver(changed: UsersChanged, output: Path | None, fmt: str, as_json: bool) -> None:
    """Show new credentials once, or write them 0600 to --output. --json never carries them."""
    from regdeploy.ops.users import credentials_text, write_credentials

    if not changed.credentials:
        return
    text = credentials_text(changed.credentials, changed.registries, fmt)
    if output is not None:
        write_credentials(output, text)
        if not as_json:
            click.echo(f"new credentials written to {output} (mode 600)")
    elif as_json:
        raise InputError("--json never prints passwords: add --output FILE to receive the new credentials")
    else:
        click.echo("new credentials (shown once; they are also kept in the state directory):")
        click.echo(text, nl=False)


def output_options(func: F) -> F:
    """--output/--format: where new credentials go (never the --json output)."""
    func = click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="plain",
        show_default=True,
        help="plain 'user: password' lines, env (.env lines), or docker-config (a config.json auths entry).",
    )(func)
    return click.option(
        "--output",
        "-o",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Write the new credentials to this file (mode 600) instead of the terminal.",
    )(func)


def password_options(func: F) -> F:
    """--password-stdin/--password-file: the only ways in for a chosen password (never argv)."""
    func = click.option(
        "--password-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Read the password from this file.",
    )(func)
    return click.option(
        "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
    )(func)


@users.command("list")
@host_options
@connect_options
def list_users(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
               connect_timeout: float | None, accept_new_host_keys: bool) -> None:  # fmt: skip
    """Who exists on each host's htpasswd, against the inventory (drift shown).

    Never prints passwords or hashes. Status: ok, out-of-date (another password
    or cost than the inventory's), missing (not on the host yet), unmanaged (on
    the host only), disabled; non-bcrypt lines are flagged: the registry refuses them.
    """
    from regdeploy.ops import users as users_ops

    connect = connect_vars(connect_timeout, accept_new_host_keys)
    payload = users_ops.list_users(inventory, limit, connect, forks)
    if as_json:
        emit_json(payload)
    else:
        _print_users(payload)
    sys.exit(EXIT_OK if payload["ok"] else EXIT_FAILED)


@users.command("add")
@click.argument("name")
@host_options
@password_options
@click.option(
    "--generate", is_flag=True, help="Generate a strong password (the default without a password option)."
)
@output_options
@connect_options
def add_user(name: str, inventory: Path | None, limit: str | None, forks: int, as_json: bool,
             password_stdin: bool, password_file: Path | None, generate: bool,
             output: Path | None, fmt: str, connect_timeout: float | None,
             accept_new_host_keys: bool) -> None:  # fmt: skip
    """Add user NAME to every targeted registry (kept in the state directory).

    \b
    Examples:
      regdeploy users add ci                              # generated, shown once
      regdeploy users add ci --output ci.env --format env # generated, written 0600
      printf '%s\\n' "$PW" | regdeploy users add bob --password-stdin
    """
    from regdeploy.ops import users as users_ops

    users_ops.check_name(name)
    supplied = _read_password(password_stdin, password_file)
    if supplied is not None and generate:
        raise InputError("--generate and a password option: give one of them")
    connect = connect_vars(connect_timeout, accept_new_host_keys)
    changed = users_ops.add_user(inventory, limit, connect, name, supplied, forks, _say)
    _deliver(changed, output, fmt, as_json)
    _report(changed.pushed, as_json, {"user": name, "action": "add"})
@users.command("remove")
@click.argument("name")
@host_options
@connect_options
def remove_user(name: str, inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                connect_timeout: float | None, accept_new_host_keys: bool) -> None:  # fmt: skip
    """Remove user NAME (added with `users add`) from every targeted registry.

    Users defined in the inventory are removed (or `disabled: true`) there.
    """
    from regdeploy.ops import users as users_ops

    connect = connect_vars(connect_timeout, accept_new_host_keys)
    changed = users_ops.remove_user(inventory, limit, connect, name, forks, _say)
    _report(changed.pushed, as_json, {"user": name, "action": "remove"})
@users.command("rotate")
@click.argument("names", nargs=-1)
@click.option("--all", "all_users", is_flag=True, help="Rotate every user whose password regdeploy keeps.")
@host_options
@password_options
@output_options
@connect_options
def rotate(names: tuple[str, ...], all_users: bool, inventory: Path | None, limit: str | None, forks: int,
           as_json: bool, password_stdin: bool, password_file: Path | None, output: Path | None,
           fmt: str, connect_timeout: float | None, accept_new_host_keys: bool) -> None:  # fmt: skip
    """Give users new passwords and push them to every targeted registry, no restart.

    \b
    Only passwords regdeploy keeps (generated, or added with `users add`) can be
    rotated here; one from {env: ...} or {file: ...} changes at its source.
    Other users keep their hashes. The new credentials are shown once, or
    written with --output FILE (mode 600) as plain lines, .env lines or a
    Docker config.json `auths` entry.

    \b
    Examples:
      regdeploy users rotate alice
      regdeploy users rotate ci --output ci-config.json --format docker-config
      regdeploy users rotate --all --output creds.env --format env
    """
    from regdeploy.ops import users as users_ops

    if all_users == bool(names):
        raise InputError("name the users to rotate, or give --all (not both)")
    supplied = _read_password(password_stdin, password_file)
    connect = connect_vars(connect_timeout, accept_new_host_keys)
    targets, changed = users_ops.rotate(inventory, limit, connect, names, all_users, supplied, forks, _say)
    _deliver(changed, output, fmt, as_json)
    _report(changed.pushed, as_json, {"rotated": targets})


def _print_users(payload: dict[str, Any]) -> None:
    for host, result in payload["hosts"].items():
        if result["error"]:
            click.secho(f"{host}: FAILED: {result['error']}", fg="red")
            continue
        click.secho(f"{host}:", bold=True)
        width = max((len(r["name"]) for r in result["users"]), default=4)
        for row in result["users"]:
            colour = "green" if row["status"] == "ok" else "yellow"
            click.echo(
                f"  {row['name'].ljust(width)}  {row['password']:<24} "
                + click.style(row["status"], fg=colour)
            )
