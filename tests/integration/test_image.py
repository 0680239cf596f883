"""image.build and `regdeploy image` against the real local Docker engine (loopback traffic only)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import secrets
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from regdeploy.errors import ImageError, TransportError
from regdeploy.image.build import (
    AIRGAP_HINT,
    LABEL_BUILT_FROM,
    LABEL_VERSION,
    binary_version,
    build_from_binary,
    build_smoke_image,
    ensure_image,
    image_id,
    load_tarball,
    registry_major_version,
    shared_libraries,
)

pytestmark = pytest.mark.integration

BINARY = Path("/usr/bin/docker-registry")
# A pull of this ref can only try 127.0.0.1:1, where nothing listens: it fails fast and never leaves loopback.
UNPULLABLE = "127.0.0.1:1/regdeploy-test/absent:1"

# Never use an HTTP proxy from the environment: these requests go to loopback only.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> tuple[int, Message, bytes]:
    try:
        with _HTTP.open(url, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _wait_http(url: str, timeout: float = 20.0) -> tuple[int, Message, bytes]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _get(url)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Cleanup:
    """Removes what a test created, in reverse order, even when the test fails."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.actions: list[Callable[[], None]] = []

    def container(self, container: Any) -> None:
        self.actions.append(lambda: container.remove(force=True, v=True))

    def image(self, ref: str) -> None:
        import docker.errors

        def remove() -> None:
            with contextlib.suppress(docker.errors.ImageNotFound):
                self.client.images.remove(ref, force=True)

        self.actions.append(remove)

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
def cleanup(docker_client: Any) -> Iterator[Cleanup]:
    c = Cleanup(docker_client)
    yield c
    c.run()


def _run_registry(client: Any, image: str, name: str, port: int, cleanup: Cleanup) -> Any:
    container = client.containers.run(
        image,
        name=name,
        detach=True,
        ports={"5000/tcp": ("127.0.0.1", port)},
        labels={"io.regdeploy.test": "1"},
    )
    cleanup.container(container)
    return container


# --------------------------------------------------------------------------------------------------------
# build_from_binary
# --------------------------------------------------------------------------------------------------------


def test_built_image_runs_a_registry_answering_v2(
    docker_client, registry_image, unique_name, free_port, cleanup
):
    port = free_port()
    container = _run_registry(docker_client, registry_image, unique_name, port, cleanup)
    status, headers, body = _wait_http(f"http://127.0.0.1:{port}/v2/")
    assert status == 200, body
    assert headers.get("Docker-Distribution-API-Version") == "registry/2.0"
    assert json.loads(body) == {}
    container.reload()
    assert container.status == "running"
    assert b"listening on [::]:5000" in container.logs()


def test_built_image_metadata(docker_client, registry_image):
    image = docker_client.images.get(registry_image)
    config = image.attrs["Config"]
    assert image.labels[LABEL_VERSION] == "2.8.2"
    assert image.labels[LABEL_BUILT_FROM] == str(BINARY)
    assert config["Entrypoint"] == ["/bin/registry"]
    assert config["Cmd"] == ["serve", "/etc/docker/registry/config.yml"]
    assert "5000/tcp" in config["ExposedPorts"]
    assert "/var/lib/registry" in config["Volumes"]
    assert len(image.attrs["RootFS"]["Layers"]) == 1
    assert registry_major_version(docker_client, registry_image) == 2


def test_built_image_files(docker_client, registry_image, unique_name, cleanup):
    container = docker_client.containers.create(registry_image, name=unique_name)
    cleanup.container(container)
    archive = io.BytesIO(b"".join(container.export()))
    with tarfile.open(fileobj=archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        config = tar.extractfile("etc/docker/registry/config.yml")
        assert config is not None
        text = config.read().decode()
    assert members["bin/registry"].mode & 0o111
    assert members["bin/registry"].size == BINARY.stat().st_size
    for lib in shared_libraries(BINARY):  # libc and the ELF interpreter, real content (not symlinks)
        member = members[lib.lstrip("/")]
        assert member.isfile(), lib
        assert member.size == Path(lib).resolve().stat().st_size
    assert "/lib64/ld-linux-x86-64.so.2" in shared_libraries(BINARY)
    assert members["var/lib/registry"].isdir()
    assert members["tmp"].isdir() and members["tmp"].mode & 0o1777 == 0o1777
    assert "rootdirectory: /var/lib/registry" in text and "addr: :5000" in text


def test_rebuild_is_a_cache_hit_with_the_same_id(docker_client, registry_image):
    lines: list[str] = []
    started = time.monotonic()
    again = build_from_binary(docker_client, BINARY, registry_image, progress=lines.append)
    assert again == image_id(docker_client, registry_image)
    assert time.monotonic() - started < 30
    assert any("Step 2/" in line and "COPY" in line for line in lines)
    assert lines[-1].startswith(f"build {registry_image}: done")


def test_binary_version():
    assert binary_version(BINARY) == "2.8.2"


def test_missing_binary_is_an_image_error(docker_client, tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        build_from_binary(docker_client, tmp_path / "nope", "regdeploy-test/never:1")


def test_non_registry_binary_is_an_image_error(docker_client):
    with pytest.raises(ImageError, match=r"/bin/true is not a distribution registry binary"):
        build_from_binary(docker_client, Path("/bin/true"), "regdeploy-test/never:1")
    assert image_id(docker_client, "regdeploy-test/never:1") is None


def test_non_executable_and_non_elf_binaries_are_image_errors(docker_client, tmp_path):
    plain = tmp_path / "registry"
    plain.write_text("#!/bin/sh\necho github.com/docker/distribution 2.8.2\n")
    with pytest.raises(ImageError, match="not executable"):
        build_from_binary(docker_client, plain, "regdeploy-test/never:1")
    plain.chmod(0o755)  # a script that claims to be distribution: still no ELF binary to put in the image
    with pytest.raises(ImageError, match="not an ELF executable"):
        build_from_binary(docker_client, plain, "regdeploy-test/never:1")


def test_daemon_build_error_is_an_image_error_with_its_message(docker_client):
    with pytest.raises(ImageError, match=r"building Not A Tag! from .* failed: .*invalid"):
        build_from_binary(docker_client, BINARY, "Not A Tag!")


# --------------------------------------------------------------------------------------------------------
# ensure_image / image_id / registry_major_version
# --------------------------------------------------------------------------------------------------------


def test_ensure_image_present_returns_its_id_without_pulling(docker_client, registry_image):
    lines: list[str] = []
    assert ensure_image(docker_client, registry_image, progress=lines.append) == image_id(
        docker_client, registry_image
    )
    assert lines == []


def test_ensure_image_absent_and_unpullable_gives_the_airgap_hint(docker_client):
    lines: list[str] = []
    with pytest.raises(ImageError) as info:
        ensure_image(docker_client, UNPULLABLE, progress=lines.append)
    message = str(info.value)
    assert message.startswith(f"image '{UNPULLABLE}' is not on the Docker engine")
    assert "cannot be pulled (" in message
    assert "regdeploy image build --binary /usr/bin/docker-registry --tag registry:2" in message
    assert "regdeploy image load FILE" in message and message.endswith(AIRGAP_HINT)
    assert "\n" not in message
    assert lines == [f"pulling {UNPULLABLE} ..."]
    assert image_id(docker_client, UNPULLABLE) is None


def test_ensure_image_without_pull(docker_client):
    with pytest.raises(
        ImageError, match=r"is not on lab-host-1 and cannot be pulled \(pulling is disabled\)"
    ):
        ensure_image(docker_client, UNPULLABLE, pull=False, where="lab-host-1")


def test_image_id_and_major_version_of_absent_images(docker_client):
    assert image_id(docker_client, UNPULLABLE) is None
    assert registry_major_version(docker_client, "127.0.0.1:1/regdeploy-test/registry:3.0.0") == 3
    assert registry_major_version(docker_client, "127.0.0.1:1/regdeploy-test/registry:2") == 2
    assert registry_major_version(docker_client, "127.0.0.1:1/regdeploy-test/registry:latest") is None
    assert registry_major_version(docker_client, "127.0.0.1:1/regdeploy-test/registry") is None


# --------------------------------------------------------------------------------------------------------
# load_tarball
# --------------------------------------------------------------------------------------------------------


def test_load_tarball_round_trip(docker_client, registry_image, tmp_path, cleanup):
    copy = f"regdeploy-test/roundtrip:{secrets.token_hex(4)}"
    original = docker_client.images.get(registry_image)
    assert original.tag(copy)
    cleanup.image(copy)  # only untags: registry_image keeps the image
    archive = tmp_path / "roundtrip.tar"
    with archive.open("wb") as fh:
        for chunk in docker_client.images.get(copy).save(named=copy):
            fh.write(chunk)
    docker_client.images.remove(copy)
    assert image_id(docker_client, copy) is None

    lines: list[str] = []
    assert load_tarball(docker_client, archive, progress=lines.append) == [copy]
    assert image_id(docker_client, copy) == original.id
    assert lines[0].startswith(f"loading {archive} (") and lines[-1] == f"loaded {copy}"

    docker_client.images.remove(copy)  # a gzip'ed archive loads too
    gz = tmp_path / "roundtrip.tar.gz"
    with archive.open("rb") as src, gzip.open(gz, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst)
    archive.unlink()
    assert load_tarball(docker_client, gz) == [copy]
    assert image_id(docker_client, copy) == original.id
    gz.unlink()


def test_load_tarball_rejects_what_is_not_an_image_archive(docker_client, tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_tarball(docker_client, tmp_path / "missing.tar")
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive\n" * 100)
    with pytest.raises(ImageError, match="is not an image archive"):
        load_tarball(docker_client, garbage)
    other = tmp_path / "other.tar"
    with tarfile.open(other, "w") as tar:
        tar.add(__file__, arcname="test_image.py")
    with pytest.raises(ImageError, match="is not an image archive"):
        load_tarball(docker_client, other)


def test_load_tarball_reports_the_daemons_error(docker_client, tmp_path):
    broken = tmp_path / "broken.tar"
    with tarfile.open(broken, "w") as tar:
        manifest = [
            {"Config": "missing.json", "RepoTags": ["regdeploy-test/broken:1"], "Layers": ["x/l.tar"]}
        ]
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ImageError, match=rf"loading {broken} failed: "):
        load_tarball(docker_client, broken)
    assert image_id(docker_client, "regdeploy-test/broken:1") is None


# --------------------------------------------------------------------------------------------------------
# build_smoke_image
# --------------------------------------------------------------------------------------------------------


def test_smoke_image_is_one_small_unique_layer(docker_client, cleanup):
    first_tag = f"regdeploy-test/smoke:{secrets.token_hex(4)}"
    second_tag = f"regdeploy-test/smoke:{secrets.token_hex(4)}"
    cleanup.image(first_tag)
    cleanup.image(second_tag)
    first = build_smoke_image(docker_client, first_tag)
    second = build_smoke_image(docker_client, second_tag)
    assert first != second
    image = docker_client.images.get(first)
    assert len(image.attrs["RootFS"]["Layers"]) == 1
    assert image.attrs["Size"] < 1024
    assert first_tag in image.tags


def test_smoke_image_push_pull_through_the_built_registry(
    docker_client, registry_image, unique_name, free_port, cleanup
):
    """The built registry image passes a real push and pull of a smoke image (over loopback)."""
    port = free_port()
    _run_registry(docker_client, registry_image, unique_name, port, cleanup)
    _wait_http(f"http://127.0.0.1:{port}/v2/")
    repo = f"127.0.0.1:{port}/regdeploy-test/smoke"
    tag = secrets.token_hex(4)
    ref = f"{repo}:{tag}"
    cleanup.image(ref)
    smoke = build_smoke_image(docker_client, ref)

    for line in docker_client.api.push(repo, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    docker_client.images.remove(ref, force=True)
    assert image_id(docker_client, ref) is None
    lines: list[str] = []
    assert ensure_image(docker_client, ref, progress=lines.append) == smoke
    assert lines[0] == f"pulling {ref} ..."
    status, _, body = _get(f"http://127.0.0.1:{port}/v2/regdeploy-test/smoke/tags/list")
    assert status == 200 and json.loads(body)["tags"] == [tag]


# --------------------------------------------------------------------------------------------------------
# The CLI: `regdeploy image build|load`
# --------------------------------------------------------------------------------------------------------


def _cli() -> click.Group:
    from regdeploy.cli import image as image_cli
    from regdeploy.cli.common import RegdeployGroup

    @click.group(cls=RegdeployGroup)
    def cli() -> None:
        pass

    image_cli.register(cli)
    return cli


def test_cli_build_json(docker_client, registry_image):
    result = CliRunner().invoke(
        _cli(), ["image", "build", "--binary", str(BINARY), "--tag", registry_image, "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data == {
        "image": registry_image,
        "id": image_id(docker_client, registry_image),
        "version": "2.8.2",
        "binary": str(BINARY),
    }
    assert "Step 1/" in result.stderr


def test_cli_build_rejects_a_non_registry_binary():
    result = CliRunner().invoke(_cli(), ["image", "build", "--binary", "/bin/true"])
    assert result.exit_code == 1
    assert "error: /bin/true is not a distribution registry binary" in result.stderr


def test_cli_load(docker_client, registry_image, tmp_path, cleanup):
    copy = f"regdeploy-test/cliload:{secrets.token_hex(4)}"
    docker_client.images.get(registry_image).tag(copy)
    cleanup.image(copy)
    archive = tmp_path / "cli.tar"
    with archive.open("wb") as fh:
        for chunk in docker_client.images.get(copy).save(named=copy):
            fh.write(chunk)
    docker_client.images.remove(copy)
    result = CliRunner().invoke(_cli(), ["image", "load", str(archive), "--json"])
    archive.unlink()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"archive": str(archive), "loaded": [copy]}


def test_cli_unreachable_engine_is_a_transport_error(monkeypatch, tmp_path):
    socket_path = tmp_path / "no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    result = CliRunner().invoke(_cli(), ["image", "load", str(tmp_path / "x.tar")])
    assert result.exit_code == TransportError.exit_code
    assert result.stderr.strip() == (
        f"error: cannot reach the Docker engine at unix://{socket_path}: No such file or directory; "
        "is dockerd running?"
    )
