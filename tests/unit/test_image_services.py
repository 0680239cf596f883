"""image.services: version parsing, binary checks, image layout and build context (no engine)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from regdeploy.errors import EXIT_INPUT, ImageError
from regdeploy.image.build import LABEL_BUILT_FROM, LABEL_VERSION
from regdeploy.image.services import (
    PATH_ENV,
    SERVICES,
    ServiceBinaryError,
    binary_version,
    context_dirs,
    dockerfile_text,
    image_layout,
    parse_version,
    service_context,
    service_image,
    service_labels,
)

# --------------------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "output", "version"),
    [
        (
            "redis",
            "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c971a948f0\n",
            "7.0.15",
        ),
        ("redis", "Redis server v=7.2.4 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1\n", "7.2.4"),
        (
            "haproxy",
            "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/\n"
            "Status: long-term supported branch - will stop receiving fixes around Q2 2027.\n",
            "2.6.12",
        ),
        ("haproxy", "HAProxy version 2.8.5-aaba8d0 2023/12/07 - https://haproxy.org/\n", "2.8.5"),
        ("haproxy", "HAProxy version 2.9-dev5-1 2023/09/01\n", "2.9"),
    ],
)
def test_parse_version(service, output, version):
    assert parse_version(service, output) == version


@pytest.mark.parametrize(
    ("service", "output"),
    [
        ("redis", "redis-check-rdb 7.0.15\n"),  # the same file under another argv[0]
        ("redis", "HAProxy version 2.6.12-1+deb12u4 2026/10/17\n"),
        ("haproxy", "Redis server v=7.0.15 sha=00000000:0\n"),
        ("haproxy", ""),
    ],
)
def test_parse_version_refuses_another_binary(service, output):
    with pytest.raises(ServiceBinaryError, match=r"^not a (redis-server|haproxy) binary: `") as info:
        parse_version(service, output)
    assert "\n" not in str(info.value)
    assert ("printed nothing" in str(info.value)) is (output == "")


def test_service_binary_errors_are_input_errors_and_image_errors():
    assert ServiceBinaryError.exit_code == EXIT_INPUT == 2
    assert issubclass(ServiceBinaryError, ImageError)


def test_unknown_service():
    expected = r"^unknown service 'nginx': regdeploy builds images for haproxy, redis$"
    with pytest.raises(ServiceBinaryError, match=expected):
        service_image("nginx")


def test_binary_checks(tmp_path):
    missing = tmp_path / "redis-server"
    expected = r"redis-server binary .* does not exist \(Debian: apt-get install redis-server\)$"
    with pytest.raises(ServiceBinaryError, match=expected):
        binary_version("redis", missing)
    with pytest.raises(ServiceBinaryError, match="is not a regular file"):
        binary_version("haproxy", tmp_path)
    not_exec = tmp_path / "haproxy"
    not_exec.write_bytes(b"\x7fELF")
    with pytest.raises(ServiceBinaryError, match="is not executable"):
        binary_version("haproxy", not_exec)
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho 'HAProxy version 2.6.12'\n")
    script.chmod(0o755)
    with pytest.raises(ServiceBinaryError, match=r"is not a haproxy binary \(not an ELF executable\)$"):
        binary_version("haproxy", script)


def test_another_elf_binary_is_refused_naming_the_command_run():
    true = Path("/bin/true")
    with pytest.raises(ServiceBinaryError) as info:
        binary_version("redis", true)
    message = str(info.value)
    assert message.startswith("/bin/true is not a redis-server binary: `/bin/true --version` printed '")


# --------------------------------------------------------------------------------------------------------
# Layout and Dockerfile
# --------------------------------------------------------------------------------------------------------


def test_binaries_go_where_the_official_images_have_them():
    assert SERVICES["redis"].binary_in_image == "/usr/local/bin/redis-server"  # redis:7
    assert SERVICES["haproxy"].binary_in_image == "/usr/local/sbin/haproxy"  # haproxy:2.8
    assert SERVICES["redis"].default_binary == "/usr/bin/redis-server"
    assert SERVICES["haproxy"].default_binary == "/usr/sbin/haproxy"


def _instructions(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        found.setdefault(word, []).append(rest)
    return found


def test_redis_dockerfile():
    text = dockerfile_text("redis")
    lines = text.splitlines()
    assert lines[:3] == ["FROM scratch", "COPY rootfs/ /", "COPY --chown=65532:65532 rootfs-owned/data /data"]
    found = _instructions(text)
    assert found["ENV"] == [f"PATH={PATH_ENV}"]
    assert PATH_ENV == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert json.loads(found["CMD"][0]) == ["redis-server"]
    assert found["EXPOSE"] == ["6379/tcp"]
    assert found["WORKDIR"] == ["/data"]
    assert "ENTRYPOINT" not in found and "USER" not in found and "VOLUME" not in found
    assert not any(line.startswith(("RUN", "LABEL", "ARG")) for line in lines)


def test_haproxy_dockerfile():
    text = dockerfile_text("haproxy")
    found = _instructions(text)
    assert text.splitlines()[:2] == ["FROM scratch", "COPY rootfs/ /"]
    assert found["COPY"] == ["rootfs/ /"]
    assert found["ENV"] == [f"PATH={PATH_ENV}"]
    assert json.loads(found["CMD"][0]) == ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
    assert found["STOPSIGNAL"] == ["SIGUSR1"]
    for absent in ("ENTRYPOINT", "EXPOSE", "USER", "VOLUME", "WORKDIR", "RUN"):
        assert absent not in found


def test_context_dirs_put_owned_dirs_beside_rootfs():
    assert context_dirs("redis") == {"/tmp": 0o1777, "-owned/data": 0o755}
    assert context_dirs("haproxy") == {"/tmp": 0o1777, "/usr/local/etc/haproxy": 0o755}


def _fake_install(tmp_path: Path) -> tuple[Path, list[str]]:
    """A 'redis-server' symlink to its real file (as Debian has it) and two libraries, one a symlink."""
    real = tmp_path / "usr/bin/redis-check-rdb"
    real.parent.mkdir(parents=True)
    real.write_bytes(b"\x7fELF redis")
    real.chmod(0o755)
    link = tmp_path / "usr/bin/redis-server"
    link.symlink_to("redis-check-rdb")
    libdir = tmp_path / "lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    (libdir / "libc.so.6").write_bytes(b"libc")
    (libdir / "libjemalloc.so.2.real").write_bytes(b"jemalloc")
    (libdir / "libjemalloc.so.2").symlink_to("libjemalloc.so.2.real")
    return link, [str(libdir / "libc.so.6"), str(libdir / "libjemalloc.so.2")]


def test_image_layout_follows_symlinks_to_the_real_content(tmp_path):
    binary, libs = _fake_install(tmp_path)
    layout = image_layout("redis", binary, libs)
    assert layout == {
        "/usr/local/bin/redis-server": tmp_path / "usr/bin/redis-check-rdb",
        libs[0]: Path(libs[0]),
        libs[1]: tmp_path / "lib/x86_64-linux-gnu/libjemalloc.so.2.real",
    }


def _members(context) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=context, mode="r") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_service_context_lists_exactly_the_files_of_the_image(tmp_path):
    binary, libs = _fake_install(tmp_path)
    context = service_context("redis", binary, libs)
    with tarfile.open(fileobj=context, mode="r") as tar:
        members = {m.name: m for m in tar.getmembers()}
        files = {name: tar.extractfile(m).read() for name, m in members.items() if m.isfile()}
    assert set(files) == {
        "Dockerfile",
        "rootfs/usr/local/bin/redis-server",
        "rootfs" + libs[0],
        "rootfs" + libs[1],
    }
    assert files["rootfs/usr/local/bin/redis-server"] == b"\x7fELF redis"
    assert files["rootfs" + libs[1]] == b"jemalloc"
    assert files["Dockerfile"].decode() == dockerfile_text("redis")
    assert members["rootfs/usr/local/bin/redis-server"].mode == 0o755
    assert members["rootfs/tmp"].isdir() and members["rootfs/tmp"].mode == 0o1777
    assert members["rootfs-owned/data"].isdir() and members["rootfs-owned/data"].mode == 0o755
    assert "rootfs/data" not in members  # copied with --chown, so it must not exist before
    assert not any(m.issym() for m in members.values())
    mtime = int((tmp_path / "usr/bin/redis-check-rdb").stat().st_mtime)
    assert {m.mtime for m in members.values()} == {mtime}
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}


def test_haproxy_context(tmp_path):
    binary = tmp_path / "haproxy"
    binary.write_bytes(b"\x7fELF haproxy")
    lib = tmp_path / "ld-linux-x86-64.so.2"
    lib.write_bytes(b"ld")
    members = _members(service_context("haproxy", binary, [str(lib)]))
    files = {name for name, m in members.items() if m.isfile()}
    assert files == {"Dockerfile", "rootfs/usr/local/sbin/haproxy", f"rootfs{lib}"}
    assert members["rootfs/usr/local/etc/haproxy"].isdir()
    assert not any(name.startswith("rootfs-owned") for name in members)


def test_same_binary_same_context_bytes(tmp_path):
    """The build cache (and so the image id) follows the context: it must not change from run to run."""
    binary, libs = _fake_install(tmp_path)
    first = service_context("redis", binary, libs).getvalue()
    assert service_context("redis", binary, libs).getvalue() == first
    (tmp_path / "usr/bin/redis-check-rdb").write_bytes(b"\x7fELF redis 2")
    assert service_context("redis", binary, libs).getvalue() != first


def test_unreadable_library_is_an_image_error(tmp_path):
    binary, libs = _fake_install(tmp_path)
    with pytest.raises(ImageError, match=r"^cannot read .*/gone\.so \(for .*/gone\.so in the redis image\)"):
        service_context("redis", binary, [*libs, str(tmp_path / "gone.so")])


def test_labels(tmp_path):
    assert service_labels("7.0.15", Path("/usr/bin/redis-server")) == {
        LABEL_VERSION: "7.0.15",
        LABEL_BUILT_FROM: "/usr/bin/redis-server",
    }
    assert LABEL_VERSION == "org.opencontainers.image.version"
    assert LABEL_BUILT_FROM == "io.regdeploy.built-from"


# --------------------------------------------------------------------------------------------------------
# The CLI: `regdeploy image build --service` refuses bad input in one line, exit 2 (before any engine call)
# --------------------------------------------------------------------------------------------------------


def _cli() -> click.Group:
    from regdeploy.cli import image as image_cli
    from regdeploy.cli.common import RegdeployGroup

    @click.group(cls=RegdeployGroup)
    def cli() -> None:
        pass

    image_cli.register(cli)
    return cli


@pytest.fixture
def no_engine(monkeypatch, tmp_path):
    """An engine that cannot answer: these errors must come before regdeploy looks for one."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--service", "nginx"],
            "error: unknown service 'nginx': regdeploy builds images for haproxy, redis\n",
        ),
        (
            ["--service", "redis", "--binary", "/nonexistent/redis-server"],
            "error: redis-server binary /nonexistent/redis-server does not exist "
            "(Debian: apt-get install redis-server)",
        ),
        (
            ["--service", "haproxy", "--binary", "/bin/true"],
            "error: /bin/true is not a haproxy binary: `/bin/true -v` printed ",
        ),
    ],
)
def test_cli_service_errors_are_one_line_exit_2(no_engine, args, message):
    result = CliRunner().invoke(_cli(), ["image", "build", *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_cli_service_and_sidecar_do_not_go_together(no_engine):
    result = CliRunner().invoke(_cli(), ["image", "build", "--service", "redis", "--sidecar"])
    assert result.exit_code == 2
    assert "give one of --service NAME and --sidecar, not both" in result.stderr


def test_cli_help_teaches_the_service_images():
    result = CliRunner().invoke(_cli(), ["image", "build", "--help"])
    assert result.exit_code == 0
    taught = [
        "--service redis|haproxy",
        "/usr/bin/redis-server",
        "/usr/sbin/haproxy",
        "--read-only",
        "redis-server /usr/local/etc/redis/redis.conf",
        "haproxy -db -f",
    ]
    for text in taught:
        assert text in result.output


def test_the_air_gap_hint_names_the_service_build_for_redis_and_haproxy() -> None:
    from regdeploy.image.build import AIRGAP_HINT, airgap_hint

    assert "image build --service redis --tag redis:7" in airgap_hint("redis:7")
    assert "--service haproxy --tag mirror.local/haproxy:2.8" in airgap_hint("mirror.local/haproxy:2.8")
    assert airgap_hint("registry:2") == AIRGAP_HINT
