"""What ``certs trust`` and ``clients mirror`` share on the command line: their runtime and root
options, and how a client's outcome prints."""

from __future__ import annotations

from typing import Any

import click

from regdeploy.cli.common import F


def runtime_option(func: F) -> F:
    return click.option(
        "--runtime",
        metavar="LIST",
        help="Comma-separated: docker, containerd, podman (also CRI-O, skopeo, buildah), k3s.  "
        "[default: those detected on each client]",
    )(func)


def root_option(func: F) -> F:
    return click.option(
        "--root",
        metavar="DIR",
        help="Write under DIR on each client instead of / (a chroot, an image's filesystem).",
    )(func)


def print_client_hosts(hosts: dict[str, Any]) -> None:
    for name, h in hosts.items():
        if h["error"]:
            click.secho(f"{name}: FAILED: {h['error']}", fg="red", bold=True)
            continue
        runtimes = f" ({', '.join(h['runtimes'])})" if h.get("runtimes") else ""
        if not h["changes"]:
            click.secho(f"{name}: ok, no changes{runtimes}", fg="green")
        else:
            click.secho(f"{name}: {len(h['changes'])} changed{runtimes}", fg="yellow")
            for c in h["changes"]:
                sign = "-" if c["action"] == "remove" else "+"
                click.echo(f"  {sign} {c['resource']}  {c['action']}: {c['reason']}")
        for note in h["notes"]:
            click.echo(f"  note: {note}")
        for line in h.get("reload", []):
            click.secho(f"  reload: {line}", fg="yellow")
        for warning in h.get("warnings", []):
            click.secho(f"warning: {name}: {warning}", fg="yellow", err=True)
