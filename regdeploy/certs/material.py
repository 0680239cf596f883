"""A host's TLS material as the registry gets it: the CA clients trust, the served chain, the key.

``TlsIssuer`` (certs/issue.py) produces it for each ``tls.mode``; ``MaterialsBuilder`` carries it in a
host's materials. It lives here, below both, so that neither has to import the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TlsMaterial:
    ca_cert: bytes  # the CA clients trust (certs.d's ca.crt, the health probe's anchor)
    server_chain: bytes  # leaf first, then intermediates
    server_key: bytes
    # Why the current server certificate was issued ("certificate expires in 3 days", "SANs miss
    # x", "CA changed"), in this run or the one that issued it; None for user-supplied material.
    # The plan shows it when the host's certificate differs from this one.
    reason: str | None
    issued: bool = False  # issued (or re-issued) in this run
    warnings: tuple[str, ...] = ()  # e.g. the CA expires soon; shown, never fatal
