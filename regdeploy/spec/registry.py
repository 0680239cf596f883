"""``RegistrySpec``: the typed, validated form of a host's ``registry:`` mapping.

Every key is listed here with its default; an unknown key, a wrong type or a bad value is a
``SpecError`` naming the file that set it, the host and the key path (with the closest known key).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regdeploy.inventory import unevaluated
from regdeploy.materials.secrets import SecretRef, secret_ref
from regdeploy.spec import validate as v
from regdeploy.spec.cluster import ClusterView, LbSpec, parse_lb
from regdeploy.spec.gc import GcSpec, parse_gc
from regdeploy.spec.metrics import MetricsSpec, check_debug_port, parse_metrics
from regdeploy.spec.proxy import ProxySpec, parse_proxies
from regdeploy.spec.retention import RetentionRule, parse_retention
from regdeploy.spec.run import REGISTRY_RUN, SIDECAR_RUN, RunSpec, parse_run
from regdeploy.spec.storage import STORAGE_KEYS, RedisSpec, StorageSpec, parse_cache, parse_storage
from regdeploy.spec.token import AUTH_MODES, TokenSpec, parse_token
from regdeploy.webhooks.relay.config import RelaySettings, parse_settings

TLS_MODES = ("selfsigned", "ca", "provided", "csr", "letsencrypt", "none")
KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096")
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
ACTIONS = ("push", "pull", "mount", "delete")
LOG_LEVELS = ("error", "warn", "info", "debug")
CONTAINER_NAME_RE = v.CONTAINER_NAME_RE
# htpasswd lines are NAME:HASH; the registry splits on the first ':' and trims nothing.
USER_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}"
GENERATED_HTTP_SECRET = SecretRef("generated", "http-secret")
IMAGE_RE = v.IMAGE_RE


@dataclass(frozen=True)
class LetsEncryptSpec:
    """The registry's built-in ACME client (``http.tls.letsencrypt``): it obtains and renews on its own."""

    email: str
    hosts: tuple[str, ...]
    # Relative to the registry's data dir: the only directory the container can write and that
    # outlives it (config_dir is mounted read-only). Losing the cache means re-issuing at start.
    cachefile: str = "letsencrypt.json"


@dataclass(frozen=True)
class TlsSpec:
    mode: str = "selfsigned"  # selfsigned | ca | provided | csr | letsencrypt | none
    sans: tuple[str, ...] = ()
    key_type: str = "ecdsa-p256"
    days: int = 397
    ca_days: int = 3650
    renew_before: int = 30
    insecure: bool = False
    # ca: the signing CA (a bundle: issuing CA first, up to its root). provided/csr: optional, the CA
    # clients trust; the chain must lead to it.
    ca_cert: SecretRef | None = None
    ca_key: SecretRef | None = None
    ca_key_passphrase: SecretRef | None = None
    cert: SecretRef | None = None
    key: SecretRef | None = None
    # The URL clients use ("https://reg.example.com" or "reg.example.com:5443"), normalised to
    # scheme://host[:port]: its host joins the SANs and `certs trust` installs the CA for it.
    external_url: str | None = None
    letsencrypt: LetsEncryptSpec | None = None


@dataclass(frozen=True)
class UserSpec:
    name: str
    password: SecretRef  # kind "generated" when the inventory gives none
    disabled: bool = False


@dataclass(frozen=True)
class AuthSpec:
    users: tuple[UserSpec, ...]
    bcrypt_cost: int = 10
    realm: str = "regdeploy"
    mode: str = "htpasswd"  # htpasswd | token
    token: TokenSpec | None = None  # set when mode is token

    @property
    def builtin_token(self) -> TokenSpec | None:
        """The token server regdeploy runs, when it runs one."""
        return self.token if self.token is not None and self.token.server == "builtin" else None


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    url: str
    headers: tuple[tuple[str, SecretRef], ...] = ()
    timeout: str = "1s"
    threshold: int = 10
    backoff: str = "1s"
    ignoredmediatypes: tuple[str, ...] = ()
    ignore_mediatypes: tuple[str, ...] = ()
    ignore_actions: tuple[str, ...] = ()
    disabled: bool = False


@dataclass(frozen=True)
class NotificationsSpec:
    endpoints: tuple[EndpointSpec, ...] = ()
    includereferences: bool = True


@dataclass(frozen=True)
class RelaySpec:
    """``registry.relay``: the webhook relay, deployed as the unit ``<name>-relay``."""

    settings: RelaySettings
    run: RunSpec = SIDECAR_RUN


@dataclass(frozen=True)
class RegistrySpec:
    host: str
    name: str = "registry"
    image: str = "registry:2"
    version: int = 2
    port: int = 5000
    bind: str = "0.0.0.0"
    config_dir: str = "/etc/regdeploy"
    data_dir: str = "/var/lib/regdeploy"
    restart: str = "unless-stopped"
    templates_dir: str | None = None
    log_level: str = "info"
    delete_enabled: bool = True
    readonly: bool = False
    debug_port: int | None = None
    health_timeout: float = 30.0
    http_secret: SecretRef = GENERATED_HTTP_SECRET
    tls: TlsSpec = TlsSpec()
    auth: AuthSpec = AuthSpec(users=(UserSpec("admin", SecretRef("generated", "users/admin")),))
    notifications: NotificationsSpec = NotificationsSpec()
    run: RunSpec = REGISTRY_RUN
    relay: RelaySpec | None = None
    sidecar_image: str | None = None  # None: the image `regdeploy image build --sidecar` makes
    proxies: tuple[ProxySpec, ...] = ()
    retention: tuple[RetentionRule, ...] = ()
    metrics: MetricsSpec | None = None
    storage: StorageSpec = StorageSpec()  # noqa: RUF009 (frozen: one shared default is fine)
    cache: RedisSpec | None = None  # registry.cache.redis; None: in-memory (one host) or none (cluster)
    cluster: str | None = None
    serial: int = 1  # replicas of the cluster replaced at a time by `up`
    serves: bool = True  # False: a host that only runs a load balancer (registry_lb)
    lb: LbSpec | None = None  # registry_lb: a balancer unit on this host
    cluster_view: ClusterView | None = None  # set by spec.cluster.resolve
    gc: GcSpec | None = None  # registry.gc: a cron schedule on the host

    @property
    def redis_here(self) -> bool:
        """Whether this host runs the cluster's redis unit."""
        return self.cache is not None and self.cache.deploy_on == self.host

    @property
    def network(self) -> str:
        """The private network a registry's units share (they reach each other by name)."""
        return f"{self.name}-net"

    @property
    def scheme(self) -> str:
        return "http" if self.tls.mode == "none" else "https"


_TOP_KEYS = (
    "name", "image", "image_source", "version", "port", "bind", "config_dir", "data_dir", "restart",
    "templates_dir",
    "log_level", "storage", "debug", "health_timeout", "http_secret", "tls", "auth", "notifications",
    "run", "relay", "sidecar_image", "proxies", "retention", "metrics", "cache", "cluster", "serial", "gc",
)  # fmt: skip


def parse_spec(
    host: str, raw: Any, origins: Mapping[str, str] | None = None, source: str = "inventory"
) -> RegistrySpec:
    """Validate a host's merged ``registry`` mapping into a RegistrySpec (pure)."""
    where = v.Where(host, "registry", origins or {}, source)
    for path, reason in unevaluated.find(raw, "registry"):
        v.Where(host, path, origins or {}, source).fail(reason)
    data = v.mapping(raw, where, _TOP_KEYS)
    d = RegistrySpec(host=host)

    def get(key: str, default: Any) -> Any:
        value = data.get(key)
        return default if value is None else value

    if data.get("image_source") is not None:  # auto | pull | ship; read by regdeploy.image.ship
        v.choice(data["image_source"], where.child("image_source"), ("auto", "pull", "ship"))
    image = v.string(get("image", d.image), where.child("image"), IMAGE_RE, "expected an image reference")
    version = _version(data.get("version"), image, where.child("version"))
    storage = v.mapping(data.get("storage"), where.child("storage"), STORAGE_KEYS)
    debug = v.mapping(data.get("debug"), where.child("debug"), ("port",))
    spec = RegistrySpec(
        host=host,
        name=v.string(
            get("name", d.name), where.child("name"), CONTAINER_NAME_RE, "use letters, digits, _ . -"
        ),
        image=image,
        version=version,
        port=v.port(get("port", d.port), where.child("port")),
        bind=v.ip_address(get("bind", d.bind), where.child("bind")),
        config_dir=v.absolute_path(get("config_dir", d.config_dir), where.child("config_dir")),
        data_dir=v.absolute_path(get("data_dir", d.data_dir), where.child("data_dir")),
        restart=v.choice(get("restart", d.restart), where.child("restart"), RESTART_POLICIES),
        templates_dir=(
            None
            if data.get("templates_dir") is None
            else v.absolute_path(data["templates_dir"], where.child("templates_dir"))
        ),
        log_level=v.choice(get("log_level", d.log_level), where.child("log_level"), LOG_LEVELS),
        delete_enabled=v.boolean(storage.get("delete", True), where.child("storage").child("delete")),
        readonly=v.boolean(storage.get("readonly", False), where.child("storage").child("readonly")),
        debug_port=None
        if debug.get("port") is None
        else v.port(debug["port"], where.child("debug").child("port")),
        health_timeout=v.duration_seconds(
            v.duration(get("health_timeout", "30s"), where.child("health_timeout"))
        ),
        http_secret=secret_ref(data.get("http_secret"), where.child("http_secret"), "http-secret"),
        tls=_tls(data.get("tls"), where.child("tls")),
        auth=_auth(data.get("auth"), where.child("auth")),
        notifications=_notifications(data.get("notifications"), where.child("notifications")),
        run=parse_run(data.get("run"), where.child("run"), REGISTRY_RUN),
        proxies=parse_proxies(data.get("proxies"), where.child("proxies"), version),
        retention=parse_retention(data.get("retention"), where.child("retention")),
        relay=_relay(data.get("relay"), where.child("relay")),
        sidecar_image=(
            None
            if data.get("sidecar_image") is None
            else v.string(
                data["sidecar_image"], where.child("sidecar_image"), IMAGE_RE, "expected an image reference"
            )
        ),
    )
    spec = dataclasses.replace(
        spec,
        storage=parse_storage(
            {k: x for k, x in storage.items() if k in ("s3", "redirect")}, where.child("storage")
        ),
        cache=parse_cache(data.get("cache"), where.child("cache")),
        cluster=None if data.get("cluster") is None else v.string(
            data["cluster"], where.child("cluster"), CONTAINER_NAME_RE, "letters, digits, _ . -"),
        serial=v.integer(data.get("serial", 1), where.child("serial"), 1, 100),
        gc=parse_gc(data.get("gc"), where.child("gc")),
    )  # fmt: skip
    if spec.gc is not None and (spec.cluster is not None or spec.cache is not None or spec.readonly):
        why = (
            "a cluster's replicas share storage and must all be read-only: schedule `regdeploy gc` on the "
            "control machine instead" if spec.cluster is not None
            else "a redis cache must be flushed after gc: schedule `regdeploy gc` on the control machine"
            if spec.cache is not None else "storage.readonly is true: there is nothing to collect safely"
        )
        where.child("gc").child("schedule").fail(f"cannot run on the host: {why}")
    redis = spec.cache
    if redis is not None and redis.deployed and spec.cluster is None and redis.deploy_on != host:
        where.child("cache").child("redis").child("deploy_on").fail(
            f"names {redis.deploy_on!r}, but this registry is in no cluster: deploy redis on this host "
            f"({host!r}), or set registry.cluster on the replicas that share it"
        )
    if spec.relay is not None and any(e.name == "regdeploy-relay" for e in spec.notifications.endpoints):
        where.child("notifications").child("endpoints").fail(
            "the endpoint name 'regdeploy-relay' is the deployed relay's (registry.relay): rename yours"
        )
    if data.get("metrics") is not None:
        headers = any(e.headers for e in spec.notifications.endpoints) or spec.relay is not None
        metrics = parse_metrics(data["metrics"], where.child("metrics"), secret_headers=headers)
        check_debug_port(metrics, spec.debug_port, where.child("metrics"))
        spec = dataclasses.replace(spec, metrics=metrics)
    taken: dict[int | None, str] = {spec.port: "registry.port", spec.debug_port: "registry.debug.port"}
    token = spec.auth.builtin_token
    if token is not None:
        if token.port in taken:
            where.child("auth").child("token").child("port").fail(
                f"{token.port} is {taken[token.port]} already: the token server needs a port of its own"
            )
        taken[token.port] = "registry.auth.token.port"
    if spec.metrics is not None and spec.metrics.port != spec.debug_port:
        if spec.metrics.port in taken:
            where.child("metrics").child("port").fail(
                f"{spec.metrics.port} is {taken[spec.metrics.port]} already"
            )
        taken[spec.metrics.port] = "registry.metrics.port"
    if spec.cache is not None and spec.cache.deployed and spec.cache.deploy_on == host:
        if spec.cache.port in taken:
            where.child("cache").child("redis").child("port").fail(
                f"{spec.cache.port} is {taken[spec.cache.port]} already"
            )
        taken[spec.cache.port] = "registry.cache.redis.port"
    for i, proxy in enumerate(spec.proxies):
        if proxy.port in taken:
            where.child("proxies").child(i).child("port").fail(
                f"{proxy.port} is {taken[proxy.port]} already: each proxy needs a port of its own"
            )
    if spec.debug_port is not None and spec.debug_port == spec.port:
        where.child("debug").child("port").fail(f"must differ from registry.port ({spec.port})")
    return spec


def parse_host(
    host: str,
    host_vars: Mapping[str, Any],
    origins: Mapping[str, str] | None = None,
    source: str = "inventory",
) -> RegistrySpec:
    """A host's spec from its ``registry`` and ``registry_lb`` variables (at least one is set).

    A host with ``registry_lb`` alone runs only the balancer: its spec serves no registry, and
    ``spec.cluster.resolve`` gives it the cluster's TLS and users."""
    lb = None
    if host_vars.get("registry_lb") is not None:
        lb = parse_lb(host_vars["registry_lb"], v.Where(host, "registry_lb", origins or {}, source))
    if "registry" in host_vars:
        spec = parse_spec(host, host_vars.get("registry"), origins, source)
        if lb is not None:
            where = v.Where(host, "registry_lb", origins or {}, source)
            if lb.name == spec.name:
                where.child("name").fail(f"{lb.name!r} is registry.name already: the balancer needs its own")
            used = {spec.port: "registry.port", spec.debug_port: "registry.debug.port"}
            if spec.metrics is not None:
                used[spec.metrics.port] = "registry.metrics.port"
            if spec.auth.builtin_token is not None:
                used[spec.auth.builtin_token.port] = "registry.auth.token.port"
            if spec.cache is not None and spec.cache.deploy_on == host:
                used[spec.cache.port] = "registry.cache.redis.port"
            used.update({p.port: f"registry.proxies[{i}].port" for i, p in enumerate(spec.proxies)})
            if lb.port in used:
                where.child("port").fail(f"{lb.port} is {used[lb.port]} already: the balancer needs its own")
        return spec if lb is None else dataclasses.replace(spec, lb=lb)
    assert lb is not None
    return RegistrySpec(host=host, name=lb.name, port=lb.port, bind=lb.bind, config_dir=lb.config_dir,
                        data_dir=lb.config_dir, serves=False, lb=lb)  # fmt: skip


def _relay(raw: Any, where: v.Where) -> RelaySpec | None:
    if raw is None:
        return None
    settings = parse_settings(raw, f"{where.source()}: host '{where.host}'", where.path)
    run_raw = raw.get("run") if isinstance(raw, Mapping) else None
    return RelaySpec(settings, parse_run(run_raw, where.child("run"), SIDECAR_RUN))


def _version(raw: Any, image: str, where: v.Where) -> int:
    if raw is not None:
        return v.integer(raw, where, 2, 3)
    tag = image.rsplit("/", 1)[-1].partition("@")[0].partition(":")[2]
    match = re.match(r"v?(\d+)", tag)
    if match and match.group(1) in ("2", "3"):
        return int(match.group(1))
    if match:
        where.fail(f"cannot tell the registry version from image tag {tag!r}: set registry.version to 2 or 3")
    return 2  # untagged or named tags ("latest"): 2.x is what registry:latest has long been


# Which modes each mode-specific key belongs to: a key set for another mode is almost always a
# forgotten `mode:` line, and ignoring it would silently deploy a different certificate.
_TLS_KEY_MODES = {
    "ca_cert": ("ca", "provided", "csr"),
    "ca_key": ("ca",),
    "ca_key_passphrase": ("ca",),
    "cert": ("provided",),
    "key": ("provided",),
    "letsencrypt": ("letsencrypt",),
}


def _tls(raw: Any, where: v.Where) -> TlsSpec:
    keys = ("mode", "sans", "key_type", "days", "ca_days", "renew_before", "insecure",
            "ca_cert", "ca_key", "ca_key_passphrase", "cert", "key", "external_url",
            "letsencrypt")  # fmt: skip
    data = v.mapping(raw, where, keys)
    d = TlsSpec()
    mode = v.choice(data.get("mode", d.mode), where.child("mode"), TLS_MODES)
    for key, modes in _TLS_KEY_MODES.items():
        if data.get(key) is not None and mode not in modes:
            where.child(key).fail(
                f"is only used when tls.mode is {' or '.join(repr(m) for m in modes)} (mode is {mode!r}); "
                "set the mode, or remove the key (null overrides a group's value)"
            )
    sans = v.string_list(data.get("sans"), where.child("sans"))
    for i, san in enumerate(sans):
        _san(san, where.child("sans").child(i))
    tls = TlsSpec(
        mode=mode,
        sans=sans,
        key_type=v.choice(data.get("key_type", d.key_type), where.child("key_type"), KEY_TYPES),
        days=v.integer(data.get("days", d.days), where.child("days"), 1, 825),
        ca_days=v.integer(data.get("ca_days", d.ca_days), where.child("ca_days"), 30, 36500),
        renew_before=v.integer(data.get("renew_before", d.renew_before), where.child("renew_before"), 0, 365),
        insecure=v.boolean(data.get("insecure", False), where.child("insecure")),
        ca_cert=_optional_ref(data, "ca_cert", where),
        ca_key=_optional_ref(data, "ca_key", where),
        ca_key_passphrase=_optional_ref(data, "ca_key_passphrase", where),
        cert=_optional_ref(data, "cert", where),
        key=_optional_ref(data, "key", where),
        external_url=(
            None
            if data.get("external_url") is None
            else _external_url(data["external_url"], where.child("external_url"), mode)
        ),
        letsencrypt=(
            _letsencrypt(data.get("letsencrypt"), where.child("letsencrypt"))
            if mode == "letsencrypt"
            else None
        ),
    )
    if tls.renew_before >= tls.days:
        where.child("renew_before").fail(f"must be less than tls.days ({tls.days})")
    if mode == "none" and not tls.insecure:
        where.child("mode").fail("'none' serves plain HTTP: set tls.insecure: true to confirm")
    required = {"ca": ("ca_cert", "ca_key"), "provided": ("cert", "key")}.get(mode, ())
    for key in required:
        if data.get(key) is None:
            where.child(key).fail(f"is required when tls.mode is {mode!r}")
    if tls.letsencrypt is not None and tls.external_url is not None:
        from urllib.parse import urlsplit

        host = (urlsplit(tls.external_url).hostname or "").lower()
        if host not in tls.letsencrypt.hosts:
            where.child("letsencrypt").child("hosts").fail(
                f"must include {host!r}, the host of tls.external_url: Let's Encrypt certifies only these"
            )
    return tls


def _san(raw: str, where: v.Where) -> None:
    from regdeploy.pki import PkiError
    from regdeploy.pki.build import parse_san

    try:
        parse_san(raw)
    except PkiError as exc:
        where.fail(str(exc))


def _external_url(raw: Any, where: v.Where, mode: str) -> str:
    from urllib.parse import urlsplit

    text = v.string(raw, where)
    parts = urlsplit(text if "://" in text else f"https://{text}")
    try:
        port = parts.port
    except ValueError:
        where.fail(f"invalid port in {text!r}")
    wanted = "http" if mode == "none" else "https"
    if parts.scheme != wanted:
        where.fail(f"scheme must be {wanted} with tls.mode {mode!r}, got {text!r}")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        where.fail(f"expected {wanted}://HOST[:PORT] (no path, query or user), got {text!r}")
    _san(parts.hostname, where)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname.lower()
    return f"{wanted}://{host}" + (f":{port}" if port is not None else "")


def _letsencrypt(raw: Any, where: v.Where) -> LetsEncryptSpec:
    if raw is None:
        where.fail("is required when tls.mode is 'letsencrypt' (email and hosts)")
    data = v.mapping(raw, where, ("email", "hosts", "cachefile"))
    email = v.string(data.get("email"), where.child("email"), r"[^@\s]+@[^@\s]+\.[^@\s]+",
                     "expected an e-mail address (Let's Encrypt sends expiry notices there)")  # fmt: skip
    hosts = v.string_list(data.get("hosts"), where.child("hosts"))
    if not hosts:
        where.child("hosts").fail("needs at least one public DNS name")
    for i, host in enumerate(hosts):
        # ACME's challenges prove control of a public DNS name: no IPs, wildcards or local names.
        if not re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", host.lower()):
            where.child("hosts").child(i).fail(
                f"{host!r} is not a public DNS name (Let's Encrypt certifies no IP, wildcard or local name)"
            )
    cachefile = v.string(data.get("cachefile", LetsEncryptSpec.cachefile), where.child("cachefile"))
    if cachefile.startswith("/") or ".." in cachefile.split("/"):
        where.child("cachefile").fail(
            "must be a path relative to data_dir: the container can write nowhere else"
        )
    return LetsEncryptSpec(email=email, hosts=tuple(h.lower() for h in hosts), cachefile=cachefile)


def _optional_ref(data: Mapping[str, Any], key: str, where: v.Where) -> SecretRef | None:
    if data.get(key) is None:
        return None
    return secret_ref(data[key], where.child(key), None)


def _auth(raw: Any, where: v.Where) -> AuthSpec:
    data = v.mapping(raw, where, ("mode", "users", "bcrypt_cost", "realm", "token"))
    default = AuthSpec(users=RegistrySpec.auth.users)
    mode = v.choice(data.get("mode", "htpasswd"), where.child("mode"), AUTH_MODES)
    if data.get("token") is not None and mode != "token":
        where.child("token").fail("is only used when auth.mode is 'token' (mode is 'htpasswd'): set the mode")
    if data.get("users") is None:
        users = default.users
    else:
        items = v.sequence(data["users"], where.child("users"))
        if not items:
            where.child("users").fail("needs at least one user (the registry would refuse everyone)")
        users = tuple(_user(item, where.child("users").child(i)) for i, item in enumerate(items))
    seen: set[str] = set()
    for i, user in enumerate(users):
        if user.name in seen:
            where.child("users").child(i).child("name").fail(f"duplicate user {user.name!r}")
        seen.add(user.name)
    if all(u.disabled for u in users):
        where.child("users").fail("every user is disabled: the registry would refuse everyone")
    return AuthSpec(
        users=users,
        bcrypt_cost=v.integer(
            data.get("bcrypt_cost", default.bcrypt_cost), where.child("bcrypt_cost"), 4, 14
        ),
        realm=v.string(data.get("realm", default.realm), where.child("realm"), r"[^\"\n\\]+", "no quotes"),
        mode=mode,
        token=parse_token(data.get("token"), where.child("token")) if mode == "token" else None,
    )


def _user(raw: Any, where: v.Where) -> UserSpec:
    data = v.mapping(raw, where, ("name", "password", "disabled"))
    name = v.string(
        data.get("name"), where.child("name"), USER_NAME_RE,
        "letters, digits, _ . @ - only (no ':' or whitespace), at most 64 characters",
    )  # fmt: skip
    return UserSpec(
        name=name,
        password=secret_ref(data.get("password"), where.child("password"), f"users/{name}"),
        disabled=v.boolean(data.get("disabled", False), where.child("disabled")),
    )


def _notifications(raw: Any, where: v.Where) -> NotificationsSpec:
    data = v.mapping(raw, where, ("endpoints", "events"))
    events = v.mapping(data.get("events"), where.child("events"), ("includereferences",))
    endpoints = tuple(
        _endpoint(item, where.child("endpoints").child(i))
        for i, item in enumerate(v.sequence(data.get("endpoints"), where.child("endpoints")))
    )
    names = [e.name for e in endpoints]
    for i, name in enumerate(names):
        if name in names[:i]:
            where.child("endpoints").child(i).child("name").fail(f"duplicate endpoint {name!r}")
    return NotificationsSpec(
        endpoints=endpoints,
        includereferences=v.boolean(
            events.get("includereferences", True), where.child("events").child("includereferences")
        ),
    )


def _endpoint(raw: Any, where: v.Where) -> EndpointSpec:
    keys = (
        "name",
        "url",
        "headers",
        "timeout",
        "threshold",
        "backoff",
        "ignoredmediatypes",
        "ignore",
        "disabled",
    )
    data = v.mapping(raw, where, keys)
    d = EndpointSpec(name="", url="")
    name = v.string(data.get("name"), where.child("name"), r"[A-Za-z0-9_.-]+", "letters, digits, _ . - only")
    url = v.string(
        data.get("url"), where.child("url"), r"https?://[^\s/]+(/\S*)?", "expected an http:// or https:// URL"
    )
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        # distribution writes an endpoint's URL raw into its log at every level (tried on 2.8.2).
        where.child("url").fail("must not carry credentials (user:password@): put a token in headers")
    headers_raw = v.mapping(data.get("headers"), where.child("headers"), _AnyKey())
    headers = tuple(
        (key, secret_ref(value, where.child("headers").child(key), None, allow_literal=True))
        for key, value in headers_raw.items()
    )
    for key, _ in headers:
        if not re.fullmatch(r"[A-Za-z0-9-]+", key):
            where.child("headers").child(key).fail("invalid HTTP header name")
    ignore = v.mapping(data.get("ignore"), where.child("ignore"), ("mediatypes", "actions"))
    actions = v.string_list(ignore.get("actions"), where.child("ignore").child("actions"))
    for i, action in enumerate(actions):
        v.choice(action, where.child("ignore").child("actions").child(i), ACTIONS)
    return EndpointSpec(
        name=name,
        url=url,
        headers=headers,
        timeout=v.duration(data.get("timeout", d.timeout), where.child("timeout")),
        threshold=v.integer(data.get("threshold", d.threshold), where.child("threshold"), 1, 1000),
        backoff=v.duration(data.get("backoff", d.backoff), where.child("backoff")),
        ignoredmediatypes=v.string_list(data.get("ignoredmediatypes"), where.child("ignoredmediatypes")),
        ignore_mediatypes=v.string_list(ignore.get("mediatypes"), where.child("ignore").child("mediatypes")),
        ignore_actions=actions,
        disabled=v.boolean(data.get("disabled", False), where.child("disabled")),
    )


class _AnyKey(tuple[str, ...]):
    """A 'known keys' list that accepts every key (header names are the user's own)."""

    def __contains__(self, item: object) -> bool:
        return True
