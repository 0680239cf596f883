"""Read-only look-ups of a host's current TLS material: nothing is issued, generated or staged.

``certs show`` and ``certs trust`` must not change the state store, so they read through these
instead of TlsIssuer (which creates whatever is missing).
"""

from __future__ import annotations

from dataclasses import dataclass

from regdeploy import pki
from regdeploy.certs.chain import anchor, served_chain
from regdeploy.certs.store import CA_CERT, HostKeys
from regdeploy.materials.secrets import SecretResolver
from regdeploy.materials.state import StateStore
from regdeploy.spec.registry import RegistrySpec


@dataclass(frozen=True)
class Found:
    pem: bytes | None
    source: str  # where it was (or would be) read: "state:ca/ca.crt", "file:/etc/org/ca.pem", ...
    note: str = ""  # why pem is None


def trusted_ca(spec: RegistrySpec, state: StateStore, resolver: SecretResolver) -> Found:
    """The CA certificate clients must trust to reach this registry, or None with the reason."""
    tls = spec.tls
    who = f"host '{spec.host}': registry.tls"
    if tls.mode == "none":
        return Found(None, "-", "plain HTTP (tls.mode none): nothing to trust")
    if tls.mode == "letsencrypt":
        return Found(None, "-", "Let's Encrypt: clients trust it through their system roots")
    if tls.mode == "selfsigned":
        pem = state.read(CA_CERT)
        note = "" if pem else "no CA yet: run `regdeploy certs generate` or `regdeploy up` first"
        return Found(pem, f"state:{CA_CERT}", note)
    if tls.ca_cert is not None:
        bundle = resolver.resolve_bytes(tls.ca_cert, f"{who}.ca_cert")
        return Found(pki.split_chain(bundle)[-1], tls.ca_cert.describe())
    chain = wanted_chain(spec, state, resolver)
    if chain.pem is None:
        return Found(None, chain.source, chain.note)
    root = anchor(chain.pem, None)
    if root is None:
        return Found(None, chain.source, "no root CA in the chain: clients use their system roots")
    return Found(root, f"{chain.source} (its root)")


def wanted_chain(spec: RegistrySpec, state: StateStore, resolver: SecretResolver) -> Found:
    """The server certificate (chain) `up` would deploy, as it stands now; None with the reason."""
    tls = spec.tls
    keys = HostKeys(spec.host)
    if tls.mode in ("none", "letsencrypt"):
        return Found(None, "-", "no certificate file (tls.mode " + tls.mode + ")")
    if tls.mode == "provided":
        assert tls.cert is not None  # the spec requires it
        given = resolver.resolve_bytes(tls.cert, f"host '{spec.host}': registry.tls.cert")
        return Found(given, tls.cert.describe())
    if tls.mode == "csr":
        imported = state.read(keys.imported)
        note = "" if imported else "nothing imported: `regdeploy certs csr`, sign, `regdeploy certs import`"
        return Found(imported, f"state:{keys.imported}", note)
    issued = state.read(keys.cert)
    if issued is None:
        note = "not issued yet: run `regdeploy certs generate` or `regdeploy up`"
        return Found(None, f"state:{keys.cert}", note)
    if tls.mode == "ca" and tls.ca_cert is not None:
        # The state holds the leaf; the host gets it with the organisation's intermediates.
        bundle = resolver.resolve_bytes(tls.ca_cert, f"host '{spec.host}': registry.tls.ca_cert")
        issued = served_chain(issued, bundle)
    return Found(issued, f"state:{keys.cert}")
