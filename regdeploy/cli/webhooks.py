"""``regdeploy webhooks test | listen | relay``: check, watch and bridge registry notifications."""

from __future__ import annotations

import re
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from regdeploy.cli.common import emit_json, host_options, progress
from regdeploy.errors import EXIT_FAILED, EXIT_OK
from regdeploy.webhooks.envelope import SAMPLE_REPOSITORY, SAMPLE_TAG

if TYPE_CHECKING:
    from regdeploy.webhooks.listener import Received

# Docker's reference grammar for a repository path and a tag.
_REPOSITORY_RE = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_TAG_RE = r"[\w][\w.-]{0,127}"


def register(cli: click.Group) -> None:
    """Add the ``webhooks`` command group to *cli*."""
    cli.add_command(webhooks_group)


@click.group("webhooks")
def webhooks_group() -> None:
    """Check, watch and bridge the registry's push/pull notifications.

    \b
    Endpoints are set in the inventory under registry.notifications.endpoints;
    `regdeploy up` writes them into the registry's config.yml.
      regdeploy webhooks test              # send a sample event to every endpoint now
      regdeploy webhooks listen --bind 172.17.0.1 --port 5080   # print what arrives
      regdeploy webhooks relay -c relay.yml                   # push -> GitHub Actions

    Recipes (Jenkins, GitHub Actions): docs/webhooks.md.
    """


# --- test ------------------------------------------------------------------------------------------


def _pattern(regex: str, what: str) -> Any:
    def check(ctx: click.Context, param: click.Parameter, value: str) -> str:
        if not re.fullmatch(regex, value):
            raise click.BadParameter(f"{value!r} is not a valid {what}")
        return value

    return check


@webhooks_group.command("test")
@host_options
@click.option(
    "--endpoint",
    "-e",
    "names",
    multiple=True,
    metavar="NAME",
    help="Only this endpoint (repeatable). A disabled endpoint is sent to only when named.",
)
@click.option(
    "--repository",
    default=SAMPLE_REPOSITORY,
    show_default=True,
    callback=_pattern(_REPOSITORY_RE, "repository name"),
    help="Repository named in the sample push.",
)
@click.option(
    "--tag",
    default=SAMPLE_TAG,
    show_default=True,
    callback=_pattern(_TAG_RE, "tag"),
    help="Tag named in the sample push.",
)
def test_command(
    inventory: Path | None,
    limit: str | None,
    forks: int,
    as_json: bool,
    names: tuple[str, ...],
    repository: str,
    tag: str,
) -> None:
    """Send each endpoint a sample push event, as the deployed registry would.

    \b
    The request is the registry's own: the same envelope (media type v1 for
    registry 2.x, v2 for 3.x), content type, user agent and the endpoint's
    headers; it reports each endpoint's answer and latency. Header values are
    never printed, and URLs are shown with query values hidden. Works before the
    first `up`: nothing on the registry host is touched.

    \b
    It is sent from this machine: an endpoint that only the registry host can
    reach shows as unreachable here. Exit code 1 if an endpoint refused
    (no answer, or not 2xx/3xx), 2 on bad input.

    \b
    Examples:
      regdeploy webhooks test
      regdeploy webhooks test -e jenkins --repository team/app --tag v1.2.3
    """
    from regdeploy.ops.webhooks import send_samples

    payload = send_samples(inventory, limit, forks, names, repository, tag)
    hosts = payload["hosts"]
    if as_json:
        emit_json(payload)
    else:
        _print_tests(hosts)
    sys.exit(EXIT_OK if payload["ok"] else EXIT_FAILED)


def _print_tests(hosts: Mapping[str, Mapping[str, Any]]) -> None:
    sent = refused = 0
    for name, host in hosts.items():
        if host["error"]:
            click.secho(f"{name}: FAILED: {host['error']}", fg="red")
            continue
        endpoints: Sequence[Mapping[str, Any]] = host["endpoints"]
        if not endpoints:
            click.echo(f"{name}: no notification endpoints configured")
            continue
        click.echo(f"{name}: sample push as {host['media_type']}")
        width = max(len(e["name"]) for e in endpoints)
        for e in endpoints:
            if not e["sent"]:
                label, colour = "skipped", "yellow"
            elif e["ok"]:
                label, colour = "ok", "green"
                sent += 1
            else:
                label, colour = "REFUSED", "red"
                refused += 1
            answer = f"{e['status']} " if e["status"] is not None else ""
            timing = f" in {e['seconds']:.3f}s" if e["sent"] else ""
            click.echo(
                "  "
                + click.style(label.ljust(7), fg=colour)
                + f" {e['name'].ljust(width)}  {e['url']}  {answer}{e['detail']}{timing}"
            )
            if e["warning"]:
                click.secho(f"          warning: {e['warning']}", fg="yellow")
    colour = "red" if refused else "green"
    click.secho(
        f"{sent} endpoint{'s' if sent != 1 else ''} accepted, {refused} refused", fg=colour, bold=True
    )


# --- listen ----------------------------------------------------------------------------------------


@webhooks_group.command("listen")
@click.option(
    "--port",
    "-p",
    type=click.IntRange(0, 65535),
    default=5080,
    show_default=True,
    help="0 picks a free port.",
)
@click.option(
    "--bind",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. A registry container reaches this host at the Docker bridge "
    "gateway: use --bind 172.17.0.1 (or 0.0.0.0) for it.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event (JSON Lines).")
@click.option("--count", type=click.IntRange(min=1), help="Stop after N events.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop after this long (exit 1 if --count events have not arrived by then).",
)
@click.option(
    "--fail-first",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Answer 500 to the first N deliveries, to watch the registry retry.",
)
def listen_command(
    port: int, bind: str, as_json: bool, count: int | None, timeout: float | None, fail_first: int
) -> None:
    """Receive the registry's notifications and print each event.

    \b
    One line per event: action, repository:tag (or @digest), digest, actor and
    media type; with --json, one object per line with id, action, repository,
    tag, digest, media_type, actor and timestamp. Request headers (tokens) are
    never printed. The address line goes to stderr.

    \b
    Point an endpoint at it (the registry runs in a container):
      notifications: {endpoints: [{name: debug, url: "http://172.17.0.1:5080/"}]}
      regdeploy webhooks listen --bind 172.17.0.1 --count 1 --timeout 60
    """
    from regdeploy.ops.webhooks import listen

    def show(received: Received) -> None:
        if as_json:
            click.echo(_json_line(received.summary.as_json()))
        else:
            click.echo(received.summary.line())

    reached, received = listen(bind, port, count, timeout, fail_first, show, progress)
    progress(f"received {received} event{'s' if received != 1 else ''}")
    sys.exit(EXIT_OK if reached else EXIT_FAILED)


def _json_line(obj: Any) -> str:
    import json

    return json.dumps(obj, separators=(",", ":"))


# --- relay -----------------------------------------------------------------------------------------


@webhooks_group.command("relay")
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Relay configuration file (YAML; see docs/webhooks.md).",
)
@click.option("--bind", help="Listen address (overrides listen.bind).  [default: 127.0.0.1]")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Listen port (overrides listen.port).  [default: 5080]"
)
@click.option(
    "--queue-dir", type=click.Path(path_type=Path, file_okay=False), help="Where pending events are kept."
)
@click.option(
    "--github", "github_repo", metavar="OWNER/REPO", help="Without --config: dispatch to this repository."
)
@click.option(
    "--token-env", metavar="VARIABLE", help="Without --config: the GitHub token's environment variable."
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Without --config: a file with the token.",
)
@click.option("--api-url", help="Without --config: GitHub API base URL.  [default: https://api.github.com]")
@click.option(
    "--event-type", help="Without --config: repository_dispatch event_type.  [default: registry-push]"
)
@click.option(
    "--repository",
    "repositories",
    multiple=True,
    metavar="GLOB",
    help="Without --config: repositories to relay.",
)
@click.option("--tag", "tags", multiple=True, metavar="GLOB", help="Without --config: tags to relay.")
@click.option(
    "--check", is_flag=True, help="Validate the configuration and secrets, show the targets, and exit."
)
def relay_command(
    config_path: Path | None,
    bind: str | None,
    port: int | None,
    queue_dir: Path | None,
    github_repo: str | None,
    token_env: str | None,
    token_file: Path | None,
    api_url: str | None,
    event_type: str | None,
    repositories: tuple[str, ...],
    tags: tuple[str, ...],
    check: bool,
) -> None:
    """Relay registry push events to GitHub Actions (repository_dispatch) or a signed POST.

    \b
    Runs until SIGTERM or Ctrl-C. Each tag push whose repository and tag match
    a target's glob patterns is queued on disk for that target (bounded; kept
    across restarts) and delivered with retries and exponential backoff. Blob
    pushes, pulls and untagged pushes are ignored. Tokens come from secret
    references ({env: VAR} or {file: PATH}) and never appear in its output.

    \b
    With a file:
      regdeploy webhooks relay -c /etc/regdeploy/relay.yml
    Or one GitHub target from options:
      GITHUB_TOKEN=... regdeploy webhooks relay --github acme/deploy \\
          --token-env GITHUB_TOKEN --queue-dir /var/lib/regdeploy-relay \\
          --bind 172.17.0.1 --repository 'team/*' --tag 'v*'
    Then point an endpoint at it: url: http://172.17.0.1:5080/
    """
    from regdeploy.ops.webhooks import check_relay, relay_config, start_relay

    config = relay_config(config_path, bind, port, queue_dir, github_repo, token_env, token_file, api_url,
                          event_type, repositories, tags)  # fmt: skip

    def log(message: str) -> None:
        click.echo(f"relay: {message}", err=True)

    if check:
        check_relay(config)
        for t in config.targets:
            click.echo(
                f"{t.name}: {t.type} -> {t.endpoint} for repositories {', '.join(t.repositories)} "
                f"and tags {', '.join(t.tags)}"
            )
        click.echo(
            f"listen on {config.bind}:{config.port}; queue {config.queue_dir} (max {config.max_events})"
        )
        return
    _serve_until_signalled(start_relay(config, log).stop)


def _serve_until_signalled(stop: Callable[[], None]) -> None:
    """Block until SIGTERM, SIGHUP or Ctrl-C, then stop cleanly (pending events stay queued)."""
    done = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        done.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
