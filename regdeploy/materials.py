"""Everything a host's files are made from: resolved secrets, bcrypt hashes, TLS material.

This is the only stage that reads secrets and the local state store. It runs for every targeted
host before any host is touched, so a missing variable or a bad certificate stops the whole run
with nothing changed anywhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from regdeploy.errors import InputError, SpecError
from regdeploy.htpasswd import HashCache, PasswordError
from regdeploy.secrets import SecretResolver
from regdeploy.spec import EndpointSpec, RegistrySpec
from regdeploy.state import StateStore

HASH_CACHE_KEY = "htpasswd/hashes.json"
HASH_KEY_KEY = "htpasswd/fingerprint.key"
CA_KEY_KEY = "ca/ca.key"
CA_CERT_KEY = "ca/ca.crt"


@dataclass(frozen=True)
class TlsMaterial:
    ca_cert: bytes
    server_chain: bytes
    server_key: bytes
    reason: str | None  # why the server certificate was (re)issued in this run, if it was


@dataclass(frozen=True)
class UserEntry:
    name: str
    hash: str


@dataclass(frozen=True)
class ResolvedEndpoint:
    name: str
    url: str
    headers: tuple[tuple[str, str], ...]
    timeout: str
    threshold: int
    backoff: str
    ignoredmediatypes: tuple[str, ...]
    ignore_mediatypes: tuple[str, ...]
    ignore_actions: tuple[str, ...]
    disabled: bool


@dataclass(frozen=True)
class HostMaterials:
    http_secret: str
    users: tuple[UserEntry, ...]
    passwords: Mapping[str, str]  # user -> password, for probes and verify; never printed
    endpoints: tuple[ResolvedEndpoint, ...]
    tls: TlsMaterial | None


def host_sans(name: str, host_vars: Mapping[str, Any], spec: RegistrySpec) -> list[str]:
    """Every name and address clients may use for this host, in a stable order, deduplicated."""
    sans: list[str] = [name]
    if host_vars.get("ansible_host"):
        sans.append(str(host_vars["ansible_host"]))
    if host_vars.get("ansible_connection") == "local" or name in ("localhost", "127.0.0.1"):
        sans += ["localhost", "127.0.0.1"]
    sans += spec.tls.sans
    out: list[str] = []
    for san in sans:
        norm = _normalise_san(san)
        if norm not in out:
            out.append(norm)
    return out


def _normalise_san(san: str) -> str:
    try:
        return str(ipaddress.ip_address(san))
    except ValueError:
        return san.lower()


class MaterialsBuilder:
    """Builds HostMaterials for each host of one run, sharing the CA and the hash cache."""

    def __init__(self, state: StateStore, resolver: SecretResolver) -> None:
        self._state = state
        self._resolver = resolver
        key = state.get_or_create(HASH_KEY_KEY, _random_key)
        self._hashes = HashCache.from_json(key, state.read(HASH_CACHE_KEY))

    def build(self, spec: RegistrySpec, host_vars: Mapping[str, Any]) -> HostMaterials:
        who = f"host '{spec.host}': registry"
        passwords: dict[str, str] = {}
        users: list[UserEntry] = []
        for i, user in enumerate(spec.auth.users):
            password = self._resolver.resolve(user.password, f"{who}.auth.users[{i}].password")
            passwords[user.name] = password
            if user.disabled:
                continue
            try:
                users.append(
                    UserEntry(user.name, self._hashes.hash_for(user.name, password, spec.auth.bcrypt_cost))
                )
            except PasswordError as exc:
                raise SpecError(f"{who}.auth.users[{i}].password: {exc}") from None
        if self._hashes.changed:
            self._state.write(HASH_CACHE_KEY, self._hashes.to_json())
        return HostMaterials(
            http_secret=self._resolver.resolve(spec.http_secret, f"{who}.http_secret"),
            users=tuple(users),
            passwords=passwords,
            endpoints=tuple(
                self._endpoint(e, f"{who}.notifications.endpoints[{i}]")
                for i, e in enumerate(spec.notifications.endpoints)
            ),
            tls=self._tls(spec, host_sans(spec.host, host_vars, spec)),
        )

    def _endpoint(self, e: EndpointSpec, who: str) -> ResolvedEndpoint:
        headers = tuple((k, self._resolver.resolve(ref, f"{who}.headers.{k}")) for k, ref in e.headers)
        return ResolvedEndpoint(
            e.name, e.url, headers, e.timeout, e.threshold, e.backoff,
            e.ignoredmediatypes, e.ignore_mediatypes, e.ignore_actions, e.disabled,
        )  # fmt: skip

    def _tls(self, spec: RegistrySpec, sans: Sequence[str]) -> TlsMaterial | None:
        from regdeploy import pki

        tls = spec.tls
        who = f"host '{spec.host}': registry.tls"
        if tls.mode == "none":
            return None
        if tls.mode == "provided":
            assert tls.cert is not None and tls.key is not None
            chain = self._resolver.resolve_bytes(tls.cert, f"{who}.cert")
            key = self._resolver.resolve_bytes(tls.key, f"{who}.key")
            certs = pki.split_chain(chain)
            if not certs:
                raise SpecError(f"{who}.cert: no PEM certificate found")
            ca = certs[-1]
            problems = pki.validation_problems(chain, key, None, sans, tls.renew_before)
            if problems:
                raise SpecError(f"{who}: provided certificate refused: {'; '.join(problems)}")
            return TlsMaterial(ca, chain, key, None)
        if tls.mode == "ca":
            assert tls.ca_cert is not None and tls.ca_key is not None
            ca_cert = self._resolver.resolve_bytes(tls.ca_cert, f"{who}.ca_cert")
            ca_key = self._resolver.resolve_bytes(tls.ca_key, f"{who}.ca_key")
            passphrase = (
                self._resolver.resolve(tls.ca_key_passphrase, f"{who}.ca_key_passphrase").encode()
                if tls.ca_key_passphrase
                else None
            )
            if not pki.key_matches_cert(ca_key, ca_cert, passphrase):
                raise SpecError(f"{who}.ca_key: does not match ca_cert")
        else:
            ca_key = self._state.get_or_create(CA_KEY_KEY, lambda: pki.generate_key("ecdsa-p256"))
            ca_cert = self._state.get_or_create(CA_CERT_KEY, lambda: pki.make_ca(ca_key, days=tls.ca_days))
            passphrase = None
        return self._server_cert(spec, sans, ca_cert, ca_key, passphrase)

    def _server_cert(
        self, spec: RegistrySpec, sans: Sequence[str], ca_cert: bytes, ca_key: bytes, passphrase: bytes | None
    ) -> TlsMaterial:
        from regdeploy import pki

        base = f"hosts/{spec.host}"
        key = self._state.read(f"{base}/server.key")
        if key is None or _key_type(key) != spec.tls.key_type:
            key = pki.generate_key(spec.tls.key_type)  # type: ignore[arg-type]
            self._state.write(f"{base}/server.key", key)
        cert = self._state.read(f"{base}/server.crt")
        reason = pki.reissue_reason(cert, key, ca_cert, sans, spec.tls.renew_before)
        if reason is not None:
            try:
                cert = pki.issue_server_cert(
                    ca_cert, ca_key, key, sans, days=spec.tls.days, ca_key_passphrase=passphrase
                )
            except pki.PkiError as exc:
                raise InputError(
                    f"host '{spec.host}': registry.tls: cannot issue certificate: {exc}"
                ) from None
            self._state.write(f"{base}/server.crt", cert)
        assert cert is not None
        return TlsMaterial(ca_cert, cert, key, reason)


def _random_key() -> bytes:
    import secrets

    return secrets.token_bytes(32)


def _key_type(pem: bytes) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from regdeploy import pki

    key = pki.load_private_key(pem)
    if isinstance(key, rsa.RSAPrivateKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}.get(key.curve.name, key.curve.name)
    return type(key).__name__
