"""image.services against the real local Docker engine: redis and haproxy images built from Debian's binaries,
run hardened. Traffic goes to loopback and to the containers these tests start, nowhere else."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from regdeploy.image.build import LABEL_BUILT_FROM, LABEL_VERSION, image_id
from regdeploy.image.services import binary_version, build_service_image
from regdeploy.storage.redis import command

pytestmark = pytest.mark.integration

REDIS_BINARY = Path("/usr/bin/redis-server")  # what the redis_image and haproxy_image fixtures build from
HAPROXY_BINARY = Path("/usr/sbin/haproxy")

UID_GID = "65532:65532"
MEMORY = 128 * 1024 * 1024
PIDS = 64
REDIS_CONF_IN_IMAGE = "/usr/local/etc/redis/redis.conf"
HAPROXY_CFG_IN_IMAGE = "/usr/local/etc/haproxy/haproxy.cfg"
REDIS_READY = "Ready to accept connections"
HAPROXY_MASTER_READY = "Loading success."
# The options every unit runs with (CIS Docker Benchmark 4.1, 5.11, 5.13, 5.26, 5.29, capabilities dropped).
HARDENED: dict[str, Any] = {
    "user": UID_GID,
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "mem_limit": MEMORY,
    "memswap_limit": MEMORY,
    "pids_limit": PIDS,
    "tmpfs": {"/tmp": "rw,noexec,nosuid,size=16m"},
}

# Never use an HTTP proxy from the environment: these requests go to loopback only.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Resources:
    """Removes what a test created (containers with their anonymous volumes, networks), in reverse order."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.actions: list[Callable[[], None]] = []

    def container(self, container: Any) -> Any:
        self.actions.append(lambda: container.remove(force=True, v=True))
        return container

    def network(self, network: Any) -> Any:
        self.actions.append(network.remove)
        return network

    def run(self) -> None:
        errors: list[BaseException] = []
        for action in reversed(self.actions):
            try:
                action()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def resources(docker_client: Any) -> Iterator[Resources]:
    r = Resources(docker_client)
    yield r
    r.run()


@pytest.fixture
def config_dir() -> Iterator[Path]:
    """A private directory for config files (they hold secrets), removed after the test."""
    path = Path(tempfile.mkdtemp(prefix="regdeploy-test-services-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _config_file(directory: Path, name: str, text: str) -> Path:
    """*text* as a file only the container user (65532) can read, as regdeploy writes a unit's files."""
    path = directory / name
    path.write_text(text)
    if os.geteuid() == 0:
        os.chown(path, 65532, 65532)
        path.chmod(0o600)
    else:  # cannot give it away: readable by everyone then
        path.chmod(0o644)
    return path


def _logs(container: Any) -> str:
    return bytes(container.logs(stdout=True, stderr=True)).decode(errors="replace")


def _wait_log(container: Any, marker: str, timeout: float = 20.0) -> str:
    """Wait until *marker* is in the container's logs; fail with the logs if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        logs = _logs(container)
        if marker in logs:
            return logs
        container.reload()
        if container.status not in ("created", "running") or time.monotonic() > deadline:
            pytest.fail(f"{container.name} ({container.status}) never logged {marker!r}; logs:\n{logs}")
        time.sleep(0.1)


def _assert_hardened(container: Any) -> None:
    """The CIS container checks, read back from `docker inspect` as a benchmark tool reads them."""
    container.reload()
    config, host = container.attrs["Config"], container.attrs["HostConfig"]
    assert config["User"] == UID_GID  # 4.1
    assert host["Memory"] == MEMORY  # 5.11
    assert host["MemorySwap"] == MEMORY
    assert host["ReadonlyRootfs"] is True  # 5.13
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges:true" in host["SecurityOpt"]  # 5.26
    assert host["PidsLimit"] == PIDS  # 5.29
    assert host["Privileged"] is False
    uids = {row[0] for row in container.top()["Processes"]}
    assert uids == {"65532"}


# --------------------------------------------------------------------------------------------------------
# RESP, the redis protocol, over a raw socket
# --------------------------------------------------------------------------------------------------------


def _resp_reply(reader: io.BufferedReader) -> str | int | None:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"redis closed the connection (read {line!r})")
    kind, body = line[:1], line[1:-2].decode()
    if kind in (b"+", b"-"):
        return kind.decode() + body  # "+OK", "-WRONGPASS ..."
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        return None if size < 0 else reader.read(size + 2)[:-2].decode()
    raise ValueError(f"unexpected RESP reply {line!r}")


def _redis(port: int, *commands: tuple[str, ...]) -> list[str | int | None]:
    """Send *commands* on one connection; return one reply each."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(command(*c) for c in commands))
        with sock.makefile("rb") as reader:
            return [_resp_reply(reader) for _ in commands]  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------
# The images
# --------------------------------------------------------------------------------------------------------


def _export_listing(client: Any, image: str, resources: Resources) -> dict[str, tarfile.TarInfo]:
    """What the image's filesystem holds (a created, never started container, exported)."""
    container = resources.container(client.containers.create(image, labels={"io.regdeploy.test": "1"}))
    data = b"".join(container.export())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


@pytest.mark.parametrize("service", ["redis", "haproxy"])
def test_service_images_rebuild_to_the_same_id(request, docker_client, service, resources):
    tag = request.getfixturevalue(f"{service}_image")
    binary = REDIS_BINARY if service == "redis" else HAPROXY_BINARY
    built = docker_client.images.get(tag)
    lines: list[str] = []
    again = build_service_image(docker_client, service, binary, tag, progress=lines.append)
    assert again == built.id == image_id(docker_client, tag)
    assert (
        docker_client.images.get(tag).attrs["Created"] == built.attrs["Created"]
    )  # a cache hit, not a build
    assert any(line.startswith(f"build {tag}: done") for line in lines)

    config = built.attrs["Config"]
    version = binary_version(service, binary)
    assert config["Labels"] == {LABEL_VERSION: version, LABEL_BUILT_FROM: str(binary)}
    assert config["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert not config.get("Entrypoint")
    assert not config.get("User")
    files = _export_listing(docker_client, tag, resources)
    assert files["tmp"].isdir() and files["tmp"].mode & 0o7777 == 0o1777
    if service == "redis":
        assert version.startswith("7.")
        assert config["Cmd"] == ["redis-server"]
        assert set(config["ExposedPorts"]) == {"6379/tcp"}
        assert config["WorkingDir"] == "/data"
        assert files["usr/local/bin/redis-server"].isfile()
        assert files["data"].isdir() and (files["data"].uid, files["data"].gid) == (65532, 65532)
    else:
        assert version.startswith("2.")
        assert config["Cmd"] == ["haproxy", "-f", HAPROXY_CFG_IN_IMAGE]
        assert not config.get("ExposedPorts")
        assert config["StopSignal"] == "SIGUSR1"
        assert files["usr/local/sbin/haproxy"].isfile()
        assert files["usr/local/etc/haproxy"].isdir()
    assert files["lib64/ld-linux-x86-64.so.2"].isfile()
    assert files["lib/x86_64-linux-gnu/libc.so.6"].isfile()
    assert files["lib/x86_64-linux-gnu/libssl.so.3"].isfile()


# --------------------------------------------------------------------------------------------------------
# redis, hardened, with a password
# --------------------------------------------------------------------------------------------------------


def _redis_conf(password: str) -> str:
    return "\n".join(
        [
            "bind 0.0.0.0",
            "port 6379",
            "protected-mode no",
            f"requirepass {password}",
            'save ""',
            "appendonly no",
            "maxmemory 64mb",
            "maxmemory-policy allkeys-lru",
            "dir /tmp",
            "",
        ]
    )


def test_redis_runs_hardened_and_requires_its_password(
    docker_client, redis_image, resources, config_dir, unique_name, free_port
):
    password = secrets.token_urlsafe(24)
    conf = _config_file(config_dir, "redis.conf", _redis_conf(password))
    port = free_port()
    container = resources.container(
        docker_client.containers.run(
            redis_image,
            ["redis-server", REDIS_CONF_IN_IMAGE],
            name=unique_name,
            detach=True,
            ports={"6379/tcp": ("127.0.0.1", port)},
            volumes={str(conf): {"bind": REDIS_CONF_IN_IMAGE, "mode": "ro"}},
            labels={"io.regdeploy.test": "1"},
            **HARDENED,
        )
    )
    _wait_log(container, REDIS_READY)

    assert _redis(port, ("AUTH", password), ("PING",), ("SET", "k", "v"), ("GET", "k")) == [
        "+OK",
        "+PONG",
        "+OK",
        "v",
    ]
    wrong, ping = _redis(port, ("AUTH", password + "x"), ("PING",))
    assert isinstance(wrong, str) and wrong.startswith("-WRONGPASS")
    assert isinstance(ping, str) and ping.startswith("-NOAUTH")
    (unauthenticated,) = _redis(port, ("GET", "k"))
    assert isinstance(unauthenticated, str) and unauthenticated.startswith("-NOAUTH")

    _assert_hardened(container)
    attrs = container.attrs
    assert attrs["Args"] == [REDIS_CONF_IN_IMAGE]
    assert password not in json.dumps(attrs["Args"]) + json.dumps(attrs["Config"]["Env"])
    assert password not in json.dumps(attrs)  # anywhere in `docker inspect`
    assert password not in _logs(container)
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts[REDIS_CONF_IN_IMAGE]["RW"] is False


# --------------------------------------------------------------------------------------------------------
# haproxy, hardened, in front of a registry
# --------------------------------------------------------------------------------------------------------


def _haproxy_cfg(backend: str) -> str:
    # Non-root on a read-only root: no chroot, no user/group, no pidfile, no stats socket outside /tmp.
    return f"""\
global
    maxconn 256

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend fe_registry
    bind :8443
    default_backend be_registry

backend be_registry
    option httpchk GET /
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1
    server registry {backend}:5000 check
"""


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with _HTTP.open(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _wait_http(url: str, container: Any, timeout: float = 20.0) -> tuple[int, dict[str, str], bytes]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _get(url)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            container.reload()
            if container.status != "running" or time.monotonic() > deadline:
                pytest.fail(
                    f"{url} never answered; {container.name} is {container.status}:\n{_logs(container)}"
                )
            time.sleep(0.2)


@pytest.fixture
def registry_backend(docker_client, registry_image, resources, unique_name) -> tuple[Any, Any]:
    """A user-defined network and a registry on it (``NAME-registry``, port 5000, not published)."""
    network = resources.network(
        docker_client.networks.create(f"{unique_name}-net", labels={"io.regdeploy.test": "1"})
    )
    backend = resources.container(
        docker_client.containers.run(
            registry_image,
            name=f"{unique_name}-registry",
            detach=True,
            network=network.name,
            labels={"io.regdeploy.test": "1"},
        )
    )
    return network, backend


def _run_haproxy(
    client: Any, image: str, name: str, network: Any, cfg: Path, port: int, args: list[str]
) -> Any:
    return client.containers.run(
        image,
        ["haproxy", *args, "-f", HAPROXY_CFG_IN_IMAGE],
        name=name,
        detach=True,
        network=network.name,
        ports={"8443/tcp": ("127.0.0.1", port)},
        volumes={str(cfg): {"bind": HAPROXY_CFG_IN_IMAGE, "mode": "ro"}},
        labels={"io.regdeploy.test": "1"},
        **HARDENED,
    )


def test_haproxy_runs_hardened_in_front_of_a_registry(
    docker_client, haproxy_image, registry_backend, resources, config_dir, unique_name, free_port
):
    network, backend = registry_backend
    cfg = _config_file(config_dir, "haproxy.cfg", _haproxy_cfg(backend.name))
    port = free_port()
    proxy = resources.container(
        _run_haproxy(docker_client, haproxy_image, f"{unique_name}-haproxy", network, cfg, port, ["-db"])
    )

    status, headers, body = _wait_http(f"http://127.0.0.1:{port}/v2/", proxy)
    assert status == 200, body
    assert headers.get("Docker-Distribution-Api-Version") == "registry/2.0"
    assert json.loads(body) == {}

    # The health checks reach the registry: its access log has haproxy's `option httpchk GET /` (HTTP/1.0).
    deadline = time.monotonic() + 10
    while '"GET / HTTP/1.0" 200' not in _logs(backend):
        assert time.monotonic() < deadline, _logs(backend)
        time.sleep(0.2)
    _assert_hardened(proxy)
    mounts = {m["Destination"]: m for m in proxy.attrs["Mounts"]}
    assert mounts[HAPROXY_CFG_IN_IMAGE]["RW"] is False
    assert "[ALERT]" not in _logs(proxy)

    # ... and see it go: a stopped backend is marked DOWN (printed on stderr in -db mode).
    backend.stop(timeout=5)
    _wait_log(proxy, "Server be_registry/registry is DOWN")
    with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
        status, _, _ = _get(f"http://127.0.0.1:{port}/v2/")
        pytest.fail(f"a request went through to a stopped backend: {status}")


def test_haproxy_master_worker_logs_a_readiness_line(
    docker_client, haproxy_image, registry_backend, resources, config_dir, unique_name, free_port
):
    """`-db` alone prints nothing once listening; `-W -db` (master-worker, as the official image runs it)
    prints "Loading success." after the listeners are bound: a readiness marker."""
    network, backend = registry_backend
    cfg = _config_file(config_dir, "haproxy.cfg", _haproxy_cfg(backend.name))
    port = free_port()
    proxy = resources.container(
        _run_haproxy(
            docker_client, haproxy_image, f"{unique_name}-haproxy", network, cfg, port, ["-W", "-db"]
        )
    )
    _wait_log(proxy, HAPROXY_MASTER_READY)
    status, _, _ = _get(f"http://127.0.0.1:{port}/v2/")  # listening already: no retry needed
    assert status == 200
    _assert_hardened(proxy)


# --------------------------------------------------------------------------------------------------------
# The CLI: `regdeploy image build --service`
# --------------------------------------------------------------------------------------------------------


def _cli() -> click.Group:
    from regdeploy.cli import image as image_cli
    from regdeploy.cli.common import RegdeployGroup

    @click.group(cls=RegdeployGroup)
    def cli() -> None:
        pass

    image_cli.register(cli)
    return cli


@pytest.mark.parametrize(("service", "binary"), [("redis", REDIS_BINARY), ("haproxy", HAPROXY_BINARY)])
def test_cli_build_service_json(request, docker_client, service, binary):
    tag = request.getfixturevalue(f"{service}_image")
    result = CliRunner().invoke(_cli(), ["image", "build", "--service", service, "--tag", tag, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "image": tag,
        "id": image_id(docker_client, tag),
        "service": service,
        "version": binary_version(service, binary),
        "binary": str(binary),  # the default binary of the service
    }
    assert "Step 1/" in result.stderr
