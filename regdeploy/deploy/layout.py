"""Where each unit's files live: in its container, and on the host. Plain constants, no logic.

One layout for registry 2.x and 3.x: the host's config_dir is mounted read-only at
CONTAINER_CONFIG_DIR and the command is `serve CONTAINER_CONFIG_DIR/config.yml`, so the images'
different default config paths (/etc/docker/registry vs /etc/distribution) do not matter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regdeploy.webhooks.relay.config import DEFAULT_PORT as DEFAULT_RELAY_PORT

if TYPE_CHECKING:
    from regdeploy.spec.registry import RegistrySpec

CONTAINER_CONFIG_DIR = "/etc/regdeploy"
CONTAINER_DATA_DIR = "/var/lib/registry"
# The deployed relay (registry.relay): its files, read-only, and its queue, in its container.
RELAY_CONTAINER_DIR = "/etc/regdeploy-relay"
RELAY_QUEUE_DIR = "/var/lib/regdeploy-relay"
RELAY_PORT = DEFAULT_RELAY_PORT
# The built-in token server (auth.mode: token): its files, read-only, and the port it listens on.
TOKEN_CONTAINER_DIR = "/etc/regdeploy-token"
TOKEN_CONTAINER_PORT = 5001


def relay_config_dir(spec: RegistrySpec) -> str:
    return f"{spec.config_dir}/relay"


def relay_queue_dir(spec: RegistrySpec) -> str:
    return f"{spec.data_dir}/relay-queue"


def token_config_dir(spec: RegistrySpec) -> str:
    return f"{spec.config_dir}/token"


# A pull-through cache's own files inside the config dir (its directory mounted read-only) and the
# directory of CA certificates it trusts upstreams with (Go reads every file of SSL_CERT_DIR, on top
# of the image's own roots).
def proxy_config_dir(spec: RegistrySpec, name: str) -> str:
    return f"{spec.config_dir}/proxy-{name}"


def proxy_data_dir(spec: RegistrySpec, name: str) -> str:
    return f"{spec.data_dir}/proxy-{name}"


def proxy_unit_name(spec: RegistrySpec, name: str) -> str:
    return f"{spec.name}-proxy-{name}"


def standby_name(spec: RegistrySpec) -> str:
    """The read-only registry run beside a lone replica behind a local balancer while it restarts."""
    return f"{spec.name}-standby"


def users_file(spec: RegistrySpec) -> str:
    """The htpasswd-format file whose users may sign in: the registry's own, or in token mode the
    built-in token server's (both re-read it when it changes)."""
    if spec.auth.builtin_token is not None:
        return f"{token_config_dir(spec)}/users"
    return f"{spec.config_dir}/auth/htpasswd"


# A cluster's redis (registry.cache.redis.deploy_on) and load balancer (registry_lb) units: each
# one's files in a directory of the host's config dir, mounted read-only where the official
# redis/haproxy images look for them; the balancer listens unprivileged inside its container.
REDIS_CONTAINER_DIR = "/usr/local/etc/redis"
REDIS_CONTAINER_PORT = 6379
LB_CONTAINER_DIR = "/usr/local/etc/haproxy"
LB_CONTAINER_PORT = 8443
LB_ADMIN_CONTAINER_DIR = "/var/run/haproxy-admin"  # its admin socket, for draining replicas


def redis_config_dir(spec: RegistrySpec) -> str:
    return f"{spec.config_dir}/redis"


def lb_config_dir(spec: RegistrySpec) -> str:
    return f"{spec.config_dir}/lb"
