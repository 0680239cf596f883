"""What every command shares: inventory/limit/forks/json options and the error boundary."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from regdeploy.errors import EXIT_INPUT, RegdeployError

F = TypeVar("F", bound=Callable[..., Any])


class RegdeployGroup(click.Group):
    """Turns expected errors into one red line and the right exit code; bugs into a log file."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RegdeployError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)
        except click.exceptions.UsageError as exc:
            # click would print it too; keep its format (it names the argument) and our exit code.
            exc.exit_code = EXIT_INPUT  # type: ignore[misc]  # click's class default is 2 too; keep it explicit
            raise
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.secho("interrupted", fg="red", err=True)
            ctx.exit(130)
        except Exception as exc:  # a bug: keep the traceback out of the terminal, but keep it
            log = _write_traceback(exc)
            click.secho(
                f"error: unexpected {type(exc).__name__}; traceback written to {log}", fg="red", err=True
            )
            ctx.exit(1)


def _write_traceback(exc: BaseException) -> Path:
    fd, name = tempfile.mkstemp(prefix="regdeploy-crash-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(traceback.format_exception(exc)))
    return Path(name)


def host_options(func: F) -> F:
    """-i/--inventory, --limit, --forks, --json: the options every host-targeting command takes."""
    func = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")(
        func
    )
    func = click.option(
        "--forks",
        type=click.IntRange(1, 256),
        default=10,
        show_default=True,
        help="How many hosts to work on at once.",
    )(func)
    func = click.option(
        "--limit",
        "-l",
        metavar="PATTERN",
        help="Ansible host pattern: names, groups, 'a:b' (or), 'a:&b' (and), 'a:!b' (not), wildcards.",
    )(func)
    func = click.option(
        "--inventory",
        "-i",
        metavar="PATH",
        envvar="REGDEPLOY_INVENTORY",
        type=click.Path(path_type=Path),
        help="Inventory file or directory (YAML or INI). Default: $REGDEPLOY_INVENTORY, "
        "else the built-in local inventory (this machine, port 5000).",
    )(func)
    return func


def connect_options(func: F) -> F:
    """--timeout and --accept-new-host-keys: how SSH hosts are reached (see :func:`connect_vars`)."""
    func = click.option(
        "--accept-new-host-keys",
        is_flag=True,
        help="Add the SSH host key of hosts not yet in known_hosts (each added key is printed). "
        "A changed key is refused regardless.",
    )(func)
    func = click.option(
        "--timeout",
        "connect_timeout",
        type=click.FloatRange(0.1, 3600),
        metavar="SECONDS",
        help="SSH connect timeout per host (default 10; a host's ansible_ssh_timeout wins, as in Ansible).",
    )(func)
    return func


def connect_vars(connect_timeout: float | None, accept_new_host_keys: bool) -> dict[str, Any]:
    """The options of :func:`connect_options` as host variables, for ``run.prepare(connect=...)``."""
    from regdeploy.ops.connect import connect_vars as host_vars

    return host_vars(connect_timeout, accept_new_host_keys)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


def progress(message: str) -> None:
    """A progress line on stderr (so --json output on stdout stays parseable)."""
    if sys.stderr.isatty():
        click.secho(message, fg="cyan", err=True)
    else:
        click.echo(message, err=True)
