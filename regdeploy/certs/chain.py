"""Certificate bundles: which certificate clients trust, and which ones the server sends."""

from __future__ import annotations

from regdeploy import pki


def is_self_signed_ca(pem: bytes) -> bool:
    info = pki.cert_info(pem)
    return info.is_ca and info.issuer == info.subject and pki.issued_by(pem, pem)


def anchor(bundle: bytes, ca_cert: bytes | None) -> bytes | None:
    """The CA clients must trust for ``bundle`` (server certificate first).

    The configured ``ca_cert``'s root when there is one; else a self-signed CA at the end of the
    bundle; else None: the chain ends at a CA the clients are assumed to trust already (public).
    """
    if ca_cert is not None:
        return pki.split_chain(ca_cert)[-1]
    certs = pki.split_chain(bundle)
    if len(certs) > 1 and is_self_signed_ca(certs[-1]):
        return certs[-1]
    return None


def served_chain(leaf: bytes, ca_bundle: bytes) -> bytes:
    """The leaf plus the intermediates of ``ca_bundle`` (issuing CA first): what the server sends.

    Self-signed roots are left out: a client trusts a root by having it, never because a server
    sent it, so sending it only costs bytes on every handshake.
    """
    return leaf + b"".join(c for c in pki.split_chain(ca_bundle) if not is_self_signed_ca(c))
