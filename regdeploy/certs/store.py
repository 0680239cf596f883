"""Where a host's TLS material lives in the state store, and the record of why it was issued.

Every key here is written through ``StateStore`` (staged, then 0600 in a 0700 directory on commit).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from regdeploy.materials.state import StateStore

# The inventory's own CA (selfsigned mode), one for all hosts; read by issue and lookup.
CA_KEY = "ca/ca.key"
CA_CERT = "ca/ca.crt"

__all__ = ["CA_CERT", "CA_KEY", "HostKeys", "fingerprint", "record_reason", "recorded_reason"]


@dataclass(frozen=True)
class HostKeys:
    """State keys of one host's material."""

    host: str

    @property
    def key(self) -> str:
        return f"hosts/{self.host}/server.key"

    @property
    def cert(self) -> str:
        """The leaf regdeploy issued (selfsigned and ca modes)."""
        return f"hosts/{self.host}/server.crt"

    @property
    def reason(self) -> str:
        return f"hosts/{self.host}/server.reason.json"

    @property
    def csr(self) -> str:
        return f"hosts/{self.host}/server.csr"

    @property
    def next_key(self) -> str:
        """The key of a CSR whose signed certificate is not imported yet (csr mode, new key)."""
        return f"hosts/{self.host}/next.key"

    @property
    def imported(self) -> str:
        """The chain a CA signed for our CSR (csr mode). Kept apart from ``cert`` so that switching
        to csr mode never silently serves a certificate regdeploy issued itself."""
        return f"hosts/{self.host}/imported.crt"


def fingerprint(pem: bytes) -> str:
    return hashlib.sha256(pem).hexdigest()


def record_reason(state: StateStore, keys: HostKeys, cert: bytes, reason: str, now: datetime) -> None:
    """Remember why ``cert`` was issued, so a later run that deploys it can say why."""
    record = {"sha256": fingerprint(cert), "reason": reason, "issued": now.astimezone(UTC).isoformat()}
    state.write(keys.reason, json.dumps(record, indent=1).encode())


def recorded_reason(state: StateStore, keys: HostKeys, cert: bytes) -> str | None:
    """Why ``cert`` was issued, if it is the certificate the record is about."""
    raw = state.read(keys.reason)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None  # a damaged record only costs the explanation, never the run
    if not isinstance(record, dict) or record.get("sha256") != fingerprint(cert):
        return None
    reason = record.get("reason")
    return reason if isinstance(reason, str) else None
