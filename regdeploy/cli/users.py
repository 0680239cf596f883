"""``regdeploy users list|add|remove|rotate``: registry users, changed with zero downtime."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from regdeploy.cli.common import connect_options, connect_vars, emit_json, host_options, progress
from regdeploy.errors import EXIT_FAILED, EXIT_OK, InputError

if TYPE_CHECKING:
    from regdeploy.ops.run import Run

FORMATS = ("plain", "env", "docker-config")
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


def _push(run: Run, forks: int) -> dict[str, str | None]:
    """Push htpasswd to every targeted host: host -> error (None when it worked)."""
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.users import push_htpasswd

    def say(host: str, message: str) -> None:
        progress(f"[{host}] {run.masker.mask(message)}")

    run.state.commit()  # the new hashes: the next `up` must render the very same htpasswd
    results = fan_out(run.jobs, lambda j: j.name, lambda j: push_htpasswd(j, run.masker, say), forks)
    return {name: (str(r) if isinstance(r, Exception) else None) for name, r in results.items()}


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


def _registry_addresses(run: Run) -> list[str]:
    from regdeploy.ops.users import login_address

    return [login_address(job) for job in run.jobs]


def _deliver(credentials: dict[str, str], run: Run, output: Path | None, fmt: str, as_json: bool) -> None:
    """Show new credentials once, or write them 0600 to --output. --json never carries them."""
    if not credentials:
        return
    if fmt == "env":
        text = "".join(f"REGISTRY_{n.upper().replace('-', '_').replace('.', '_')}_PASSWORD={p}\n"
                       for n, p in credentials.items())  # fmt: skip
    elif fmt == "docker-config":
        if len(credentials) != 1:
            raise InputError("--format docker-config holds one user: rotate one user at a time")
        ((name, password),) = credentials.items()
        auth = base64.b64encode(f"{name}:{password}".encode()).decode()
        text = json.dumps({"auths": {a: {"auth": auth} for a in _registry_addresses(run)}}, indent=2) + "\n"
    else:
        text = "".join(f"{n}: {p}\n" for n, p in credentials.items())
    if output is not None:
        _write_private(output, text.encode())
        if not as_json:
            click.echo(f"new credentials written to {output} (mode 600)")
    elif as_json:
        raise InputError("--json never prints passwords: add --output FILE to receive the new credentials")
    else:
        click.echo("new credentials (shown once; they are also kept in the state directory):")
        click.echo(text, nl=False)


def _write_private(path: Path, data: bytes) -> None:
    from regdeploy.fileio import atomic_write

    try:
        atomic_write(path.absolute(), data, 0o600)
    except OSError as exc:
        raise InputError(f"--output {path}: {exc.strerror}") from None


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
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.run import prepare
    from regdeploy.ops.users_report import host_users, print_users

    run = prepare(inventory, limit, connect_vars(connect_timeout, accept_new_host_keys), render_files=False)
    results = fan_out(run.jobs, lambda j: j.name, host_users, forks)
    payload = {
        "ok": not any(isinstance(r, Exception) for r in results.values()),
        "hosts": {
            n: ({"ok": False, "error": run.masker.mask(str(r)), "users": []} if isinstance(r, Exception)
                else {"ok": True, "error": None, "users": r})
            for n, r in results.items()
        },
    }  # fmt: skip
    if as_json:
        emit_json(payload)
    else:
        print_users(payload)
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
    from regdeploy.materials.secrets import generate_password
    from regdeploy.materials.state import StateStore
    from regdeploy.materials.users import password_key, save_state_user_names, state_user_names
    from regdeploy.ops.run import load_specs, prepare
    from regdeploy.ops.users import check_name

    check_name(name)
    supplied = _read_password(password_stdin, password_file)
    if supplied is not None and generate:
        raise InputError("--generate and a password option: give one of them")
    connect = connect_vars(connect_timeout, accept_new_host_keys)
    inv, specs = load_specs(inventory, limit, connect)
    for host, _, spec in specs:
        if any(u.name == name for u in spec.auth.users):
            raise InputError(f"host '{host}': user {name!r} is defined in the inventory; change it there")
    state = StateStore.beside(inv.base_dir)
    names = state_user_names(state)
    if name in names:
        raise InputError(f"user {name!r} exists already (state directory); use `users rotate {name}`")
    password = supplied or generate_password()
    save_state_user_names(state, [*names, name])
    state.write(f"secrets/{password_key(name)}", password.encode())
    state.commit()
    run = prepare(inventory, limit, connect)
    pushed = _push(run, forks)
    _deliver({} if supplied else {name: password}, run, output, fmt, as_json)
    _report(pushed, as_json, {"user": name, "action": "add"})


@users.command("remove")
@click.argument("name")
@host_options
@connect_options
def remove_user(name: str, inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                connect_timeout: float | None, accept_new_host_keys: bool) -> None:  # fmt: skip
    """Remove user NAME (added with `users add`) from every targeted registry.

    Users defined in the inventory are removed (or `disabled: true`) there.
    """
    from regdeploy.materials.state import StateStore
    from regdeploy.materials.users import password_key, save_state_user_names, state_user_names
    from regdeploy.ops.run import load_specs, prepare

    connect = connect_vars(connect_timeout, accept_new_host_keys)
    inv, specs = load_specs(inventory, limit, connect)
    for host, _, spec in specs:
        if any(u.name == name for u in spec.auth.users):
            raise InputError(
                f"host '{host}': user {name!r} is defined in the inventory; remove or disable it there"
            )
    state = StateStore.beside(inv.base_dir)
    names = state_user_names(state)
    if name not in names:
        raise InputError(f"no user {name!r} was added with `users add`")
    save_state_user_names(state, [n for n in names if n != name])
    state.delete(f"secrets/{password_key(name)}")
    state.commit()
    _report(_push(prepare(inventory, limit, connect), forks), as_json, {"user": name, "action": "remove"})


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
    from regdeploy.materials.secrets import generate_password
    from regdeploy.ops.run import prepare

    if all_users == bool(names):
        raise InputError("name the users to rotate, or give --all (not both)")
    supplied = _read_password(password_stdin, password_file)
    connect = connect_vars(connect_timeout, accept_new_host_keys)
    first = prepare(inventory, limit, connect)
    specs = {u.name: u for job in first.jobs for u in job.spec.auth.users}
    targets = [n for n, u in specs.items() if u.password.kind == "generated"] if all_users else list(names)
    if supplied is not None and len(targets) != 1:
        raise InputError("a supplied password can only be given to one user")
    for name in targets:
        user = specs.get(name)
        if user is None:
            raise InputError(f"no user {name!r} on the targeted hosts")
        if user.password.kind != "generated":
            raise InputError(
                f"user {name!r}: password comes from {user.password.describe()}; change it there"
            )
    credentials = {name: supplied or generate_password() for name in targets}
    for name, password in credentials.items():
        first.state.write(f"secrets/{specs[name].password.name}", password.encode())
    first.state.commit()
    run = prepare(inventory, limit, connect)
    pushed = _push(run, forks)
    _deliver(credentials if supplied is None else {}, run, output, fmt, as_json)
    _report(pushed, as_json, {"rotated": targets})
