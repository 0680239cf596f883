"""Images for the services next to a registry (redis, haproxy), built offline from Debian's binaries.

:func:`build_service_image` builds a ``FROM scratch`` image around a local ``redis-server`` or ``haproxy``
the way :func:`regdeploy.image.build.build_from_binary` builds the registry image: no pull, the binary at the
path the official image has it (``/usr/local/bin/redis-server`` as in ``redis:7``, ``/usr/local/sbin/haproxy``
as in ``haproxy:2.8``), every shared library ``ldd`` names at its own path (the ELF interpreter included),
``ENV PATH`` as upstream, no entrypoint and upstream's ``CMD``, so ``docker run IMAGE redis-server FILE`` and
``docker run IMAGE haproxy -db -f FILE`` work as they do with the official images.

What the binaries read at run time besides their libraries (traced with ``strace`` for Debian 12's redis
7.0.15 and haproxy 2.6.12): both open OpenSSL's ``/usr/lib/ssl/openssl.cnf`` (absent -> OpenSSL's built-in
defaults, silently), haproxy reads the system CA directory ``/usr/lib/ssl/certs`` at start (absent ->
nothing loaded, silently: a ``mode tcp`` proxy needs no CA; mount one for ``ca-file``), redis its locale
files and ``/etc/localtime`` (absent -> the C locale and UTC). Nothing of this is needed, so none of it goes
in: the host's own CA store would make the image depend on the build machine.

Both run hardened (user 65532:65532, read-only root, ``CapDrop: ALL``, ``no-new-privileges``, memory and pids
limits) with a config file mounted read-only; ``/tmp`` (1777) is there for a tmpfs, and redis has ``/data``
(its working directory, owned by 65532:65532 so that a volume mounted there is writable by that user).
Re-building from an unchanged binary hits the engine's build cache and gives the same image id.

Running them hardened, found by trying (Docker 20.10, both images):

* redis: ``redis-server /usr/local/etc/redis/redis.conf`` with ``dir /tmp`` (a tmpfs) and ``save ""``; the
  secret stays in the mounted file (``requirepass``), out of ``docker inspect`` and the logs. It logs
  ``Ready to accept connections`` once it listens (7.2 and later add `` tcp``).
* haproxy: no ``chroot`` (it needs root), no ``user``/``group`` by name (no ``/etc/passwd``; a numeric
  ``uid`` equal to the container's is harmless), a ``stats socket`` only under ``/tmp``, no ``pidfile``
  (ignored with ``-db``, fatal with ``-W`` unless under ``/tmp``); ``daemon`` is ignored with ``-db``. Ports
  below 1024 bind as non-root on Docker (its containers set ``ip_unprivileged_port_start=0``), not on every
  runtime: use 8443-style ports. Server names are resolved once at start (libc) and an unresolvable one stops
  it: ``default-server init-addr last,libc,none`` with a ``resolvers`` section (Docker's ``127.0.0.11:53``)
  lets it start before its backends. With ``-db`` alone it prints nothing once it listens (``-V`` prints
  ``Using epoll() as the polling mechanism.``, but before it binds); in master-worker mode (``-W -db``) the
  master prints ``[NOTICE]   (1) : Loading success.`` on stderr after binding.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from regdeploy.errors import EXIT_INPUT, ImageError
from regdeploy.image.build import (
    LABEL_BUILT_FROM,
    LABEL_VERSION,
    Progress,
    _context,
    build_context,
    check_executable,
    say,
    shared_libraries,
    version_output,
)

if TYPE_CHECKING:
    from docker import DockerClient

PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UID = GID = 65532
# Build-context folder of the directories copied with --chown (the context's rootfs/ is copied as root).
OWNED_IN_CONTEXT = "rootfs-owned"


class ServiceBinaryError(ImageError):
    """The binary given for a service is missing, not executable, or not that service's binary: bad input."""

    exit_code = EXIT_INPUT


@dataclass(frozen=True)
class ServiceImage:
    """How one service's image is laid out, and how its binary says its version."""

    name: str
    binary_in_image: str
    default_binary: str
    version_args: tuple[str, ...]
    version_pattern: re.Pattern[str]
    what: str  # the binary's name, for messages
    package: str  # the Debian package that installs default_binary
    cmd: tuple[str, ...]
    expose: tuple[int, ...] = ()
    dirs: Mapping[str, int] = field(default_factory=dict)
    owned_dirs: tuple[str, ...] = ()  # copied again with --chown=65532:65532
    workdir: str | None = None
    stopsignal: str | None = None


SERVICES: Mapping[str, ServiceImage] = {
    "redis": ServiceImage(
        name="redis",
        binary_in_image="/usr/local/bin/redis-server",
        default_binary="/usr/bin/redis-server",
        version_args=("--version",),
        # "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=..."
        version_pattern=re.compile(r"\bRedis server v=(\d+\.\d+\.\d+)"),
        what="redis-server",
        package="redis-server",
        cmd=("redis-server",),
        expose=(6379,),
        dirs={"/tmp": 0o1777, "/data": 0o755},
        owned_dirs=("/data",),
        workdir="/data",
    ),
    "haproxy": ServiceImage(
        name="haproxy",
        binary_in_image="/usr/local/sbin/haproxy",
        default_binary="/usr/sbin/haproxy",
        version_args=("-v",),
        # "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"
        version_pattern=re.compile(r"\bHAProxy version (\d+\.\d+(?:\.\d+)?)"),
        what="haproxy",
        package="haproxy",
        cmd=("haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"),
        dirs={"/tmp": 0o1777, "/usr/local/etc/haproxy": 0o755},
        # As the official image: SIGUSR1 is haproxy's soft stop (listeners close, sessions finish).
        stopsignal="SIGUSR1",
    ),
}


def service_image(name: str) -> ServiceImage:
    """The layout of service *name*; ServiceBinaryError (exit 2) naming the known ones otherwise."""
    try:
        return SERVICES[name]
    except KeyError:
        known = ", ".join(sorted(SERVICES))
        raise ServiceBinaryError(f"unknown service {name!r}: regdeploy builds images for {known}") from None


def parse_version(name: str, output: str, command: str | None = None) -> str:
    """The version in what service *name*'s binary printed (``redis-server --version``, ``haproxy -v``).

    ``Redis server v=7.0.15 sha=...`` -> ``7.0.15``; ``HAProxy version 2.6.12-1+deb12u4 2026/10/17`` ->
    ``2.6.12`` (the distribution's package revision dropped). ServiceBinaryError if it is not there; its
    message names *command* (default: the service's own, ``redis-server --version``).
    """
    svc = service_image(name)
    match = svc.version_pattern.search(output)
    if not match:
        text = " ".join(output.split())
        shown = f"{text[:60]!r}" if text else "nothing"
        command = command or " ".join((svc.what, *svc.version_args))
        raise ServiceBinaryError(f"not a {svc.what} binary: `{command}` printed {shown}")
    return match.group(1)


def binary_version(name: str, binary: Path) -> str:
    """Run service *name*'s *binary* to ask its version; ServiceBinaryError (one line) if it is not one.

    The binary runs under the path given, not its resolved one: Debian's ``/usr/bin/redis-server`` is a
    symlink to ``redis-check-rdb``, and redis picks its mode from ``argv[0]``.
    """
    svc = service_image(name)
    binary = Path(binary)
    hint = f" (Debian: apt-get install {svc.package})"
    check_executable(binary, svc.what, svc.what, ServiceBinaryError, hint)
    output = version_output(binary, svc.version_args, ServiceBinaryError)
    try:
        return parse_version(name, output, " ".join([str(binary), *svc.version_args]))
    except ServiceBinaryError as exc:
        raise ServiceBinaryError(f"{binary} is {exc}") from None


def image_layout(name: str, binary: Path, libraries: Sequence[str]) -> dict[str, Path]:
    """Path in the image -> file on this machine whose content goes there, for service *name*.

    The binary's real content (symlinks followed) at the service's path, each of *libraries* (``ldd``'s
    absolute paths) at its own path with the content it resolves to.
    """
    svc = service_image(name)
    layout = {svc.binary_in_image: Path(binary).resolve()}
    for lib in libraries:
        layout.setdefault(lib, Path(lib).resolve())
    return layout


def dockerfile_text(name: str) -> str:
    """The Dockerfile of service *name*'s image (labels are added by the build, not here)."""
    svc = service_image(name)
    lines = ["FROM scratch", "COPY rootfs/ /"]
    # A directory owned by the service user must not exist before its COPY: the legacy builder chowns the
    # destination itself only when it creates it. So it travels outside rootfs/ (see context_dirs).
    lines += [f"COPY --chown={UID}:{GID} {OWNED_IN_CONTEXT}{path} {path}" for path in svc.owned_dirs]
    lines.append(f"ENV PATH={PATH_ENV}")
    if svc.workdir:
        lines.append(f"WORKDIR {svc.workdir}")
    lines += [f"EXPOSE {port}/tcp" for port in svc.expose]
    if svc.stopsignal:
        lines.append(f"STOPSIGNAL {svc.stopsignal}")
    lines.append(f"CMD {json.dumps(list(svc.cmd))}")
    return "\n".join(lines) + "\n"


def context_dirs(name: str) -> dict[str, int]:
    """The directories to give ``build._context``, which puts each at ``rootfs<path>``: an owned one is
    named so that it lands at ``rootfs-owned<path>`` (``OWNED_IN_CONTEXT``) instead."""
    svc = service_image(name)
    outside = OWNED_IN_CONTEXT.removeprefix("rootfs")
    return {(outside + path if path in svc.owned_dirs else path): mode for path, mode in svc.dirs.items()}


def service_labels(version: str, binary: Path) -> dict[str, str]:
    """The image's labels: the binary's version and where it was built from."""
    return {LABEL_VERSION: version, LABEL_BUILT_FROM: str(Path(binary).absolute())}


def service_context(name: str, binary: Path, libraries: Sequence[str]) -> io.BytesIO:
    """The build context (a tar: ``Dockerfile``, ``rootfs/``, ``rootfs-owned/``) of service *name*'s image
    around *binary* and *libraries* (``shared_libraries(binary)``). Every entry has the binary's mtime and
    fixed modes, so an unchanged binary gives the same bytes (a build-cache hit, the same image id).
    ImageError if a file cannot be read."""
    real = Path(binary).resolve()
    files: dict[str, tuple[bytes, int]] = {}
    for path, source in image_layout(name, binary, libraries).items():
        try:
            files[path] = (source.read_bytes(), 0o755)
        except OSError as exc:
            raise ImageError(f"cannot read {source} (for {path} in the {name} image): {exc}") from exc
    try:
        mtime = int(real.stat().st_mtime)
    except OSError as exc:
        raise ImageError(f"cannot read {binary}: {exc}") from exc
    return _context(files, context_dirs(name), dockerfile_text(name), mtime)


def build_service_image(
    client: DockerClient, service: str, binary: Path, tag: str, progress: Progress = None
) -> str:
    """Build image *tag* FROM scratch around *service*'s *binary* (no pull); return its id.

    *service* is ``redis`` (binary e.g. Debian's ``/usr/bin/redis-server``) or ``haproxy``
    (``/usr/sbin/haproxy``). ServiceBinaryError (exit 2) for an unknown service or a missing or wrong
    binary; ImageError when a library is missing or the engine refuses the build; TransportError when the
    engine cannot be reached.
    """
    svc = service_image(service)
    binary = Path(binary)
    version = binary_version(svc.name, binary)
    libraries = shared_libraries(binary.resolve())
    say(progress, f"build {tag}: {svc.what} {version} from {binary}, {len(libraries)} shared libraries")
    context = service_context(svc.name, binary, libraries)
    failed = f"building {tag} from {binary} failed"
    image = build_context(client, context, tag, service_labels(version, binary), failed, progress)
    say(progress, f"build {tag}: done, image {image[:19]}")
    return image
