"""The registry image on a Docker engine: find it, pull it, or build/load it for air-gapped hosts.

A real user normally runs ``registry:2`` pulled from Docker Hub. Hosts that cannot pull get the image by

* :func:`build_from_binary`: a ``FROM scratch`` image around a local distribution binary (e.g. Debian's
  ``docker-registry`` package, ``/usr/bin/docker-registry``) plus the shared libraries it links, no pull;
* :func:`load_tarball`: a ``docker save`` archive carried over.

Every function takes a ``docker.DockerClient`` (local or over SSH). ``docker`` itself is imported lazily so
that ``import regdeploy.image.build`` stays cheap for commands that never talk to an engine.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import struct
import subprocess
import tarfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from regdeploy.errors import ImageError, TransportError

if TYPE_CHECKING:
    from docker import DockerClient

Progress = Callable[[str], None] | None

LABEL_VERSION = "org.opencontainers.image.version"
LABEL_BUILT_FROM = "io.regdeploy.built-from"
LABEL_SMOKE = "io.regdeploy.smoke-nonce"

REGISTRY_PATH_IN_IMAGE = "/bin/registry"
CONFIG_PATH_2X = "/etc/docker/registry/config.yml"
CONFIG_PATH_3X = "/etc/distribution/config.yml"
DATA_DIR = "/var/lib/registry"

AIRGAP_HINT = (
    "on an air-gapped host use `regdeploy image build --binary /usr/bin/docker-registry --tag registry:2` "
    "or `regdeploy image load FILE`"
)

def airgap_hint(ref: str) -> str:
    """How to get *ref* where nothing can be pulled: a cluster's redis or haproxy image, or the registry's."""
    repository = ref.rsplit("/", 1)[-1].partition(":")[0].partition("@")[0]
    for service in ("redis", "haproxy"):
        if repository == service:
            return (
                f"on an air-gapped host use `regdeploy image build --service {service} --tag {ref}` "
                "(from Debian's binary) or `regdeploy image load FILE`"
            )
    return AIRGAP_HINT


# The same defaults as the config baked into the upstream ``registry:2`` image.
DEFAULT_CONFIG = f"""\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {DATA_DIR}
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""

_VERSION_RE = re.compile(r"(?<![\w.])v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)")
# Pull status lines that repeat per chunk: not worth a progress line each.
_NOISY_PULL_STATUS = ("Downloading", "Extracting", "Waiting", "Verifying Checksum")


def say(progress: Progress, message: str) -> None:
    if progress is not None:
        progress(message)


# ---------------------------------------------------------------------------------------------------------
# Errors from the Docker SDK -> regdeploy errors
# ---------------------------------------------------------------------------------------------------------


def _api_reason(exc: BaseException) -> str:
    """The daemon's own message, one line (``APIError.explanation`` when there is one)."""
    explanation = getattr(exc, "explanation", None)
    text = str(explanation) if explanation else str(exc)
    return " ".join(text.split())


def connection_reason(exc: BaseException) -> str:
    """The root cause of a failed connection, short: ``Connection refused``, ``No such file or directory``."""
    root: BaseException = exc
    seen = {id(root)}
    while True:
        nxt = root.__cause__ or root.__context__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        root = nxt
    if isinstance(root, OSError) and root.strerror:
        return root.strerror
    return " ".join(str(root).split()) or type(root).__name__


def _is_connection_error(exc: BaseException) -> bool:
    """True if *exc* means the engine could not be talked to (socket, HTTP, SSH), not that it said no."""
    import paramiko
    import requests.exceptions

    return isinstance(exc, requests.exceptions.RequestException | paramiko.SSHException | OSError)


@contextlib.contextmanager
def docker_errors(action: str) -> Iterator[None]:
    """Turn SDK exceptions raised while doing *action* into ImageError / TransportError (one line).

    The engine said no (APIError, or the SDK rejected the input) -> ImageError with its message;
    the engine could not be reached -> TransportError with the root cause.
    """
    import docker.errors

    try:
        yield
    except docker.errors.APIError as exc:
        raise ImageError(f"{action}: {_api_reason(exc)}") from exc
    except Exception as exc:
        if _is_connection_error(exc):
            reason = connection_reason(exc)
            raise TransportError(f"{action}: the Docker engine cannot be reached: {reason}") from exc
        if isinstance(exc, docker.errors.DockerException):
            raise ImageError(f"{action}: {_api_reason(exc)}") from exc
        raise


# ---------------------------------------------------------------------------------------------------------
# Image references
# ---------------------------------------------------------------------------------------------------------


def split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """``name[:tag][@digest]`` -> (name, tag, digest). A registry port (``host:5000/x``) is not a tag."""
    name, _, digest = ref.partition("@")
    tag: str | None = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag, (digest or None)


def image_id(client: DockerClient, ref: str) -> str | None:
    """The id of image *ref* on the engine, or None if the engine does not have it."""
    import docker.errors

    with docker_errors(f"cannot inspect image {ref!r}"):
        try:
            return str(client.images.get(ref).id)
        except docker.errors.ImageNotFound:
            return None


def _major(version: str) -> int | None:
    match = re.match(r"v?(\d+)", version.strip())
    return int(match.group(1)) if match else None


def registry_major_version(client: DockerClient, ref: str) -> int | None:
    """The distribution major version of image *ref*.

    From the image label ``org.opencontainers.image.version`` when the image is present and has it, else from
    the tag when it starts with a digit (``registry:2`` -> 2, ``registry:3.0.0`` -> 3), else None.
    """
    import docker.errors

    with docker_errors(f"cannot inspect image {ref!r}"):
        try:
            labels = client.images.get(ref).labels or {}
        except docker.errors.ImageNotFound:
            labels = {}
    label = labels.get(LABEL_VERSION)
    if label:
        major = _major(str(label))
        if major is not None:
            return major
    _, tag, _ = split_ref(ref)
    if tag and tag[0].isdigit():
        return _major(tag)
    return None


# ---------------------------------------------------------------------------------------------------------
# ensure_image: present, else pull, else a clear error with the air-gapped way out
# ---------------------------------------------------------------------------------------------------------


def _engine_name(client: DockerClient) -> str:
    try:
        name = client.info().get("Name")
    except Exception:  # only used to word an error message; never hide the real error behind this one
        name = None
    return f"the Docker engine on {name!r}" if name else "the Docker engine"


def ensure_image(
    client: DockerClient,
    ref: str,
    progress: Progress = None,
    pull: bool = True,
    *,
    where: str | None = None,
) -> str:
    """Make sure image *ref* is on the engine and return its id: present -> its id, else pull it.

    *where* names the engine in the error message (default: ``the Docker engine on '<its hostname>'``).
    Raises ImageError (with the air-gapped hint) when the image is absent and cannot be pulled.
    """
    import docker.errors

    found = image_id(client, ref)
    if found is not None:
        return found

    def absent(reason: str) -> ImageError:
        return ImageError(
            f"image {ref!r} is not on {where or _engine_name(client)} and cannot be pulled ({reason}); "
            f"{airgap_hint(ref)}"
        )

    if not pull:
        raise absent("pulling is disabled")

    name, tag, digest = split_ref(ref)
    say(progress, f"pulling {ref} ...")
    try:
        stream = client.api.pull(name, tag=digest or tag or "latest", stream=True, decode=True)
        for chunk in stream:
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                raise absent(" ".join(str(detail.get("message") or chunk.get("error")).split()))
            status = str(chunk.get("status", ""))
            if not status or status.startswith(_NOISY_PULL_STATUS):
                continue
            layer = chunk.get("id")
            say(progress, f"pull {ref}: {layer}: {status}" if layer else f"pull {ref}: {status}")
    except ImageError:
        raise
    except docker.errors.APIError as exc:
        raise absent(_api_reason(exc)) from exc
    except Exception as exc:
        if _is_connection_error(exc):
            reason = connection_reason(exc)
            raise TransportError(
                f"cannot pull {ref!r}: the Docker engine cannot be reached: {reason}"
            ) from exc
        if isinstance(exc, docker.errors.DockerException):
            raise absent(_api_reason(exc)) from exc
        raise
    pulled = image_id(client, ref)
    if pulled is None:
        raise absent("the engine reported success but the image is not there")
    return pulled


# ---------------------------------------------------------------------------------------------------------
# build_from_binary
# ---------------------------------------------------------------------------------------------------------


def check_executable(binary: Path, label: str, what: str, error: type[ImageError], hint: str = "") -> None:
    """That *binary* is an executable ELF file; else *error* naming it as "*label* binary PATH" (with
    *hint* when it is missing) or as not a *what* binary."""
    if not binary.exists():
        raise error(f"{label} binary {binary} does not exist{hint}")
    if not binary.is_file():
        raise error(f"{label} binary {binary} is not a regular file")
    if not os.access(binary, os.X_OK):
        raise error(f"{label} binary {binary} is not executable")
    with binary.open("rb") as fh:
        if fh.read(4) != b"\x7fELF":
            raise error(f"{binary} is not a {what} binary (not an ELF executable)")


def version_output(binary: Path, args: tuple[str, ...], error: type[ImageError]) -> str:
    """What ``BINARY ARGS`` prints (stdout, then stderr), run under the path given; *error* when it
    cannot run."""
    command = [str(binary), *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=20,
                                check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise error(f"cannot run `{' '.join(command)}`: {exc}") from exc
    return result.stdout + "\n" + result.stderr


def binary_version(binary: Path) -> str:
    """The distribution version a registry binary reports (``BINARY --version``), e.g. ``2.8.2``.

    Raises ImageError if the binary is missing, not executable, not an ELF executable, or does not say it is
    CNCF distribution (``github.com/docker/distribution`` / ``distribution/distribution``).
    """
    binary = Path(binary)
    check_executable(binary, "registry", "distribution registry", ImageError)
    output = " ".join(version_output(binary, ("--version",), ImageError).split())
    if "distribution" not in output.lower():
        shown = f"{output[:60]!r}" if output else "nothing"
        raise ImageError(
            f"{binary} is not a distribution registry binary: `{binary} --version` printed {shown}"
        )
    match = _VERSION_RE.search(output)
    if not match:
        raise ImageError(f"cannot find a version number in `{binary} --version` output: {output[:120]!r}")
    return match.group(1)


def _elf_interpreter(binary: Path) -> str | None:
    """The PT_INTERP path of an ELF file (e.g. ``/lib64/ld-linux-x86-64.so.2``), None if static/unreadable."""
    try:
        data = binary.read_bytes()
    except OSError:
        return None
    if len(data) < 64 or data[:4] != b"\x7fELF":
        return None
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    try:
        if is64:
            (phoff,) = struct.unpack_from(endian + "Q", data, 0x20)
            phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
        else:
            (phoff,) = struct.unpack_from(endian + "I", data, 0x1C)
            phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x2A)
        for i in range(phnum):
            base = phoff + i * phentsize
            (p_type,) = struct.unpack_from(endian + "I", data, base)
            if p_type != 3:  # PT_INTERP
                continue
            if is64:
                (offset,) = struct.unpack_from(endian + "Q", data, base + 8)
                (size,) = struct.unpack_from(endian + "Q", data, base + 32)
            else:
                (offset,) = struct.unpack_from(endian + "I", data, base + 4)
                (size,) = struct.unpack_from(endian + "I", data, base + 16)
            return data[offset : offset + size].rstrip(b"\0").decode()
    except (struct.error, UnicodeDecodeError):
        return None
    return None


def shared_libraries(binary: Path) -> list[str]:
    """Absolute paths of the shared libraries *binary* loads (``ldd``), ELF interpreter included.

    An empty list for a static binary. ImageError if a library is not found.
    """
    paths: list[str] = []
    try:
        result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageError(f"cannot run `ldd {binary}` to find its shared libraries: {exc}") from exc
    output = result.stdout + result.stderr
    if result.returncode != 0 and "not a dynamic executable" not in output:
        raise ImageError(f"`ldd {binary}` failed: {' '.join(output.split())[:200]}")
    missing: list[str] = []
    for raw in result.stdout.splitlines():
        line = raw.strip()
        if "=>" in line:
            soname, _, rest = line.partition("=>")
            target = rest.strip()
            if target.startswith("not found"):
                missing.append(soname.strip())
                continue
            path = target.split(" (", 1)[0].strip()
        else:
            path = line.split(" (", 1)[0].strip()
        if path.startswith("/") and path not in paths:
            paths.append(path)
    if missing:
        raise ImageError(f"{binary} needs shared libraries that are not installed: {', '.join(missing)}")
    interpreter = _elf_interpreter(binary)
    if interpreter and interpreter not in paths:
        paths.append(interpreter)
    return paths


def _add_dir(tar: tarfile.TarFile, name: str, mode: int, mtime: int, seen: set[str]) -> None:
    parts = PurePosixPath(name).parts
    for depth in range(1, len(parts) + 1):
        path = "/".join(parts[:depth])
        if path in seen:
            continue
        seen.add(path)
        info = tarfile.TarInfo(path)
        info.type = tarfile.DIRTYPE
        info.mode = mode if depth == len(parts) else 0o755
        info.mtime = mtime
        tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int, mtime: int, seen: set[str]) -> None:
    parent = str(PurePosixPath(name).parent)
    if parent not in (".", ""):
        _add_dir(tar, parent, 0o755, mtime, seen)
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def _context(
    files: Mapping[str, tuple[bytes, int]], dirs: Mapping[str, int], dockerfile: str, mtime: int
) -> io.BytesIO:
    """An in-memory build context: ``Dockerfile`` + ``rootfs/<abs path>`` for each file and dir."""
    buf = io.BytesIO()
    seen: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_file(tar, "Dockerfile", dockerfile.encode(), 0o644, mtime, seen)
        _add_dir(tar, "rootfs", 0o755, mtime, seen)
        for path, mode in dirs.items():
            _add_dir(tar, "rootfs" + path, mode, mtime, seen)
        for path, (data, mode) in files.items():
            _add_file(tar, "rootfs" + path, data, mode, mtime, seen)
    buf.seek(0)
    return buf


def build_context(
    client: DockerClient,
    context: IO[bytes],
    tag: str,
    labels: Mapping[str, str],
    failed: str,
    progress: Progress,
) -> str:
    """Run a no-pull build of the tar *context* and return the image id; errors are ImageErrors
    starting with *failed* ("building X failed") and carrying the daemon's message."""
    built: str | None = None
    with docker_errors(failed):
        stream = client.api.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            pull=False,
            rm=True,
            forcerm=True,
            decode=True,
            labels=dict(labels),
            network_mode="none",
        )
        for chunk in stream:
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                message = " ".join(str(detail.get("message") or chunk.get("error")).split())
                raise ImageError(f"{failed}: {message}")
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                built = str(aux["ID"])
            line = str(chunk.get("stream", "")).strip()
            if line.startswith("Step "):
                say(progress, f"build {tag}: {line}")
    if built is not None:
        return built
    found = image_id(client, tag)  # older engines do not send the aux ID
    if found is None:
        raise ImageError(f"{failed}: the engine did not report the image")
    return found


def build_from_binary(client: DockerClient, binary: Path, tag: str, progress: Progress = None) -> str:
    """Build image *tag* FROM scratch around the distribution binary *binary* (no pull); return its id.

    The image holds the binary as ``/bin/registry``, the shared libraries ``ldd`` names (real content copied
    to the same absolute paths, ELF interpreter included), a default config (filesystem storage at
    ``/var/lib/registry``, http on :5000), ``/var/lib/registry`` and ``/tmp``;
    ``ENTRYPOINT ["/bin/registry"]``, ``CMD ["serve", CONFIG]``, ``EXPOSE 5000``,
    ``VOLUME /var/lib/registry`` and the labels ``org.opencontainers.image.version`` and
    ``io.regdeploy.built-from``. CONFIG is
    ``/etc/docker/registry/config.yml`` for 2.x (``/etc/distribution/config.yml`` for 3.x, as upstream).
    Re-building from an unchanged binary hits the engine's build cache and gives the same id.
    """
    binary = Path(binary)
    version = binary_version(binary)
    real = binary.resolve()
    libraries = shared_libraries(real)
    config_path = CONFIG_PATH_3X if (_major(version) or 2) >= 3 else CONFIG_PATH_2X
    mtime = int(real.stat().st_mtime)
    say(progress, f"build {tag}: distribution {version} from {binary}, {len(libraries)} shared libraries")

    files: dict[str, tuple[bytes, int]] = {REGISTRY_PATH_IN_IMAGE: (real.read_bytes(), 0o755)}
    for lib in libraries:
        source = Path(lib).resolve()  # follow symlinks: copy the real content to the path ldd names
        try:
            files[lib] = (source.read_bytes(), 0o755)
        except OSError as exc:
            raise ImageError(f"cannot read shared library {lib} ({source}) for {binary}: {exc}") from exc
    files[config_path] = (DEFAULT_CONFIG.encode(), 0o644)
    dirs = {DATA_DIR: 0o755, "/tmp": 0o1777}

    dockerfile = "\n".join(
        [
            "FROM scratch",
            "COPY rootfs/ /",
            f"VOLUME {json.dumps([DATA_DIR])}",
            "EXPOSE 5000",
            f"ENTRYPOINT {json.dumps([REGISTRY_PATH_IN_IMAGE])}",
            f"CMD {json.dumps(['serve', config_path])}",
            "",
        ]
    )
    labels = {LABEL_VERSION: version, LABEL_BUILT_FROM: str(binary.absolute())}
    context = _context(files, dirs, dockerfile, mtime)
    image = build_context(client, context, tag, labels, f"building {tag} from {binary} failed", progress)
    say(progress, f"build {tag}: done, image {image[:19]}")
    return image


def build_smoke_image(client: DockerClient, tag: str) -> str:
    """Build a tiny unique image *tag*: FROM scratch, one layer, ``/regdeploy-smoke.txt`` with a nonce.

    For push/pull smoke tests: its content is new to every registry, so a push really uploads a blob.
    """
    nonce = secrets.token_hex(16)
    files = {"/regdeploy-smoke.txt": (f"regdeploy smoke test {nonce}\n".encode(), 0o644)}
    dockerfile = "FROM scratch\nCOPY rootfs/ /\n"
    context = _context(files, {}, dockerfile, 0)
    failed = f"building {tag} from a smoke-test nonce failed"
    return build_context(client, context, tag, {LABEL_SMOKE: nonce}, failed, None)


# ---------------------------------------------------------------------------------------------------------
# load_tarball
# ---------------------------------------------------------------------------------------------------------


def _looks_like_image_archive(path: Path) -> bool:
    """True if *path* is a tar holding ``manifest.json`` (docker save), ``index.json`` or ``repositories``."""
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if member.name.lstrip("./") in ("manifest.json", "repositories", "index.json"):
                    return True
    except (tarfile.TarError, OSError, EOFError):
        return False
    return False


def load_tarball(client: DockerClient, path: Path, progress: Progress = None) -> list[str]:
    """Load a ``docker save`` archive (plain or gzip) into the engine; return the tags it loaded.

    An image saved without a name (``docker save IMAGE_ID``) comes back untagged: its id is returned instead.
    ImageError if the file is missing or not an image archive, or the engine rejects it.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image archive {path} does not exist")
    if not _looks_like_image_archive(path):
        raise ImageError(
            f"{path} is not an image archive (expected a `docker save` tar holding manifest.json)"
        )
    size_mb = path.stat().st_size / 1e6
    say(progress, f"loading {path} ({size_mb:.1f} MB) ...")
    loaded: list[str] = []
    with docker_errors(f"loading {path} failed"), path.open("rb") as fh:
        for chunk in client.api.load_image(fh):
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                message = " ".join(str(detail.get("message") or chunk.get("error")).split())
                raise ImageError(f"loading {path} failed: {message}")
            line = str(chunk.get("stream", "")).strip()
            for prefix in ("Loaded image: ", "Loaded image ID: "):
                if line.startswith(prefix):
                    name = line[len(prefix) :].strip()
                    if name not in loaded:
                        loaded.append(name)
                    say(progress, f"loaded {name}")
    if not loaded:
        raise ImageError(f"loading {path}: the engine loaded no image from it")
    return loaded
