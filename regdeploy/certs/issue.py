"""A host's TLS material for each ``tls.mode``: issued, renewed, imported or user-provided, always checked.

``TlsIssuer.material`` is what ``up`` (through MaterialsBuilder), ``certs generate`` and ``certs renew``
call. Issued keys and certificates are staged in the state store; nothing reaches a disk before the
caller commits it. Every refusal is a SpecError naming the host and the setting, never key material.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from regdeploy import pki
from regdeploy.certs.chain import anchor, served_chain
from regdeploy.certs.material import TlsMaterial
from regdeploy.certs.store import CA_CERT, CA_KEY, HostKeys, record_reason, recorded_reason
from regdeploy.errors import SpecError
from regdeploy.materials.secrets import SecretResolver
from regdeploy.materials.state import StateStore
from regdeploy.pki._base import utc_now
from regdeploy.spec.registry import RegistrySpec

# A CA lives for years and is trusted by every client: replacing it takes planning, so its end is
# announced half a year ahead (twice the renewal window when that is longer).
CA_WARN_DAYS = 180
_TIME_REASONS = ("expires in", "expired on", "not valid until")


def plain_reason(reason: str) -> str:
    """pki's reissue reasons as a plan line reads best: "CA changed", "certificate expires in 3 days"."""
    if reason == "issued by another CA":
        return "CA changed"
    if reason.startswith(_TIME_REASONS):
        return f"certificate {reason}"
    return reason


def ca_warn_days(renew_before: int) -> int:
    return max(CA_WARN_DAYS, 2 * renew_before)


def ca_expiry_warning(ca_pem: bytes, label: str, renew_before: int, now: datetime) -> str | None:
    info = pki.cert_info(ca_pem)
    days = info.days_left(now)
    if days >= ca_warn_days(renew_before):
        return None
    when = info.not_after.strftime("%Y-%m-%d")
    if days < 0:
        return f"{label} expired on {when}: no certificate it signed is trusted any more"
    return (
        f"{label} expires on {when} (in {days} days): server certificates cannot outlive it; "
        "replace it and re-run `regdeploy certs trust` before then (see docs/tls.md)"
    )


class TlsIssuer:
    """Produces TlsMaterial per host; hosts of one run share the CA through the state store."""

    def __init__(self, state: StateStore, resolver: SecretResolver, now: datetime | None = None) -> None:
        self._state = state
        self._resolver = resolver
        self._now = now

    def now(self) -> datetime:
        return utc_now(self._now)

    def material(
        self, spec: RegistrySpec, sans: Sequence[str], *, rotate_keys: bool = False, force: bool = False
    ) -> TlsMaterial | None:
        """The host's material, or None when the registry holds no certificate files (none, letsencrypt).

        ``rotate_keys`` and ``force`` only apply to modes where regdeploy issues (selfsigned, ca).
        """
        mode = spec.tls.mode
        if mode in ("none", "letsencrypt"):
            return None
        if mode == "provided":
            return self._provided(spec, sans)
        if mode == "csr":
            return self._imported(spec, sans)
        if mode == "ca":
            ca_bundle, ca_key, passphrase = self._org_ca(spec)
            label = "the organisation CA (registry.tls.ca_cert)"
        else:
            ca_bundle = self.own_ca(spec.tls.ca_days)
            own_key = self._state.read(CA_KEY)
            assert own_key is not None  # own_ca() created it
            ca_key, passphrase = own_key, None
            label = "regdeploy's CA"
        return self._issue(spec, sans, ca_bundle, ca_key, passphrase, label, rotate_keys, force)

    # -- the CAs --------------------------------------------------------------------------------

    def own_ca(self, ca_days: int) -> bytes:
        """The inventory's own CA (selfsigned mode), created on first use. One for all hosts."""
        key = self._state.get_or_create(CA_KEY, lambda: pki.generate_key("ecdsa-p256"))
        return self._state.get_or_create(CA_CERT, lambda: pki.make_ca(key, days=ca_days, now=self._now))

    def _org_ca(self, spec: RegistrySpec) -> tuple[bytes, bytes, bytes | None]:
        tls = spec.tls
        who = f"host '{spec.host}': registry.tls"
        assert tls.ca_cert is not None and tls.ca_key is not None  # the spec requires both in ca mode
        ca_cert = self._resolver.resolve_bytes(tls.ca_cert, f"{who}.ca_cert")
        ca_key = self._resolver.resolve_bytes(tls.ca_key, f"{who}.ca_key")
        passphrase = (
            self._resolver.resolve(tls.ca_key_passphrase, f"{who}.ca_key_passphrase").encode()
            if tls.ca_key_passphrase
            else None
        )
        try:
            pki.split_chain(ca_cert)
            matches = pki.key_matches_cert(ca_key, ca_cert, passphrase)
        except pki.PkiError as exc:
            hint = " (set registry.tls.ca_key_passphrase)" if "no passphrase" in str(exc) else ""
            raise SpecError(f"{who}: organisation CA: {exc}{hint}") from None
        if not matches:
            raise SpecError(f"{who}.ca_key: does not match the first certificate of ca_cert")
        return ca_cert, ca_key, passphrase

    # -- issuing (selfsigned, ca) ---------------------------------------------------------------

    def _issue(
        self,
        spec: RegistrySpec,
        sans: Sequence[str],
        ca_bundle: bytes,
        ca_key: bytes,
        passphrase: bytes | None,
        ca_label: str,
        rotate_keys: bool,
        force: bool,
    ) -> TlsMaterial:
        tls = spec.tls
        keys = HostKeys(spec.host)
        now = self.now()
        warnings = [w for w in [ca_expiry_warning(ca_bundle, ca_label, tls.renew_before, now)] if w]

        key = self._state.read(keys.key)
        why_new_key = None
        if key is None:
            why_new_key = "no private key yet"
        elif rotate_keys:
            why_new_key = "key rotated (--rotate-keys)"
        else:
            current = key_type(key)
            if current != tls.key_type:
                why_new_key = f"key type {current} -> {tls.key_type}"
        if why_new_key is not None:
            key = pki.generate_key(tls.key_type)  # type: ignore[arg-type]  # the spec checked the value
            self._state.write(keys.key, key)
        assert key is not None

        cert = self._state.read(keys.cert)
        found = pki.reissue_reason(cert, key, ca_bundle, sans, tls.renew_before, now)
        reason = why_new_key if why_new_key and cert is not None else found
        if reason is None and force:
            reason = "renewal forced (--force)"
        # The CA's own end caps every certificate it signs: renewing again would change nothing
        # but restart the registry on every run. Keep it and say why.
        if (
            reason is not None and found is not None and found.startswith("expires in") and cert is not None
            and not force and pki.cert_info(cert).not_after >= pki.cert_info(ca_bundle).not_after
        ):  # fmt: skip
            warnings.append(
                f"server certificate {found}, but it already ends with {ca_label}: renewing cannot "
                "extend it; replace the CA"
            )
            reason = why_new_key
        if reason is None:
            assert cert is not None  # reissue_reason gives a reason when there is none
            return TlsMaterial(
                ca_cert=pki.split_chain(ca_bundle)[-1],
                server_chain=served_chain(cert, ca_bundle),
                server_key=key,
                reason=recorded_reason(self._state, keys, cert),
                warnings=tuple(warnings),
            )
        reason = plain_reason(reason)
        try:
            cert = pki.issue_server_cert(
                ca_bundle, ca_key, key, sans, days=tls.days, now=now, ca_key_passphrase=passphrase
            )
        except pki.PkiError as exc:
            raise SpecError(f"host '{spec.host}': registry.tls: cannot issue a certificate: {exc}") from None
        self._state.write(keys.cert, cert)
        record_reason(self._state, keys, cert, reason, now)
        return TlsMaterial(
            ca_cert=pki.split_chain(ca_bundle)[-1],
            server_chain=served_chain(cert, ca_bundle),
            server_key=key,
            reason=reason,
            issued=True,
            warnings=tuple(warnings),
        )

    # -- user material (provided, csr) ------------------------------------------------------------

    def _provided(self, spec: RegistrySpec, sans: Sequence[str]) -> TlsMaterial:
        tls = spec.tls
        who = f"host '{spec.host}': registry.tls"
        assert tls.cert is not None and tls.key is not None  # the spec requires both in provided mode
        chain = self._resolver.resolve_bytes(tls.cert, f"{who}.cert")
        key = self._resolver.resolve_bytes(tls.key, f"{who}.key")
        return self._checked(spec, sans, chain, key, f"{who}: provided certificate ({tls.cert.describe()})")

    def _imported(self, spec: RegistrySpec, sans: Sequence[str]) -> TlsMaterial:
        keys = HostKeys(spec.host)
        who = f"host '{spec.host}': registry.tls (mode csr)"
        chain = self._state.read(keys.imported)
        key = self._state.read(keys.key)
        if chain is None or key is None:
            raise SpecError(
                f"{who}: no signed certificate imported yet: run `regdeploy certs csr`, have the CSR "
                f"signed, then `regdeploy certs import {spec.host} CHAIN.pem`"
            )
        reason = recorded_reason(self._state, keys, chain)
        return self._checked(spec, sans, chain, key, f"{who}: imported certificate", reason)

    def _checked(
        self,
        spec: RegistrySpec,
        sans: Sequence[str],
        chain: bytes,
        key: bytes,
        what: str,
        reason: str | None = None,
    ) -> TlsMaterial:
        tls = spec.tls
        ca_cert = None
        if tls.ca_cert is not None:
            ca_cert = self._resolver.resolve_bytes(tls.ca_cert, f"host '{spec.host}': registry.tls.ca_cert")
        problems = check_chain(chain, key, ca_cert, sans, tls.renew_before, self.now())
        if problems:
            raise SpecError(f"{what} refused: {'; '.join(problems)}")
        root = anchor(chain, ca_cert)
        certs = pki.split_chain(chain)
        warnings = []
        if root is not None:
            label = "the CA of registry.tls.ca_cert" if ca_cert is not None else "the chain's root CA"
            warning = ca_expiry_warning(root, label, tls.renew_before, self.now())
            warnings += [warning] if warning else []
        # With no CA to trust (a publicly trusted chain) clients use their system roots; ca.crt then
        # holds the chain's last certificate so that the files a host gets are the same in every mode.
        return TlsMaterial(
            ca_cert=root if root is not None else certs[-1],
            server_chain=b"".join(certs),
            server_key=key,
            reason=reason,
            warnings=tuple(warnings),
        )


def check_chain(
    chain: bytes, key: bytes, ca_cert: bytes | None, sans: Sequence[str], renew_before: int, now: datetime
) -> list[str]:
    """Every problem of a user-supplied chain and key, [] when it can be deployed.

    The chain must lead to ``ca_cert`` when given, else to the self-signed root it ends with (if
    any): a bundle whose parts come from different CAs is caught either way.
    """
    try:
        root = anchor(chain, ca_cert)
    except pki.PkiError as exc:
        return [str(exc)]
    return pki.validation_problems(chain, key, root, sans, renew_before, now)


def key_type(pem: bytes) -> str:
    """The key type in tls.key_type spelling ("ecdsa-p256", "rsa-2048"), or "unreadable"."""
    from regdeploy.pki.keys import key_type_name

    try:
        return key_type_name(pki.load_private_key(pem).public_key())
    except pki.PkiError:
        return "unreadable"
