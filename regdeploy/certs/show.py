"""``certs show``: what each host's certificates say and whether they still fit. Read-only."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from regdeploy import pki
from regdeploy.certs.issue import ca_warn_days
from regdeploy.certs.lookup import Found, trusted_ca, wanted_chain
from regdeploy.certs.notices import tls_warnings
from regdeploy.errors import RegdeployError
from regdeploy.materials.secrets import SecretResolver
from regdeploy.materials.state import StateStore
from regdeploy.spec.registry import RegistrySpec

# Statuses that make `certs show` exit 1: the certificate cannot be served as it is.
BAD_STATUSES = frozenset(
    {"expired", "not-yet-valid", "other-ca", "sans-missing", "weak", "missing", "unreadable"}
)
_WEAK_HASHES = ("sha1", "md5")


@dataclass(frozen=True)
class CertView:
    role: str  # "server" or "ca"
    source: str  # "state:hosts/x/server.crt", "file:/path", "deployed:/etc/regdeploy/certs/server.crt"
    status: str  # ok, renew-due, expiring, outdated, not-deployed, unknown, or one of BAD_STATUSES
    detail: str = ""
    info: pki.CertInfo | None = None
    now: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        info = self.info
        return {
            "role": self.role,
            "source": self.source,
            "subject": info.subject if info else None,
            "sans": list(info.sans) if info else [],
            "issuer": info.issuer if info else None,
            "key_type": info.key_type if info else None,
            "not_after": info.not_after.isoformat() if info else None,
            "days_left": info.days_left(self.now) if info else None,
            "sha256": info.sha256_fingerprint if info else None,
            "status": self.status,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class HostCerts:
    mode: str
    views: tuple[CertView, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not any(v.status in BAD_STATUSES for v in self.views)


def _leads_to(chain: Sequence[bytes], ca: bytes) -> bool:
    """Whether the leaf reaches ``ca`` through the bundle's certificates (any order)."""
    current, pool = chain[0], list(chain[1:])
    for _ in range(len(chain)):
        if pki.issued_by(current, ca):
            return True
        issuer = next((c for c in pool if pki.issued_by(current, c)), None)
        if issuer is None:
            return False
        pool.remove(issuer)
        current = issuer
    return False


def server_status(
    chain_pem: bytes, ca: bytes | None, sans: Sequence[str], renew_before: int, now: datetime
) -> tuple[str, str, pki.CertInfo | None]:
    """(status, detail, info) of a server certificate chain, the most serious problem first."""
    try:
        chain = pki.split_chain(chain_pem)
        info = pki.cert_info(chain[0])
    except pki.PkiError as exc:
        return "unreadable", str(exc), None
    days = info.days_left(now)
    if info.not_after <= now:
        return "expired", f"expired on {info.not_after:%Y-%m-%d}", info
    if info.not_before > now:
        return "not-yet-valid", f"valid from {info.not_before:%Y-%m-%d %H:%M} UTC", info
    if ca is not None and not _leads_to(chain, ca):
        return "other-ca", "not issued by the CA clients trust for this host", info
    missing = pki.sans_cover(chain[0], list(sans))
    if missing:
        return "sans-missing", f"SANs miss {', '.join(missing)}", info
    if info.signature_hash in _WEAK_HASHES or _small_rsa(info.key_type):
        return "weak", f"signature {info.signature_hash}, key {info.key_type}", info
    if info.not_after - now < timedelta(days=renew_before):
        return "renew-due", f"expires in {days} days (renew_before {renew_before})", info
    return "ok", f"{days} days left", info


def _small_rsa(key_type: str) -> bool:
    bits = key_type.removeprefix("rsa-")
    return key_type.startswith("rsa-") and bits.isdigit() and int(bits) < 2048


def ca_status(ca_pem: bytes, renew_before: int, now: datetime) -> tuple[str, str, pki.CertInfo | None]:
    try:
        info = pki.cert_info(ca_pem)
    except pki.PkiError as exc:
        return "unreadable", str(exc), None
    days = info.days_left(now)
    if info.not_after <= now:
        return "expired", f"expired on {info.not_after:%Y-%m-%d}", info
    if days < ca_warn_days(renew_before):
        return "expiring", f"expires in {days} days: plan its replacement", info
    return "ok", f"{days} days left", info


def host_certs(
    spec: RegistrySpec,
    sans: Sequence[str],
    state: StateStore,
    resolver: SecretResolver,
    now: datetime,
    read_deployed: Callable[[str], bytes | None] | None,
) -> HostCerts:
    """The CA, the certificate `up` would deploy, and (with ``read_deployed``) the one deployed."""
    tls = spec.tls
    warnings = tls_warnings(spec, None)
    if tls.mode in ("none", "letsencrypt"):
        if tls.mode == "letsencrypt":
            warnings.append("the registry obtains and renews its certificate itself (Let's Encrypt)")
        return HostCerts(tls.mode, (), tuple(warnings))
    views: list[CertView] = []
    ca = trusted_ca(spec, state, resolver)
    if ca.pem is not None:
        status, detail, info = ca_status(ca.pem, tls.renew_before, now)
        views.append(CertView("ca", ca.source, status, detail, info, now))
        if status != "ok":
            warnings.append(f"CA: {detail}")
    elif tls.mode != "csr" and tls.mode != "provided":
        views.append(CertView("ca", ca.source, "missing", ca.note))
    wanted = wanted_chain(spec, state, resolver)
    views.append(_server_view(wanted, ca.pem, sans, tls.renew_before, now))
    if read_deployed is not None:
        path = f"{spec.config_dir}/certs/server.crt"
        try:
            deployed = read_deployed(path)
        except RegdeployError as exc:
            views.append(CertView("server", f"deployed:{path}", "unknown", f"cannot read it: {exc}"))
        else:
            views.append(_deployed_view(path, deployed, wanted.pem, ca.pem, sans, tls.renew_before, now))
    return HostCerts(tls.mode, tuple(views), tuple(warnings))


def _server_view(
    found: Found, ca: bytes | None, sans: Sequence[str], renew_before: int, now: datetime
) -> CertView:
    if found.pem is None:
        return CertView("server", found.source, "missing", found.note)
    status, detail, info = server_status(found.pem, ca, sans, renew_before, now)
    return CertView("server", found.source, status, detail, info, now)


def _deployed_view(
    path: str,
    deployed: bytes | None,
    wanted: bytes | None,
    ca: bytes | None,
    sans: Sequence[str],
    renew_before: int,
    now: datetime,
) -> CertView:
    source = f"deployed:{path}"
    if deployed is None:
        return CertView("server", source, "not-deployed", "run `regdeploy up`")
    status, detail, info = server_status(deployed, ca, sans, renew_before, now)
    if status in ("ok", "renew-due") and wanted is not None and info is not None:
        try:
            same = pki.cert_info(wanted).sha256_fingerprint == info.sha256_fingerprint
        except pki.PkiError:
            same = False
        if not same:
            status, detail = "outdated", f"{detail}; a newer certificate waits: run `regdeploy up`"
    return CertView("server", source, status, detail, info, now)


def hosts_json(results: Mapping[str, HostCerts | RegdeployError]) -> dict[str, Any]:
    hosts: dict[str, Any] = {}
    for name, r in results.items():
        if isinstance(r, RegdeployError):
            hosts[name] = {"ok": False, "mode": None, "certificates": [], "warnings": [], "error": str(r)}
        else:
            hosts[name] = {
                "ok": r.ok,
                "mode": r.mode,
                "certificates": [v.as_json() for v in r.views],
                "warnings": list(r.warnings),
                "error": None,
            }
    return {"ok": all(h["ok"] for h in hosts.values()), "hosts": hosts}
