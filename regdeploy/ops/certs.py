"""The ``certs`` use cases: issue, show, renew (and deploy), csr, import, trust.

Each function loads the targeted hosts, does the work and commits the state directory at the point
where a refusal can no longer leave it half-changed; the command line only prints what they return.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regdeploy.errors import InputError, RegdeployError

if TYPE_CHECKING:
    from regdeploy.certs.csr import ImportResult
    from regdeploy.certs.material import TlsMaterial
    from regdeploy.certs.show import HostCerts
    from regdeploy.certs.trust import TrustItem
    from regdeploy.clients.runtimes import ClientPaths
    from regdeploy.inventory import Inventory
    from regdeploy.materials.secrets import Masker, SecretResolver
    from regdeploy.materials.state import StateStore
    from regdeploy.ops.client_machines import Client
    from regdeploy.ops.run import HostOutcome, Progress
    from regdeploy.spec.registry import RegistrySpec

HostSpec = tuple[str, Mapping[str, Any], "RegistrySpec"]


@dataclass
class CertHosts:
    """The targeted registry hosts and what certificate commands read and write for them."""

    inventory: Inventory
    hosts: list[HostSpec]
    state: StateStore
    masker: Masker
    resolver: SecretResolver

    def sans(self, name: str, host_vars: Mapping[str, Any], spec: RegistrySpec) -> list[str]:
        from regdeploy.materials.host import host_sans

        return host_sans(name, host_vars, spec)


def load_hosts(
    inventory: Path | None, limit: str | None, connect: Mapping[str, Any] | None = None
) -> CertHosts:
    from regdeploy.materials.secrets import Masker, SecretResolver
    from regdeploy.materials.state import StateStore
    from regdeploy.ops.run import load_specs

    inv, hosts = load_specs(inventory, limit, connect)
    masker = Masker()
    state = StateStore.beside(inv.base_dir)
    return CertHosts(inv, hosts, state, masker, SecretResolver(state, masker))


def renew_elsewhere(mode: str, name: str) -> str:
    """How a certificate regdeploy does not sign is renewed."""
    return {
        "provided": "tls.mode provided: replace the cert and key files, then run `regdeploy up`",
        "csr": f"tls.mode csr: `regdeploy certs csr --limit {name}`, sign, `regdeploy certs import`",
        "letsencrypt": "tls.mode letsencrypt: the registry renews its certificate itself",
        "none": "tls.mode none: no certificate",
    }[mode]


def _action(spec: RegistrySpec, material: TlsMaterial | None) -> str:
    if material is None:
        return "awaiting-import" if spec.tls.mode == "csr" else "none"
    if material.issued:
        return "issued"
    return "checked" if spec.tls.mode in ("provided", "csr") else "kept"


def _not_after(material: TlsMaterial | None) -> str | None:
    from regdeploy import pki

    return None if material is None else pki.cert_info(material.server_chain).not_after.isoformat()


# --- generate --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    state_dir: Path
    done: list[tuple[str, RegistrySpec, TlsMaterial | None]]  # in inventory order
    hosts: dict[str, dict[str, Any]]  # name -> its JSON object

    def as_json(self) -> dict[str, Any]:
        changed = any(h["action"] == "issued" for h in self.hosts.values())
        return {"ok": True, "changed": changed, "state_dir": str(self.state_dir), "hosts": self.hosts}


def generate(inventory: Path | None, limit: str | None, out: Path | None) -> Generated:
    """Issue (or check) every host's certificate, then save them all; with *out*, write each bundle."""
    from regdeploy.certs.issue import TlsIssuer
    from regdeploy.certs.notices import tls_warnings
    from regdeploy.certs.store import HostKeys

    ctx = load_hosts(inventory, limit)
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
    return Generated(ctx.state.root, done, hosts)


# --- show ------------------------------------------------------------------------------------------


def show(
    inventory: Path | None, limit: str | None, connect: Mapping[str, Any], offline: bool, forks: int
) -> dict[str, Any]:
    """``certs show --json``'s object: each host's certificates, read from the state, the inventory and
    (unless *offline*) the host itself. Changes nothing."""
    from regdeploy.certs.show import host_certs, hosts_json
    from regdeploy.ops.fanout import fan_out
    from regdeploy.transport import open_transport

    ctx = load_hosts(inventory, limit, connect)
    now = datetime.now(UTC)

    def one(item: HostSpec) -> HostCerts:
        name, host_vars, spec = item

        def read_deployed(path: str) -> bytes | None:
            transport = open_transport(name, host_vars)
            try:
                return transport.read_file(path)
            finally:
                transport.close()

        reader = None if offline else read_deployed
        return host_certs(spec, ctx.sans(name, host_vars, spec), ctx.state, ctx.resolver, now, reader)

    return hosts_json(fan_out(ctx.hosts, lambda h: h[0], one, forks))


# --- renew -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Renewed:
    certificates: dict[str, dict[str, Any]]  # name -> its JSON object
    names: list[str]  # the hosts renewed in this run
    deployed: dict[str, HostOutcome] | None  # `up --limit NAMES`, when it ran


def renew(
    inventory: Path | None,
    limit: str | None,
    connect: Mapping[str, Any],
    rotate_keys: bool,
    force: bool,
    deploy: bool,
    forks: int,
    progress: Progress,
) -> Renewed:
    """Renew what is due (selfsigned and ca modes), save it, then deploy the renewed hosts like
    ``up --limit THEM`` unless not *deploy*."""
    from regdeploy.certs.issue import TlsIssuer
    from regdeploy.certs.notices import tls_warnings

    ctx = load_hosts(inventory, limit, connect)
    issuer = TlsIssuer(ctx.state, ctx.resolver)
    renewed: dict[str, Any] = {}
    for name, host_vars, spec in ctx.hosts:
        sans = ctx.sans(name, host_vars, spec)
        # Only the modes where regdeploy signs can be renewed here; the others are only reported.
        issues = spec.tls.mode in ("selfsigned", "ca")
        material = issuer.material(spec, sans, rotate_keys=rotate_keys, force=force) if issues else None
        note = None if issues else renew_elsewhere(spec.tls.mode, name)
        renewed[name] = {
            "mode": spec.tls.mode,
            "renewed": bool(material and material.issued),
            "reason": material.reason if material and material.issued else None,
            "not_after": _not_after(material),
            "note": note,
            "warnings": tls_warnings(spec, material),
        }
        signing = _renew_token_signing(ctx.state, spec, force or rotate_keys)
        if signing is not None:
            renewed[name].update(renewed=True, token_signing=signing)
            renewed[name]["reason"] = renewed[name]["reason"] or signing
    ctx.state.commit()
    names = [n for n, r in renewed.items() if r["renewed"]]
    deployed = None
    if names and deploy:
        deployed = _up(inventory, ":".join(names), forks, connect, progress)
    return Renewed(renewed, names, deployed)


def _renew_token_signing(state: StateStore, spec: RegistrySpec, now: bool) -> str | None:
    """With the built-in token server, a new signing key when asked (*now*) or when its
    certificate is due; the next `up` makes and deploys it (registry and token server restart)."""
    from regdeploy.materials.host import TOKEN_CERT_KEY, TOKEN_KEY_KEY, signing_due

    if spec.auth.builtin_token is None:
        return None
    cert = state.read(TOKEN_CERT_KEY)
    due = cert is not None and signing_due(cert) is not None
    if not (now or due):
        return None
    state.delete(TOKEN_KEY_KEY)
    state.delete(TOKEN_CERT_KEY)
    return "token signing key renewed" + (" (due)" if due and not now else "")


def _up(
    inventory: Path | None, pattern: str, forks: int, connect: Mapping[str, Any], progress: Progress
) -> dict[str, HostOutcome]:
    """``up --limit PATTERN``. The renewed certificates are in the state directory now, so the
    inventory is prepared afresh: its hosts' materials must be built from them."""
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.run import outcomes, prepare, up_host

    run = prepare(inventory, pattern, connect)
    run.state.commit()

    def say(host: str, message: str) -> None:
        progress(host, run.masker.mask(message))

    return outcomes(
        fan_out(run.jobs, lambda j: j.name, lambda j: up_host(j, False, False, False, say, run.masker), forks)
    )


# --- csr and import --------------------------------------------------------------------------------


def write_csrs(inventory: Path | None, limit: str | None, out: Path, rotate_keys: bool) -> dict[str, Any]:
    """Write OUT/HOST.csr for each host (tls.mode csr); name -> {csr, sans, key}."""
    from regdeploy.certs.csr import make_host_csr
    from regdeploy.certs.files import make_dir, write_file

    ctx = load_hosts(inventory, limit)
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
    return hosts


def import_signed(inventory: Path | None, host: str, chain: Path) -> tuple[str, ImportResult]:
    """Check the signed *chain* for *host* (tls.mode csr) and store it; (host name, what was imported)."""
    from regdeploy.certs.csr import import_chain

    ctx = load_hosts(inventory, None)
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
    return name, result


# --- trust -----------------------------------------------------------------------------------------


def trust(
    inventory: Path | None,
    limit: str | None,
    connect: Mapping[str, Any],
    include_local: bool,
    remove: bool,
    registry_pattern: str | None,
    certs_d: str,
    system_store: bool,
    forks: int,
    skipped: Callable[[str, str], None] | None = None,
    runtime: str | None = None,
    configure_containerd: bool = False,
    root: str | None = None,
) -> dict[str, Any]:
    """Install (or *remove*) the CA of each registry (*registry_pattern*) on each client machine, for
    each runtime (*runtime*: ``--runtime``, else the ones detected on each client); the ``certs trust
    --json`` object. *skipped* hears of each registry with no CA to install, and why. *root*: the
    clients' files are under it (a chroot, an image's filesystem)."""
    from regdeploy.certs.lookup import trusted_ca
    from regdeploy.clients.runtimes import ClientPaths, parse_runtimes
    from regdeploy.ops.client_machines import client_machines, failed
    from regdeploy.ops.fanout import fan_out

    chosen = parse_runtimes(runtime)
    ctx = load_hosts(inventory, registry_pattern, connect)
    cas: dict[str, bytes] = {}
    for name, _, spec in ctx.hosts:
        found = trusted_ca(spec, ctx.state, ctx.resolver)
        if found.pem is None:
            if spec.tls.mode == "selfsigned":
                raise InputError(f"host '{name}': {found.note}")
            if skipped is not None:
                skipped(name, found.note)
            continue
        cas[name] = found.pem
    clients = client_machines(ctx.inventory, limit, include_local, connect)
    paths = ClientPaths(docker_certs_d=certs_d)

    def items_for(client_local: bool) -> list[TrustItem]:
        from regdeploy.certs.trust import TrustItem, trusted_addresses
        from regdeploy.transport.address import is_local

        items = []
        for name, host_vars, spec in ctx.hosts:
            if name in cas:
                same = client_local and is_local(name, host_vars)
                for address in trusted_addresses(name, host_vars, spec, same):
                    items.append(TrustItem(name, address, cas[name]))
        return items

    def one(client: Client) -> dict[str, Any]:
        return _trust_client(client, items_for, paths, remove, cas if system_store else None,
                             chosen, configure_containerd, root)  # fmt: skip

    results = fan_out(clients, lambda c: c[0], one, forks)
    hosts = {name: r if not isinstance(r, RegdeployError) else failed(ctx.masker.mask, r)
             for name, r in results.items()}  # fmt: skip
    return {"ok": all(h["ok"] for h in hosts.values()),
            "changed": any(h["changed"] for h in hosts.values()), "hosts": hosts}  # fmt: skip


def _trust_client(
    client: Client,
    items_for: Callable[[bool], list[TrustItem]],
    paths: ClientPaths,
    remove: bool,
    system_cas: dict[str, bytes] | None,
    chosen: tuple[str, ...] | None,
    configure_containerd: bool,
    root: str | None,
) -> dict[str, Any]:
    from regdeploy.certs.trust import apply_system_trust, detect_system_store
    from regdeploy.clients.trust import apply_runtime_trust
    from regdeploy.ops.client_machines import NO_RUNTIME, client_files, is_here, runtimes_on

    local = is_here(client)
    if system_cas is not None and not local:
        raise InputError(f"{client[0]}: --system works on this machine and local clients only (for now)")
    with client_files(client, root) as files:
        runtimes = runtimes_on(files, chosen, remove)
        outcome = apply_runtime_trust(files, runtimes, items_for(local), remove, paths, configure_containerd)
        if not runtimes:
            outcome.notes.append(NO_RUNTIME)
    if system_cas is not None:
        store = detect_system_store()
        if store is None:
            outcome.notes.append("no system trust store tool found (update-ca-certificates, update-ca-trust)")
        else:
            outcome.changes += apply_system_trust(store, system_cas, remove)
    return outcome.as_json()
