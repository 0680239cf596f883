"""``regdeploy certs generate|show|renew|csr|import|trust``: the registries' TLS certificates."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from regdeploy.cli.common import connect_options, connect_vars, emit_json, host_options, progress
from regdeploy.errors import EXIT_FAILED, EXIT_OK, InputError, RegdeployError

if TYPE_CHECKING:
    from regdeploy.certs.material import TlsMaterial
    from regdeploy.certs.trust import TrustItem
    from regdeploy.inventory import Inventory
    from regdeploy.materials.secrets import Masker, SecretResolver
    from regdeploy.materials.state import StateStore
    from regdeploy.spec.registry import RegistrySpec

CONTROL_MACHINE = "(control machine)"


def register(cli: click.Group) -> None:
    """Add the ``certs`` command group to *cli*."""
    cli.add_command(certs_group)


@dataclass
class _Hosts:
    """The targeted registry hosts and what certificate commands read and write for them."""

    inventory: Inventory
    hosts: list[tuple[str, Mapping[str, Any], RegistrySpec]]
    state: StateStore
    masker: Masker
    resolver: SecretResolver

    def sans(self, name: str, host_vars: Mapping[str, Any], spec: RegistrySpec) -> list[str]:
        from regdeploy.materials.host import host_sans

        return host_sans(name, host_vars, spec)


def _load(inventory: Path | None, limit: str | None, connect: Mapping[str, Any] | None = None) -> _Hosts:
    from regdeploy.materials.secrets import Masker, SecretResolver
    from regdeploy.materials.state import StateStore
    from regdeploy.ops.run import load_specs

    inv, hosts = load_specs(inventory, limit, connect)
    masker = Masker()
    state = StateStore.beside(inv.base_dir)
    return _Hosts(inv, hosts, state, masker, SecretResolver(state, masker))


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
    from regdeploy.certs.issue import TlsIssuer
    from regdeploy.certs.notices import tls_warnings
    from regdeploy.certs.store import HostKeys

    del forks  # accepted like on every host command; issuing is local and quick
    ctx = _load(inventory, limit)
    issuer = TlsIssuer(ctx.state, ctx.resolver)
    done: list[tuple[str, RegistrySpec, TlsMaterial | None]] = []
    for name, host_vars, spec in ctx.hosts:
        if spec.tls.mode == "csr" and ctx.state.read(HostKeys(name).imported) is None:
            done.append((name, spec, None))  # waiting for its CA: `certs csr` / `certs import`
            continue
        done.append((name, spec, issuer.material(spec, ctx.sans(name, host_vars, spec))))
    ctx.state.commit()  # only once every host passed: a refusal leaves the state as it was
    hosts: dict[str, Any] = {}
    for name, spec, material in done:
        files: list[str] = []
        if material is not None and out is not None:
            from regdeploy.certs.files import write_bundle

            files = [str(p) for p in write_bundle(out, name, material)]
        hosts[name] = {
            "mode": spec.tls.mode,
            "action": _action(spec, material),
            "reason": material.reason if material and material.issued else None,
            "not_after": _not_after(material),
            "files": files,
            "warnings": tls_warnings(spec, material),
        }
    if as_json:
        emit_json({"ok": True, "changed": any(h["action"] == "issued" for h in hosts.values()),
                   "state_dir": str(ctx.state.root), "hosts": hosts})  # fmt: skip
        return
    for name, spec, material in done:
        host = hosts[name]
        _warn(name, host["warnings"])
        if material is None and spec.tls.mode == "csr":
            click.echo(f"{name}: csr: {_renew_elsewhere('csr', name)}")
            continue
        if material is None:
            click.echo(f"{name}: {spec.tls.mode}: no certificate files (nothing to generate)")
            continue
        why = f" ({host['reason']})" if host["reason"] else ""
        colour = "yellow" if host["action"] == "issued" else "green"
        click.secho(f"{name}: {host['action']}{why}: {_cert_line(material.server_chain)}", fg=colour)
        if host["files"]:
            click.echo(f"  wrote {', '.join(host['files'])}")
    click.echo(f"state: {ctx.state.root}")


def _action(spec: RegistrySpec, material: TlsMaterial | None) -> str:
    if material is None:
        return "awaiting-import" if spec.tls.mode == "csr" else "none"
    if material.issued:
        return "issued"
    return "checked" if spec.tls.mode in ("provided", "csr") else "kept"


def _not_after(material: TlsMaterial | None) -> str | None:
    from regdeploy import pki

    return None if material is None else pki.cert_info(material.server_chain).not_after.isoformat()


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
    from regdeploy.certs.show import HostCerts, host_certs, hosts_json
    from regdeploy.ops.fanout import fan_out
    from regdeploy.transport import open_transport

    ctx = _load(inventory, limit, connect_vars(connect_timeout, accept_new_host_keys))
    now = datetime.now(UTC)

    def one(item: tuple[str, Mapping[str, Any], RegistrySpec]) -> HostCerts:
        name, host_vars, spec = item

        def read_deployed(path: str) -> bytes | None:
            transport = open_transport(name, host_vars)
            try:
                return transport.read_file(path)
            finally:
                transport.close()

        reader = None if offline else read_deployed
        return host_certs(spec, ctx.sans(name, host_vars, spec), ctx.state, ctx.resolver, now, reader)

    results = fan_out(ctx.hosts, lambda h: h[0], one, forks)
    payload = hosts_json(results)
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
    from regdeploy.certs.issue import TlsIssuer
    from regdeploy.certs.notices import tls_warnings

    connect = connect_vars(connect_timeout, accept_new_host_keys)
    ctx = _load(inventory, limit, connect)
    issuer = TlsIssuer(ctx.state, ctx.resolver)
    renewed: dict[str, Any] = {}
    for name, host_vars, spec in ctx.hosts:
        sans = ctx.sans(name, host_vars, spec)
        # Only the modes where regdeploy signs can be renewed here; the others are only reported.
        issues = spec.tls.mode in ("selfsigned", "ca")
        material = issuer.material(spec, sans, rotate_keys=rotate_keys, force=force) if issues else None
        note = None if issues else _renew_elsewhere(spec.tls.mode, name)
        renewed[name] = {
            "mode": spec.tls.mode,
            "renewed": bool(material and material.issued),
            "reason": material.reason if material and material.issued else None,
            "not_after": _not_after(material),
            "note": note,
            "warnings": tls_warnings(spec, material),
        }
    ctx.state.commit()
    names = [n for n, r in renewed.items() if r["renewed"]]
    deploy = None
    if names and not no_deploy:
        deploy = _deploy(inventory, ":".join(names), forks, as_json, connect)
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


def _renew_elsewhere(mode: str, name: str) -> str:
    return {
        "provided": "tls.mode provided: replace the cert and key files, then run `regdeploy up`",
        "csr": f"tls.mode csr: `regdeploy certs csr --limit {name}`, sign, `regdeploy certs import`",
        "letsencrypt": "tls.mode letsencrypt: the registry renews its certificate itself",
        "none": "tls.mode none: no certificate",
    }[mode]


def _deploy(
    inventory: Path | None, pattern: str, forks: int, as_json: bool, connect: Mapping[str, Any]
) -> dict[str, Any]:
    """`up --limit PATTERN`, printed like `up` unless --json; returns up's JSON object."""
    from regdeploy.cli.output import print_up, up_json
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.run import outcomes, prepare, up_host

    run = prepare(inventory, pattern, connect)
    run.state.commit()

    def say(host: str, message: str) -> None:
        progress(f"[{host}] {run.masker.mask(message)}")

    results = outcomes(
        fan_out(run.jobs, lambda j: j.name, lambda j: up_host(j, False, False, False, say, run.masker), forks)
    )
    if not as_json:
        print_up(results, check=False, with_diff=False)
    return up_json(results)


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
    from regdeploy.certs.csr import make_host_csr
    from regdeploy.certs.files import make_dir, write_file

    del forks
    ctx = _load(inventory, limit)
    results = [
        make_host_csr(ctx.state, spec, ctx.sans(name, host_vars, spec), rotate_keys)
        for name, host_vars, spec in ctx.hosts
    ]
    ctx.state.commit()  # the keys first: a CSR on disk without its key would be useless
    make_dir(out, 0o755)
    hosts: dict[str, Any] = {}
    for r in results:
        path = out / f"{r.host}.csr"
        write_file(path, r.csr, 0o644)
        hosts[r.host] = {"csr": str(path), "sans": list(r.sans), "key": r.key_note}
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
    from regdeploy.certs.csr import import_chain

    ctx = _load(inventory, None)
    found = [h for h in ctx.hosts if h[0] == host]
    if not found:
        raise InputError(f"{ctx.inventory.source}: no registry host named {host!r}")
    name, host_vars, spec = found[0]
    try:
        data = chain.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {chain}: {exc.strerror}") from None
    result = import_chain(
        ctx.state, ctx.resolver, spec, ctx.sans(name, host_vars, spec), data, datetime.now(UTC)
    )
    ctx.state.commit()
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
@click.option("--remove", is_flag=True, help="Undo: remove the CA files regdeploy installed.")
@click.option("--registry", "registry_pattern", metavar="PATTERN",
              help="Which registries to trust (host pattern).  [default: all]")  # fmt: skip
@click.option("--certs-d", default="/etc/docker/certs.d", show_default=True, metavar="DIR",
              help="Docker's per-registry certificate directory on the clients.")  # fmt: skip
@click.option("--system", "system_store", is_flag=True,
              help="Also add the CA to the system trust store (this machine and local clients).")  # fmt: skip
def trust_command(inventory: Path | None, limit: str | None, forks: int, as_json: bool,
                  connect_timeout: float | None, accept_new_host_keys: bool, include_local: bool,
                  remove: bool, registry_pattern: str | None, certs_d: str,
                  system_store: bool) -> None:  # fmt: skip
    """Make Docker clients trust the registries' CA: CERTS_D/HOST:PORT/ca.crt.

    \b
    Clients are the hosts of the inventory group `clients` (narrowed with
    --limit) and, with --local, this machine. Each gets the CA of every
    registry (or --registry PATTERN) under every address clients may use:
    SANs with the registry's port, and tls.external_url. Docker reads these
    files on each connection: no restart, no insecure-registries.
    --remove deletes only files that hold the registry's CA.

    \b
    Examples:
      regdeploy certs trust --local                   # docker on this machine
      regdeploy certs trust --limit ci-runners        # some clients
      regdeploy certs trust --local --remove          # undo
    """
    from regdeploy.certs.lookup import trusted_ca

    connect = connect_vars(connect_timeout, accept_new_host_keys)
    ctx = _load(inventory, registry_pattern, connect)
    cas: dict[str, bytes] = {}
    for name, _, spec in ctx.hosts:
        found = trusted_ca(spec, ctx.state, ctx.resolver)
        if found.pem is None:
            if spec.tls.mode == "selfsigned":
                raise InputError(f"host '{name}': {found.note}")
            if not as_json:
                click.echo(f"{name}: skipped: {found.note}", err=True)
            continue
        cas[name] = found.pem
    clients = _clients(ctx.inventory, limit, include_local, connect)

    def items_for(client_local: bool) -> list[TrustItem]:
        from regdeploy.certs.trust import TrustItem, registry_addresses
        from regdeploy.transport.address import is_local

        items = []
        for name, host_vars, spec in ctx.hosts:
            if name in cas:
                same = client_local and is_local(name, host_vars)
                for address in registry_addresses(name, host_vars, spec, same):
                    items.append(TrustItem(name, address, cas[name]))
        return items

    def one(client: tuple[str, Mapping[str, Any] | None]) -> dict[str, Any]:
        return _trust_client(client, items_for, certs_d, remove, cas if system_store else None)

    from regdeploy.ops.fanout import fan_out

    results = fan_out(clients, lambda c: c[0], one, forks)
    hosts = {
        name: r if not isinstance(r, RegdeployError)
        else {"ok": False, "changed": False, "changes": [], "notes": [], "error": ctx.masker.mask(str(r))}
        for name, r in results.items()
    }  # fmt: skip
    payload = {"ok": all(h["ok"] for h in hosts.values()),
               "changed": any(h["changed"] for h in hosts.values()), "hosts": hosts}  # fmt: skip
    if as_json:
        emit_json(payload)
    else:
        _print_trust(hosts)
    sys.exit(EXIT_OK if payload["ok"] else EXIT_FAILED)


def _clients(
    inventory: Inventory, limit: str | None, include_local: bool, connect: Mapping[str, Any]
) -> list[tuple[str, Mapping[str, Any] | None]]:
    """(name, host vars) of each client machine; vars None for the control machine.

    Clients with ``ansible_connection: local`` are this machine: it appears once, so the same files
    are never written by two workers at once.
    """
    from regdeploy.transport.address import is_local

    group = set(inventory.groups.get("clients", ()))
    chosen: list[tuple[str, Mapping[str, Any] | None]] = []
    if limit is not None or group:
        candidates = inventory.select(limit) if limit is not None else list(inventory.hosts.values())
        chosen += [(h.name, {**h.vars, **connect}) for h in candidates if h.name in group]
    if include_local:
        chosen.append((CONTROL_MACHINE, None))
    here = [c for c in chosen if c[1] is None or is_local(c[0], c[1])]
    chosen = [c for c in chosen if c not in here[1:]]
    if not chosen:
        where = f" matching --limit {limit!r}" if limit else ""
        raise InputError(
            f"{inventory.source}: no client machine{where}: add hosts to an inventory group `clients`, "
            "or pass --local for this machine"
        )
    return chosen


def _trust_client(
    client: tuple[str, Mapping[str, Any] | None],
    items_for: Callable[[bool], list[TrustItem]],
    certs_d: str,
    remove: bool,
    system_cas: dict[str, bytes] | None,
) -> dict[str, Any]:
    from regdeploy.certs.trust import (
        ClientFiles,
        LocalFiles,
        TransportFiles,
        apply_system_trust,
        apply_trust,
        detect_system_store,
    )
    from regdeploy.transport import open_transport
    from regdeploy.transport.address import is_local

    name, host_vars = client
    local = host_vars is None or is_local(name, host_vars)
    transport = None
    files: ClientFiles
    if local:
        files = LocalFiles()
    else:
        assert host_vars is not None
        transport = open_transport(name, host_vars)
        files = TransportFiles(transport)
    try:
        changes, notes = apply_trust(files, certs_d, items_for(local), remove)
        if system_cas is not None:
            if not local:
                raise InputError(f"{name}: --system works on this machine and local clients only (for now)")
            store = detect_system_store()
            if store is None:
                notes.append("no system trust store tool found (update-ca-certificates, update-ca-trust)")
            else:
                changes += apply_system_trust(store, system_cas, remove)
    finally:
        if transport is not None:
            transport.close()
    return {
        "ok": True,
        "changed": bool(changes),
        "changes": [c.as_json() for c in changes],
        "notes": notes,
        "error": None,
    }


def _print_trust(hosts: dict[str, Any]) -> None:
    for name, h in hosts.items():
        if h["error"]:
            click.secho(f"{name}: FAILED: {h['error']}", fg="red", bold=True)
            continue
        if not h["changes"]:
            click.secho(f"{name}: ok, no changes", fg="green")
        else:
            click.secho(f"{name}: {len(h['changes'])} changed", fg="yellow")
            for c in h["changes"]:
                sign = "-" if c["action"] == "remove" else "+"
                click.echo(f"  {sign} {c['resource']}  {c['action']}: {c['reason']}")
        for note in h["notes"]:
            click.echo(f"  note: {note}")
