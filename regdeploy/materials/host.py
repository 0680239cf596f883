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

from regdeploy.certs.material import TlsMaterial
from regdeploy.errors import SpecError
from regdeploy.materials.htpasswd import HashCache, PasswordError
from regdeploy.materials.secrets import SecretRef, SecretResolver
from regdeploy.materials.state import StateStore
from regdeploy.spec.registry import EndpointSpec, RegistrySpec
from regdeploy.transport.address import client_address, host_port, is_local, registry_hostport

HASH_CACHE_KEY = "htpasswd/hashes.json"
HASH_KEY_KEY = "htpasswd/fingerprint.key"


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
class RelayMaterial:
    """The deployed relay's secrets: the token the registry presents to it, and each target's
    token or HMAC secret by target name. They reach the unit as 0600 files, never its environment."""

    inbound_token: str
    target_secrets: Mapping[str, str]


@dataclass(frozen=True)
class TokenMaterial:
    """Token auth: the key the built-in token server signs with and its self-signed certificate
    (the registry's rootcertbundle), each OIDC issuer's JWKS; or, with an external server, the
    bundle it signs with."""

    signing_key: bytes | None
    bundle: bytes  # what the registry trusts: the signing certificate, or the external server's
    realm: str  # where clients get tokens
    service: str  # the tokens' aud: the registry as clients name it
    issuer: str  # the tokens' iss
    jwks: tuple[bytes, ...] = ()
    reason: str | None = None  # why the signing key was made in this run


@dataclass(frozen=True)
class ProxyMaterial:
    """A pull-through cache's upstream credentials and the CA it trusts the upstream with (the
    user's ``ca``; regdeploy's own CA is always trusted too, for upstreams of the same inventory)."""

    name: str
    username: str | None
    password: str | None
    ca: bytes | None


TOKEN_KEY_KEY = "token/signing.key"
TOKEN_CERT_KEY = "token/signing.crt"
TOKEN_RENEW_DAYS = 30
TOKEN_ISSUER = "regdeploy-token"


def signing_due(cert: bytes) -> str | None:
    """Why the token signing certificate must be made anew now (TOKEN_RENEW_DAYS before expiry)."""
    from regdeploy import pki

    days = pki.cert_info(cert).days_left()
    return f"the token signing certificate expires in {days} days" if days < TOKEN_RENEW_DAYS else None


# The registry's notification endpoint for the deployed relay, and the header carrying its token.
RELAY_ENDPOINT = "regdeploy-relay"
RELAY_TOKEN_HEADER = "X-Relay-Token"


@dataclass(frozen=True)
class HostMaterials:
    http_secret: str
    users: tuple[UserEntry, ...]
    passwords: Mapping[str, str]  # user -> password, for probes and verify; never printed
    endpoints: tuple[ResolvedEndpoint, ...]
    tls: TlsMaterial | None
    relay: RelayMaterial | None = None
    token: TokenMaterial | None = None
    proxies: tuple[ProxyMaterial, ...] = ()
    storage: tuple[str, str] | None = None  # S3 access key and secret key
    redis_password: str | None = None


def host_sans(name: str, host_vars: Mapping[str, Any], spec: RegistrySpec) -> list[str]:
    """Every name and address clients may use for this host, in a stable order, deduplicated.

    The inventory name, ``ansible_host``, loopback names for the control machine, the host of
    ``tls.external_url`` and ``tls.sans``. The certificate must cover all of them.
    """
    sans: list[str] = [name]
    if host_vars.get("ansible_host"):
        sans.append(str(host_vars["ansible_host"]))
    if is_local(name, host_vars):  # this machine: clients here use its loopback names
        sans += ["localhost", "127.0.0.1"]
    if spec.tls.external_url:
        from urllib.parse import urlsplit

        sans.append(urlsplit(spec.tls.external_url).hostname or name)
    sans += spec.tls.sans
    if spec.cluster_view is not None:  # any replica may answer for the balancer or another replica
        sans += spec.cluster_view.sans
    out: list[str] = []
    for san in sans:
        norm = _normalise_san(san)
        if norm not in out:
            out.append(norm)
    return out


def _normalise_san(san: str) -> str:
    try:
        return str(ipaddress.ip_address(san.removeprefix("[").removesuffix("]")))
    except ValueError:
        return san.lower().rstrip(".")


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
        endpoints = [
            self._endpoint(e, f"{who}.notifications.endpoints[{i}]")
            for i, e in enumerate(spec.notifications.endpoints)
        ]
        relay = self._relay(spec, who)
        if relay is not None:
            endpoints.append(relay_endpoint(spec, relay))
        return HostMaterials(
            http_secret=self._resolver.resolve(spec.http_secret, f"{who}.http_secret"),
            users=tuple(users),
            passwords=passwords,
            endpoints=tuple(endpoints),
            tls=self._tls(spec, host_sans(spec.host, host_vars, spec)),
            relay=relay,
            token=self._token(spec, host_vars, who),
            proxies=tuple(self._proxy(spec, i, who) for i in range(len(spec.proxies))),
            storage=self._s3_keys(spec, who),
            redis_password=(
                None
                if spec.cache is None or spec.cache.password is None
                else self._resolver.resolve(spec.cache.password, f"{who}.cache.redis.password")
            ),
        )

    def _s3_keys(self, spec: RegistrySpec, who: str) -> tuple[str, str] | None:
        s3 = spec.storage.s3
        if s3 is None:
            return None
        return (
            self._resolver.resolve(s3.accesskey, f"{who}.storage.s3.accesskey"),
            self._resolver.resolve(s3.secretkey, f"{who}.storage.s3.secretkey"),
        )

    def _proxy(self, spec: RegistrySpec, i: int, who: str) -> ProxyMaterial:
        p = spec.proxies[i]
        where = f"{who}.proxies[{i}]"
        return ProxyMaterial(
            name=p.name,
            username=None if p.username is None else self._resolver.resolve(p.username, f"{where}.username"),
            password=None if p.password is None else self._resolver.resolve(p.password, f"{where}.password"),
            ca=None if p.ca is None else self._resolver.resolve(p.ca, f"{where}.ca").encode() + b"\n",
        )

    def _token(self, spec: RegistrySpec, host_vars: Mapping[str, Any], who: str) -> TokenMaterial | None:
        token = spec.auth.token
        if token is None:
            return None
        if token.server == "external":
            assert token.rootcertbundle and token.realm and token.service and token.issuer
            bundle = self._resolver.resolve(token.rootcertbundle, f"{who}.auth.token.rootcertbundle")
            return TokenMaterial(None, bundle.encode() + b"\n", token.realm, token.service, token.issuer)
        jwks = tuple(
            self._resolver.resolve(o.jwks, f"{who}.auth.token.oidc[{i}].jwks").encode()
            for i, o in enumerate(token.oidc)
        )
        key, cert, reason = self._signing_pair()
        # Clients reach the token server where they reach the registry, on its own port.
        host = client_address(spec.host, host_vars)
        if spec.tls.external_url:
            from urllib.parse import urlsplit

            host = urlsplit(spec.tls.external_url).hostname or host
        realm = f"{spec.scheme}://{host_port(host, token.port)}/token"
        service = registry_hostport(spec.host, host_vars, spec.port)
        return TokenMaterial(key, cert, realm, service, TOKEN_ISSUER, jwks, reason)

    def _signing_pair(self) -> tuple[bytes, bytes, str | None]:
        """The token signing key and certificate from the state dir, made (again) when missing or
        within TOKEN_RENEW_DAYS of expiry; both registry and token server restart to read new ones."""
        from regdeploy import pki
        from regdeploy.pki.build import make_signing_cert

        key = self._state.read(TOKEN_KEY_KEY)
        cert = self._state.read(TOKEN_CERT_KEY)
        reason = "no token signing key yet" if key is None or cert is None else signing_due(cert)
        if reason is not None:
            key = pki.generate_key("ecdsa-p256")
            cert = make_signing_cert(key, "regdeploy token signing")
            self._state.write(TOKEN_KEY_KEY, key)
            self._state.write(TOKEN_CERT_KEY, cert)
        assert key is not None and cert is not None
        return key, cert, reason

    def _relay(self, spec: RegistrySpec, who: str) -> RelayMaterial | None:
        if spec.relay is None:
            return None
        token = self._resolver.resolve(SecretRef("generated", f"relay/{spec.host}/inbound-token"), who)
        secrets: dict[str, str] = {}
        for i, target in enumerate(spec.relay.settings.targets):
            ref = target.token if target.type == "github" else target.secret
            if ref is not None:
                key = "token" if target.type == "github" else "secret"
                secrets[target.name] = self._resolver.resolve(ref, f"{who}.relay.targets[{i}].{key}")
        return RelayMaterial(token, secrets)

    def _endpoint(self, e: EndpointSpec, who: str) -> ResolvedEndpoint:
        headers = tuple((k, self._resolver.resolve(ref, f"{who}.headers.{k}")) for k, ref in e.headers)
        return ResolvedEndpoint(
            e.name, e.url, headers, e.timeout, e.threshold, e.backoff,
            e.ignoredmediatypes, e.ignore_mediatypes, e.ignore_actions, e.disabled,
        )  # fmt: skip

    def _tls(self, spec: RegistrySpec, sans: Sequence[str]) -> TlsMaterial | None:
        # The modes, checks and renewal rules live in regdeploy.certs (shared with `regdeploy certs`).
        from regdeploy.certs.issue import TlsIssuer

        return TlsIssuer(self._state, self._resolver).material(spec, sans)


def relay_endpoint(spec: RegistrySpec, relay: RelayMaterial) -> ResolvedEndpoint:
    """The registry's endpoint for its deployed relay: by name on the registry's network."""
    from regdeploy.webhooks.relay.config import DEFAULT_PORT

    return ResolvedEndpoint(
        name=RELAY_ENDPOINT,
        url=f"http://{spec.name}-relay:{DEFAULT_PORT}/events",
        headers=((RELAY_TOKEN_HEADER, relay.inbound_token),),
        timeout="5s", threshold=10, backoff="1s",
        ignoredmediatypes=(), ignore_mediatypes=(), ignore_actions=(), disabled=False,
    )  # fmt: skip


def _random_key() -> bytes:
    import secrets

    return secrets.token_bytes(32)
