"""Fixtures for tests that use the real Docker engine started by ``scripts/setup.sh``.

Integration tests FAIL with a clear message when the engine is unreachable: a CI run without an engine
must not go green by skipping. Everything they create is named ``regdeploy-test...`` and removed by the
test, except the images built from Debian's binaries, kept (a rebuild is a build-cache hit, the same id): the
registry image ``regdeploy-test/registry:2.8.2`` and the service images ``regdeploy-test/redis:7`` and
``regdeploy-test/haproxy:2.6`` (fixtures ``registry_image``, ``redis_image``, ``haproxy_image``).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from standins import Got, StandIn

from regdeploy.image.build import build_from_binary
from regdeploy.image.services import build_service_image

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
REGISTRY_TEST_IMAGE = "regdeploy-test/registry:2.8.2"
REDIS_BINARY = Path("/usr/bin/redis-server")
REDIS_TEST_IMAGE = "regdeploy-test/redis:7"
HAPROXY_BINARY = Path("/usr/sbin/haproxy")
HAPROXY_TEST_IMAGE = "regdeploy-test/haproxy:2.6"


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """``free_port()`` returns an unused loopback TCP port (call it as often as needed)."""
    return find_free_port


@pytest.fixture
def unique_name() -> str:
    """A name no user object has: ``regdeploy-test-<random>`` (containers, volumes, networks...)."""
    return f"regdeploy-test-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A ``docker.DockerClient`` for the local engine; fails (not skips) if the engine does not answer."""
    import docker

    from regdeploy.image.build import connection_reason

    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        reason = connection_reason(exc)
        pytest.fail(
            f"the Docker engine at {where} is unreachable ({reason}); integration tests need it: "
            "run `bash scripts/setup.sh` as root first",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry_image(docker_client: Any) -> str:
    """The ref of a registry image built from Debian's /usr/bin/docker-registry (2.8.2), once per session.

    Kept after the run: the name never collides with a user's image and the next build is a cache hit.
    """
    if not REGISTRY_BINARY.exists():
        pytest.fail(
            f"{REGISTRY_BINARY} is missing (Debian package docker-registry): run `bash scripts/setup.sh`",
            pytrace=False,
        )
    build_from_binary(docker_client, REGISTRY_BINARY, REGISTRY_TEST_IMAGE)
    return REGISTRY_TEST_IMAGE


def _service_image(client: Any, service: str, binary: Path, package: str, tag: str) -> str:
    if not binary.exists():
        pytest.fail(
            f"{binary} is missing (Debian package {package}): run `bash scripts/setup.sh`", pytrace=False
        )
    build_service_image(client, service, binary, tag)
    return tag


@pytest.fixture(scope="session")
def redis_image(docker_client: Any) -> str:
    """The ref of a redis image built from Debian's /usr/bin/redis-server (7.0.15), once per session.

    FROM scratch, ``/usr/local/bin/redis-server``, ``CMD ["redis-server"]``, ``EXPOSE 6379``, ``/data`` and
    ``/tmp`` (see regdeploy.image.services). Kept after the run: the next session's build is a cache hit.
    """
    return _service_image(docker_client, "redis", REDIS_BINARY, "redis-server", REDIS_TEST_IMAGE)


@pytest.fixture(scope="session")
def haproxy_image(docker_client: Any) -> str:
    """The ref of a haproxy image built from Debian's /usr/sbin/haproxy (2.6.12), once per session.

    FROM scratch, ``/usr/local/sbin/haproxy``, ``CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]``
    and ``/tmp``. Kept after the run: the next session's build is a cache hit.
    """
    return _service_image(docker_client, "haproxy", HAPROXY_BINARY, "haproxy", HAPROXY_TEST_IMAGE)


@pytest.fixture(scope="module")
def gateway(docker_client: Any) -> str:
    """The default bridge's gateway: where a registry container reaches this host."""
    config = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    # Some engines leave Gateway out of the listing: the bridge then has the subnet's first address.
    return str(config.get("Gateway") or next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture
def stand_ins() -> Iterator[Callable[..., StandIn]]:
    made: list[StandIn] = []

    def make(host: str, respond: Callable[[Got], tuple[int, bytes]] = lambda g: (200, b"")) -> StandIn:
        s = StandIn(host, respond)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
