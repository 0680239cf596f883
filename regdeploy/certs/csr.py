"""The csr workflow, for CAs that never hand out their key: a CSR per host, then the signed chain back.

The key never leaves the state store. A CSR for a new key keeps that key apart (``next.key``) until
its certificate is imported, so the certificate being served keeps working in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from regdeploy import pki
from regdeploy.certs.chain import anchor
from regdeploy.certs.issue import check_chain, key_type
from regdeploy.certs.store import HostKeys, record_reason
from regdeploy.errors import SpecError
from regdeploy.materials.secrets import SecretResolver
from regdeploy.materials.state import StateStore
from regdeploy.spec.registry import RegistrySpec


@dataclass(frozen=True)
class CsrResult:
    host: str
    csr: bytes
    sans: tuple[str, ...]
    key_note: str  # which key the CSR is for, in words


def _require_csr_mode(spec: RegistrySpec, command: str) -> None:
    if spec.tls.mode != "csr":
        raise SpecError(
            f"host '{spec.host}': registry.tls.mode is {spec.tls.mode!r}; `regdeploy certs {command}` is "
            "for mode csr (set registry.tls.mode: csr first)"
        )


def make_host_csr(
    state: StateStore, spec: RegistrySpec, sans: Sequence[str], rotate_key: bool = False
) -> CsrResult:
    """A CSR for the host's SANs; stages the key (and the CSR) in the state store."""
    _require_csr_mode(spec, "csr")
    keys = HostKeys(spec.host)
    current = state.read(keys.key)
    pending = state.read(keys.next_key)
    if pending is not None and pending != current and not rotate_key:
        # A CSR is out for signing already: the same key again, so either signed copy works.
        key, note = pending, "the pending key of the previous CSR (not imported yet)"
    elif rotate_key or current is None or key_type(current) != spec.tls.key_type:
        key = pki.generate_key(spec.tls.key_type)  # type: ignore[arg-type]  # the spec checked it
        state.write(keys.next_key, key)
        note = "a new key" + (" (--rotate-keys)" if rotate_key and current is not None else "")
    else:
        key, note = current, "the key in use"
    try:
        csr = pki.make_csr(key, sans)
    except pki.PkiError as exc:
        raise SpecError(f"host '{spec.host}': registry.tls: cannot make a CSR: {exc}") from None
    state.write(keys.csr, csr)
    return CsrResult(spec.host, csr, tuple(sans), note)


@dataclass(frozen=True)
class ImportResult:
    host: str
    info: pki.CertInfo
    new_key: bool  # the chain is for the key of the last CSR, which now replaces the key in use
    root_known: bool  # tls.ca_cert is set or the chain ends with its root: clients can be given it


def import_chain(
    state: StateStore,
    resolver: SecretResolver,
    spec: RegistrySpec,
    sans: Sequence[str],
    chain: bytes,
    now: datetime,
) -> ImportResult:
    """Check a signed chain against the host's keys, SANs and CA, then stage it for `up`.

    Refused (SpecError, nothing staged) unless it matches a key of ours and passes every check
    `up` applies, so an import that succeeds always deploys.
    """
    _require_csr_mode(spec, "import")
    who = f"host '{spec.host}': certs import"
    keys = HostKeys(spec.host)
    try:
        certs = pki.split_chain(chain)
    except pki.PkiError as exc:
        raise SpecError(f"{who}: {exc}") from None
    bundle = b"".join(certs)
    candidates = [(k, state.read(k)) for k in (keys.next_key, keys.key)]
    match = next((k for k, pem in candidates if pem is not None and pki.key_matches_cert(pem, bundle)), None)
    if match is None:
        if all(pem is None for _, pem in candidates):
            raise SpecError(f"{who}: no key for this host yet: run `regdeploy certs csr` first")
        raise SpecError(
            f"{who}: the certificate is not for this host's key (it matches neither the last CSR's key "
            "nor the key in use): was it signed from another CSR?"
        )
    key = state.read(match)
    assert key is not None
    ca_cert = None
    if spec.tls.ca_cert is not None:
        ca_cert = resolver.resolve_bytes(spec.tls.ca_cert, f"host '{spec.host}': registry.tls.ca_cert")
    problems = check_chain(bundle, key, ca_cert, sans, spec.tls.renew_before, now)
    if problems:
        raise SpecError(f"{who}: certificate refused: {'; '.join(problems)}")
    state.write(keys.imported, bundle)
    new_key = match == keys.next_key and key != state.read(keys.key)
    state.write(keys.key, key)
    record_reason(state, keys, bundle, "certificate imported (certs import)", now)
    root_known = anchor(bundle, ca_cert) is not None
    return ImportResult(spec.host, pki.cert_info(bundle), new_key, root_known)
