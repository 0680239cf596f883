"""``regdeploy certs generate|show|renew|csr|import|trust``: the registries' TLS certificates."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from regdeploy.cli.client_output import print_client_hosts, root_option, runtime_option
from regdeploy.cli.common import connect_options, connect_vars, emit_json, host_options, progress
from regdeploy.errors import EXIT_FAILED, EXIT_OK


def register(cli: click.Group) -> None:
    """Add the ``certs`` command group to *cli*."""
    cli.add_command(certs_group)


def _warn(host: str, warnings: list[str] | tuple[str, ...]) -> None:
    for warning in warnings:
        click.secho(f"warning: {host}: {warning}", fg="yellow", err=True)


def _cert_line(pem: bytes) -> str:
    from regdeploy import pki

    info = pki.cert_info(pem)
    days = info.days_left(datetime.now(UTC))
    return f"SANs {', '.join(info.sans)}; until {info.not_after:%Y-%m-%d} ({days} days)"


@click.group("certs")
def certs_group() -> None:
    """Registry TLS certificates: issue, inspect, renew, import, and make clients trust them.

    \b
    tls.mode (under registry.tls in the inventory):
      selfsigned   regdeploy's own CA (in .regdeploy/ca/) issues each host's certificate
      ca           your organisation's CA (ca_cert, ca_key, ca_key_passphrase) issues them
      provided     you give the chain and key (cert, key); regdeploy checks and deploys them
      csr          `certs csr` writes a CSR per host, `certs import` takes the signed chain
      letsencrypt  the registry's own ACME client (public names on port 443)
      none         plain HTTP, only with insecure: true

    \b
    Typical flow for a self-signed registry:
      regdeploy certs generate        # CA + host certificates, no Docker needed
      regdeploy up                    # deploy
      regdeploy certs trust --local   # docker on this machine trusts it
      regdeploy certs show            # expiry and status of each certificate
    """


@certs_group.command("generate")
@host_options
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Also write OUT/HOST/{ca.crt,server.crt,server.key} (key 0600, folder 0700).",
)
def generate_command(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                     out: Path | None) -> None:  # fmt: skip
    """Issue (or check) every host's certificate and save it in the state directory.

    Needs no Docker engine and touches no host: a CI step can run it alone.
    Existing certificates are kept unless due for renewal (tls.renew_before),
    their SANs no longer cover the inventory, or the CA changed. A host whose
    provided or imported certificate fails a check stops the command, and
    nothing is saved.

    \b
    Example:
      regdeploy certs generate -i inventories/prod --out build/certs
    """
    from regdeploy.ops.certs import generate, renew_elsewhere

    del forks  # accepted like on every host command; issuing is local and quick
    result = generate(inventory, limit, out)
    if as_json:
        emit_json(result.as_json())
        return
    for name, spec, material in result.done:
        host = result.hosts[name]
        _warn(name, host["warnings"])
        if material is None and spec.tls.mode == "csr":
            click.echo(f"{name}: csr: {renew_elsewhere('csr', name)}")
            continue
        if material is None:
            click.echo(f"{name}: {spec.tls.mode}: no certificate files (nothing to generate)")
            continue
        why = f" ({host['reason']})" if host["reason"] else ""
        colour = "yellow" if host["action"] == "issued" else "green"
        click.secho(f"{name}: {host['action']}{why}: {_cert_line(material.server_chain)}", fg=colour)
        if host["files"]:
            click.echo(f"  wrote {', '.join(host['files'])}")
    click.echo(f"state: {result.state_dir}")


@certs_group.command("show")
@host_options
@connect_options
@click.option("--offline", is_flag=True, help="Do not read the certificate deployed on each host.")
def show_command(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                 connect_timeout: float | None, accept_new_host_keys: bool,
                 offline: bool) -> None:  # fmt: skip
    """Each host's CA and server certificate: subject, SANs, issuer, key, expiry, status.

    \b
    Rows per host: the CA clients trust, the certificate `up` deploys (from the
    state directory or the inventory), and the one deployed on the host.
    Statuses: ok, renew-due (within tls.renew_before; `up` renews it), expiring
    (a CA within 180 days), outdated (the host has an older one: run `up`),
    not-deployed; and, failing: expired, not-yet-valid, other-ca, sans-missing,
    weak, missing, unreadable. Read-only; exit code 1 when any row fails.
    """
    from regdeploy.ops.certs import show

    payload = show(inventory, limit, connect_vars(connect_timeout, accept_new_host_keys), offline, forks)
    if as_json:
        emit_json(payload)
    else:
        _print_show(payload)
    sys.exit(EXIT_OK if payload["ok"] else EXIT_FAILED)


_STATUS_COLOUR = {"ok": "green", "renew-due": "yellow", "expiring": "yellow", "outdated": "yellow",
                  "not-deployed": "yellow", "unknown": "yellow"}  # fmt: skip


def _print_show(payload: dict[str, Any]) -> None:
    headers = ("HOST", "ROLE", "SOURCE", "SUBJECT", "SANS", "ISSUER", "KEY", "NOT AFTER", "DAYS", "STATUS")
    rows: list[tuple[tuple[str, ...], str]] = []
    notes: list[str] = []
    for name, host in payload["hosts"].items():
        if host["error"]:
            rows.append(((name, "-", "-", "-", "-", "-", "-", "-", "-", "error"), host["error"]))
            continue
        if not host["certificates"]:
            rows.append(((name, "-", f"tls.mode {host['mode']}", "-", "-", "-", "-", "-", "-", "-"), ""))
        for c in host["certificates"]:
            row: tuple[str, ...] = (
                name, c["role"], c["source"], c["subject"] or "-", ",".join(c["sans"]) or "-",
                c["issuer"] or "-", c["key_type"] or "-", (c["not_after"] or "-")[:10],
                "-" if c["days_left"] is None else str(c["days_left"]), c["status"],
            )  # fmt: skip
            rows.append((row, c["detail"] if c["status"] != "ok" else ""))
        notes += [f"{name}: {w}" for w in host["warnings"]]
    widths = [max(len(h), *(len(r[i]) for r, _ in rows)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row, detail in rows:
        line = "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False))
        status = row[-1]
        click.echo(line + "  " + click.style(status, fg=_STATUS_COLOUR.get(status, "red")))
        if detail:
            click.echo(f"    {detail}")
    for note in notes:
        click.secho(f"warning: {note}", fg="yellow", err=True)


@certs_group.command("renew")
@host_options
@connect_options
@click.option("--rotate-keys", is_flag=True, help="Give each renewed certificate a new private key.")
@click.option("--force", is_flag=True, help="Renew even certificates that are not due.")
@click.option("--no-deploy", is_flag=True, help="Only renew in the state directory; deploy with `up` later.")
def renew_command(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                  connect_timeout: float | None, accept_new_host_keys: bool,
                  rotate_keys: bool, force: bool, no_deploy: bool) -> None:  # fmt: skip
    """Renew the certificates that are due, then deploy them (selfsigned and ca modes).

    \b
    A certificate is due when it expires within tls.renew_before days (default
    30), its SANs miss an address of the inventory, its key type changed, or
    its CA changed. --force renews all; --rotate-keys also replaces the keys
    (implies renewing). Renewed hosts are then deployed like `regdeploy up
    --limit THEM`: the registry restarts (it reads TLS only at start) and the
    plan says why. provided, csr and letsencrypt certificates are renewed
    outside regdeploy: this only reports them.

    \b
    Examples:
      regdeploy certs renew                   # what is due, then deploy
      regdeploy certs renew --rotate-keys     # new keys and certificates everywhere
      regdeploy certs renew --no-deploy       # CI: renew now, deploy in a later step
    """
    from regdeploy.cli.output import print_up, up_json
    from regdeploy.ops.certs import renew

    def say(host: str, message: str) -> None:
        progress(f"[{host}] {message}")

    connect = connect_vars(connect_timeout, accept_new_host_keys)
    result = renew(inventory, limit, connect, rotate_keys, force, not no_deploy, forks, say)
    renewed, names = result.certificates, result.names
    deploy = None
    if result.deployed is not None:
        if not as_json:
            print_up(result.deployed, check=False, with_diff=False)
        deploy = up_json(result.deployed)
    ok = deploy is None or deploy["ok"]
    if as_json:
        emit_json({"ok": ok, "changed": bool(names), "certificates": renewed, "deploy": deploy})
    else:
        for name, r in renewed.items():
            _warn(name, r["warnings"])
            if r["renewed"]:
                until = r["not_after"][:10]
                click.secho(f"{name}: renewed ({r['reason']}), valid until {until}", fg="yellow")
            elif r["note"]:
                click.echo(f"{name}: {r['note']}")
            else:
                until = f", valid until {r['not_after'][:10]}" if r["not_after"] else ""
                click.secho(f"{name}: not due{until}", fg="green")
        if names and no_deploy:
            click.echo(f"deploy with: regdeploy up --limit '{':'.join(names)}'")
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@certs_group.command("csr")
@host_options
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="Write OUT/HOST.csr for each host.",
)
@click.option("--rotate-keys", is_flag=True, help="Request the certificate for a new key.")
def csr_command(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                out: Path, rotate_keys: bool) -> None:  # fmt: skip
    """Write a certificate signing request per host (tls.mode csr), SANs included.

    \b
    The private key stays in the state directory (0600) and is never printed.
    Send HOST.csr to your CA, then import what it returns:
      regdeploy certs csr --out csr/
      regdeploy certs import reg1 signed/reg1.pem     # chain: server cert first
      regdeploy up
    Re-running before the import gives a CSR for the same key. With
    --rotate-keys the new key is used only once its certificate is imported,
    so the registry keeps serving meanwhile.
    """
    from regdeploy.ops.certs import write_csrs

    del forks
    hosts = write_csrs(inventory, limit, out, rotate_keys)
    if as_json:
        emit_json({"ok": True, "hosts": hosts})
        return
    for name, h in hosts.items():
        click.echo(f"{name}: wrote {h['csr']} for {h['key']}; SANs {', '.join(h['sans'])}")
    click.echo("next: have each CSR signed, then `regdeploy certs import HOST CHAIN.pem` and `regdeploy up`")


@certs_group.command("import")
@click.argument("host")
@click.argument("chain", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--inventory", "-i", metavar="PATH", envvar="REGDEPLOY_INVENTORY",
              type=click.Path(path_type=Path), help="Inventory file or directory.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def import_command(host: str, chain: Path, inventory: Path | None, as_json: bool) -> None:
    """Store the signed certificate CHAIN for HOST (tls.mode csr), after checking it.

    CHAIN is PEM: the server certificate first, then intermediates (the root
    may follow). It must match the key of the host's last CSR (or the key in
    use), cover every SAN of the inventory, lead to tls.ca_cert (or the root
    it ends with), and not be expired or due for renewal. Then `regdeploy up`
    deploys it.
    """
    from regdeploy.ops.certs import import_signed

    name, result = import_signed(inventory, host, chain)
    info = result.info
    if as_json:
        emit_json({"ok": True, "host": name, "subject": info.subject, "sans": list(info.sans),
                   "issuer": info.issuer, "not_after": info.not_after.isoformat(),
                   "new_key": result.new_key, "root_known": result.root_known})  # fmt: skip
        return
    if not result.root_known:
        _warn(name, ["the chain does not end with its root CA and registry.tls.ca_cert is not set: "
                     "clients must already trust the issuer (a public CA), and `certs trust` has nothing "
                     "to install"])  # fmt: skip
    key = "; it brings the CSR's new key into use" if result.new_key else ""
    click.echo(f"{name}: imported {info.subject} from {info.issuer}, until {info.not_after:%Y-%m-%d}{key}")
    click.echo("next: regdeploy up")


@certs_group.command("trust")
@host_options
@connect_options
@click.option("--local", "include_local", is_flag=True, help="Also (or only) this machine.")
@click.option("--remove", is_flag=True, help="Undo: remove the CA files and entries regdeploy installed.")
@click.option("--registry", "registry_pattern", metavar="PATTERN",
              help="Which registries to trust (host pattern).  [default: all]")  # fmt: skip
@runtime_option
@click.option("--configure-containerd", is_flag=True,
              help="Also point containerd's CRI plugin at certs.d (config_path in config.toml).")  # fmt: skip
@click.option("--certs-d", default="/etc/docker/certs.d", show_default=True, metavar="DIR",
              help="Docker's per-registry certificate directory on the clients.")  # fmt: skip
@root_option
@click.option("--system", "system_store", is_flag=True,
              help="Also add the CA to the system trust store (this machine and local clients).")  # fmt: skip
def trust_command(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                  connect_timeout: float | None, accept_new_host_keys: bool, include_local: bool,
                  remove: bool, registry_pattern: str | None, runtime: str | None,
                  configure_containerd: bool, certs_d: str, root: str | None,
                  system_store: bool) -> None:  # fmt: skip
    """Make the clients' container runtimes trust the registries' CA.

    \b
    Clients are the hosts of the inventory group `clients` (narrowed with
    --limit) and, with --local, this machine. Each gets the CA of every
    registry (or --registry PATTERN) under every address clients may use:
    SANs with the registry's port, with the token server's and each proxy's
    port, and tls.external_url. Per runtime (--runtime, else detected):
      docker      CERTS_D/HOST:PORT/ca.crt
      containerd  /etc/containerd/certs.d/HOST:PORT/{hosts.toml,ca.crt}
      podman      /etc/containers/certs.d/HOST:PORT/ca.crt (CRI-O, skopeo, buildah)
      k3s         /etc/rancher/k3s/registries.yaml entry (restart k3s)
    No restart, except k3s (and containerd after --configure-containerd).
    Without --runtime, --remove considers every runtime; it deletes only
    what holds the registry's CA or regdeploy's entries. docs/clients.md.

    \b
    Examples:
      regdeploy certs trust --local                   # this machine's runtimes
      regdeploy certs trust --limit ci-runners        # some clients
      regdeploy certs trust --local --runtime containerd,podman
      regdeploy certs trust --local --remove          # undo
    """
    from regdeploy.ops.certs import trust

    def skipped(name: str, note: str) -> None:
        click.echo(f"{name}: skipped: {note}", err=True)

    connect = connect_vars(connect_timeout, accept_new_host_keys)
    payload = trust(inventory, limit, connect, include_local, remove, registry_pattern, certs_d,
                    system_store, forks, None if as_json else skipped, runtime=runtime,
                    configure_containerd=configure_containerd, root=root)  # fmt: skip
    if as_json:
        emit_json(payload)
    else:
        print_client_hosts(payload["hosts"])
    sys.exit(EXIT_OK if payload["ok"] else EXIT_FAILED)
