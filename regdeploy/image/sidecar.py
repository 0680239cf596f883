"""regdeploy's sidecar image: this machine's Python, regdeploy and its dependencies, FROM scratch, no pull.

regdeploy's own services (relay, token server) run from one image that regdeploy builds itself, so that a host
which can pull nothing can still run them. The image holds

* the real interpreter behind the running one (``sys._base_executable`` resolved, so a venv's base Python) as
  ``/opt/regdeploy/bin/python3``, and its standard library (sysconfig's ``stdlib``/``platstdlib`` of the base
  installation, plus ``lib-dynload``) at ``/opt/regdeploy/<platlibdir>/python3.X``, less test suites, IDLE,
  tkinter, ensurepip, lib2to3, ``config-*`` and ``__pycache__``;
* the regdeploy package (its directory, as an editable install has it), its templates as
  ``regdeploy/_templates`` and built-in inventory as ``regdeploy/_inventories/local`` (as the wheel lays them
  out), and every distribution in its run-time dependency closure (``Requires-Dist``, markers evaluated for
  this interpreter, extras followed) in ``/opt/regdeploy/lib/python3.X/site-packages``;
* the shared libraries ``ldd`` names for the interpreter and for every ``.so`` copied, at the paths ``ldd``
  names (libraries a wheel bundles beside itself are already in site-packages and are not copied twice);
* ``/etc/passwd`` and ``/etc/group`` naming uid/gid 65532 ``regdeploy``, and ``/tmp``.

Python finds its prefix from the landmark ``<platlibdir>/python3.X/os.py`` searched upwards from the
executable's directory, so the copied interpreter takes ``/opt/regdeploy`` as its prefix wherever it was built
for; ``lib-dynload`` must exist too or it warns about the exec-prefix. ``PYTHONPATH`` names site-packages
because a Debian interpreter only puts ``dist-packages`` directories on ``sys.path``.

Every file's path, mode and bytes (and the Dockerfile) go into one content digest, computed before building:
it is the ``io.regdeploy.content`` label and part of the default tag, so an unchanged package finds its image
already built and a changed one gets a new tag. ``docker`` is imported lazily.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import os
import re
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

import regdeploy
from regdeploy.errors import ImageError
from regdeploy.image.build import LABEL_VERSION, build_context, docker_errors, say, shared_libraries
from regdeploy.image.requirements import marker_environment, requirement_closure
from regdeploy.image.sidecar_ref import default_sidecar_ref

if TYPE_CHECKING:
    from docker import DockerClient

LABEL_SIDECAR = "io.regdeploy.sidecar"
LABEL_CONTENT = "io.regdeploy.content"
REPOSITORY = "regdeploy-sidecar"
ROOT_DISTRIBUTION = "regdeploy"

PREFIX = "/opt/regdeploy"
PYTHON_IN_IMAGE = f"{PREFIX}/bin/python3"
UID = GID = 65532
USER_NAME = "regdeploy"

# Machine-independent tar headers: the same files give the same context bytes on every machine.
_MTIME = 0

# Standard-library parts no regdeploy service imports: dropped at the top of the stdlib ...
_STDLIB_SKIP_TOP = frozenset(
    {"idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages", "dist-packages"}
)
# ... at any depth (test suites live in test/ and in ctypes/test, unittest/test, distutils/tests) ...
_STDLIB_SKIP_ANY = frozenset({"__pycache__", "test", "tests", "idle_test"})
# ... and this machine's own start-up hooks (Debian links sitecustomize.py to /etc): not part of the stdlib.
_STDLIB_SKIP_FILES = frozenset({"sitecustomize.py", "usercustomize.py"})
# Extension modules that only CPython's test suite or tkinter loads (tkinter would pull in X11 and Tk).
_SKIP_EXTENSIONS = ("_test", "_ctypes_test", "_xxtestfuzz", "xxlimited", "_tkinter")
_BYTECODE = (".pyc", ".pyo")

Progress = Callable[[str], None] | None
PY_VERSION = (sys.version_info.major, sys.version_info.minor)


@dataclass(frozen=True)
class ContextFile:
    """One entry of the image: a file (bytes from *source* or *data*) or, with neither, a directory."""

    path_in_image: str
    source: Path | None
    data: bytes | None
    mode: int

    @property
    def is_dir(self) -> bool:
        return self.source is None and self.data is None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.source is None:
            return b""
        try:
            return self.source.read_bytes()
        except OSError as exc:
            raise ImageError(f"cannot read {self.source} for the sidecar image: {exc}") from exc


@dataclass(frozen=True)
class SidecarContext:
    """Everything the image is made of, and the digest of it (``sha256:<hex>``)."""

    files: tuple[ContextFile, ...]
    digest: str
    dockerfile: str
    version: str  # regdeploy's version, for the tag and the org.opencontainers.image.version label
    omitted: tuple[str, ...] = ()  # stdlib extension modules left out: their libraries are not installed

    @property
    def size(self) -> int:
        """Bytes of file content (what the image's one layer roughly weighs)."""
        total = 0
        for entry in self.files:
            if entry.data is not None:
                total += len(entry.data)
            elif entry.source is not None:
                with contextlib.suppress(OSError):
                    total += entry.source.stat().st_size
        return total


# ---------------------------------------------------------------------------------------------------------
# Layout and fixed files
# ---------------------------------------------------------------------------------------------------------


def python_dir_name(version: tuple[int, int] = PY_VERSION) -> str:
    return f"python{version[0]}.{version[1]}"


def stdlib_in_image(version: tuple[int, int] = PY_VERSION, platlibdir: str = sys.platlibdir) -> str:
    """Where the stdlib goes: the interpreter looks for ``<prefix>/<platlibdir>/python3.X/os.py``."""
    return f"{PREFIX}/{platlibdir}/{python_dir_name(version)}"


def site_packages_in_image(version: tuple[int, int] = PY_VERSION) -> str:
    return f"{PREFIX}/lib/{python_dir_name(version)}/site-packages"


def passwd_text() -> str:
    return (
        "root:x:0:0:root:/root:/sbin/nologin\n"
        f"{USER_NAME}:x:{UID}:{GID}:{USER_NAME}:/nonexistent:/sbin/nologin\n"
    )


def group_text() -> str:
    return f"root:x:0:\n{USER_NAME}:x:{GID}:\n"


def dockerfile_text(version: tuple[int, int] = PY_VERSION) -> str:
    """The Dockerfile: one COPY layer, the environment, the user, the entrypoint (labels come separately)."""
    env = {
        "PATH": f"{PREFIX}/bin",
        "PYTHONPATH": site_packages_in_image(version),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        # Do not put the working directory first on sys.path (``-m`` would): nothing mounted shadows a module.
        "PYTHONSAFEPATH": "1",
        # No CA store in the image: Python's ssl takes certifi's bundle (docker-py brings certifi), so
        # the relay can reach public HTTPS targets (GitHub).
        "SSL_CERT_FILE": f"{site_packages_in_image(version)}/certifi/cacert.pem",
    }
    lines = ["FROM scratch", "COPY rootfs/ /"]
    lines += [f"ENV {key}={value}" for key, value in env.items()]
    lines += [
        f"USER {UID}:{GID}",
        f"ENTRYPOINT {json.dumps([PYTHON_IN_IMAGE, '-m', 'regdeploy'])}",
        "",
    ]
    return "\n".join(lines)


def _digest_line(entry: ContextFile, data: bytes) -> tuple[str, bytes]:
    kind = b"d" if entry.is_dir else b"f"
    body = b"" if entry.is_dir else hashlib.sha256(data).hexdigest().encode()
    path = entry.path_in_image
    return path, kind + b"\0" + path.encode() + b"\0" + f"{entry.mode:o}".encode() + b"\0" + body + b"\n"


def _combine(lines: Iterable[tuple[str, bytes]], dockerfile: str) -> str:
    h = hashlib.sha256()
    h.update(b"Dockerfile\0" + hashlib.sha256(dockerfile.encode()).hexdigest().encode() + b"\n")
    for _, line in sorted(lines):
        h.update(line)
    return "sha256:" + h.hexdigest()


def content_digest(entries: Iterable[tuple[ContextFile, bytes]], dockerfile: str) -> str:
    """``sha256:<hex>`` over the Dockerfile and each entry's path, kind, mode and bytes, in path order.

    Each entry's bytes are hashed as they come: *entries* may be a generator reading one file at a time.
    """
    return _combine([_digest_line(entry, data) for entry, data in entries], dockerfile)


_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


# ---------------------------------------------------------------------------------------------------------
# Gathering the files
# ---------------------------------------------------------------------------------------------------------


def stdlib_wanted(relative: PurePosixPath, is_dir: bool) -> bool:
    """Whether the stdlib entry at *relative* (to the stdlib directory) goes into the image."""
    parts = relative.parts
    if not parts:
        return True
    if parts[0] in _STDLIB_SKIP_TOP or parts[0].startswith("config-"):
        return False
    if any(part in _STDLIB_SKIP_ANY for part in parts):
        return False
    if is_dir:
        return True
    if len(parts) == 1 and parts[0] in _STDLIB_SKIP_FILES:
        return False
    return relative.suffix not in _BYTECODE


def extension_wanted(filename: str) -> bool:
    """Whether a ``lib-dynload`` module (``_testcapi.cpython-311-x86_64-linux-gnu.so``) goes in the image."""
    return not filename.split(".", 1)[0].startswith(_SKIP_EXTENSIONS)


def _is_shared_object(name: str) -> bool:
    base = PurePosixPath(name).name
    return base.endswith(".so") or ".so." in base


def _normal_mode(path: Path) -> int:
    """0755 for anything executable, else 0644: the image's user (65532) can read it whoever owns it here."""
    return 0o755 if path.stat().st_mode & 0o111 else 0o644


class _Collector:
    """The image's entries by path (first one wins) and, for copied trees, which real file each came from."""

    def __init__(self) -> None:
        self.entries: dict[str, ContextFile] = {}
        self.tree_sources: set[str] = set()

    def file(self, path_in_image: str, source: Path, *, tree: bool = True) -> None:
        if path_in_image in self.entries:
            return
        real = Path(os.path.realpath(source))
        try:
            mode = _normal_mode(real)
        except OSError as exc:
            raise ImageError(f"cannot read {source} for the sidecar image: {exc}") from exc
        self.entries[path_in_image] = ContextFile(path_in_image, real, None, mode)
        if tree:
            self.tree_sources.add(str(real))

    def data(self, path_in_image: str, data: bytes, mode: int) -> None:
        self.entries.setdefault(path_in_image, ContextFile(path_in_image, None, data, mode))

    def directory(self, path_in_image: str, mode: int) -> None:
        self.entries.setdefault(path_in_image, ContextFile(path_in_image, None, None, mode))

    def tree(self, root: Path, dest: str, keep: Callable[[PurePosixPath, bool], bool]) -> None:
        """Copy the regular files under *root* (symlinked files followed) to *dest*, pruned by *keep*."""
        for dirpath, dirnames, filenames in os.walk(root):
            here = PurePosixPath(Path(dirpath).relative_to(root).as_posix())
            here = PurePosixPath() if str(here) == "." else here
            dirnames[:] = sorted(d for d in dirnames if keep(here / d, True))
            for name in sorted(filenames):
                relative = here / name
                path = Path(dirpath) / name
                if keep(relative, False) and path.is_file():
                    self.file(f"{dest}/{relative}", path)


def base_interpreter() -> Path:
    """The real interpreter binary behind the running one (a venv's base Python, symlinks resolved)."""
    for candidate in (getattr(sys, "_base_executable", ""), sys.executable):
        if not candidate:
            continue
        real = Path(os.path.realpath(candidate))
        try:
            with real.open("rb") as fh:
                if fh.read(4) == b"\x7fELF":
                    return real
        except OSError:
            continue
    raise ImageError(
        f"cannot find the Python interpreter binary behind {sys.executable} (not an ELF file): "
        "the sidecar image copies it"
    )


def stdlib_dirs() -> list[Path]:
    """The base installation's stdlib directories (sysconfig ``stdlib`` then ``platstdlib``, real paths)."""
    base = {
        "base": sys.base_prefix,
        "installed_base": sys.base_prefix,
        "platbase": sys.base_exec_prefix,
        "installed_platbase": sys.base_exec_prefix,
    }
    paths = sysconfig.get_paths(vars=base)
    dirs: list[Path] = []
    for key in ("stdlib", "platstdlib"):
        path = Path(os.path.realpath(paths[key]))
        if path.is_dir() and path not in dirs:
            dirs.append(path)
    if not any((d / "os.py").is_file() for d in dirs):  # an unusual sysconfig: trust where os.py came from
        dirs.insert(0, Path(os.path.realpath(os.__file__)).parent)
    return dirs


def lib_dynload_dir(stdlib: Sequence[Path]) -> Path | None:
    """Where the stdlib's extension modules are: the ``lib-dynload`` entry of sys.path, else in the stdlib."""
    for entry in sys.path:
        if Path(entry).name == "lib-dynload" and Path(entry).is_dir():
            return Path(os.path.realpath(entry))
    for directory in stdlib:
        if (directory / "lib-dynload").is_dir():
            return directory / "lib-dynload"
    return None


def _distribution(name: str) -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _distribution_files(
    dist: importlib.metadata.Distribution, metadata_only: bool
) -> Iterator[tuple[PurePosixPath, Path]]:
    """(path relative to site-packages, real file) of an installed distribution, bytecode and .pth left out.

    *metadata_only*: just the ``.dist-info`` (the package itself is copied from its directory), without the
    RECORD and direct_url.json of an editable install, which describe this machine's checkout.
    """
    root = Path(str(dist.locate_file("")))
    listed = dist.files
    name = str(dist.metadata["Name"])
    relatives: list[PurePosixPath] = []
    if listed is not None:
        relatives = [PurePosixPath(f.as_posix()) for f in listed]
    else:  # no RECORD: the top-level packages and the metadata directory
        top = (dist.read_text("top_level.txt") or "").split()
        if not top and not metadata_only:
            raise ImageError(f"cannot tell which files belong to the Python distribution {name} (no RECORD)")
        candidates = [root / t for t in top] + [root / f"{t}.py" for t in top]
        candidates += [p for t in top for p in root.glob(f"{t}.*.so")]
        info = f"{re.sub(r'[-_.]+', '_', name)}-{dist.version}"
        candidates += [root / f"{info}.dist-info", root / f"{info}.egg-info"]
        for candidate in candidates:
            if candidate.is_dir():
                relatives += [
                    PurePosixPath(p.relative_to(root).as_posix())
                    for p in sorted(candidate.rglob("*"))
                    if p.is_file()
                ]
            elif candidate.is_file():
                relatives.append(PurePosixPath(candidate.relative_to(root).as_posix()))
    for relative in relatives:
        parts = relative.parts
        if not parts or relative.is_absolute() or ".." in parts or "__pycache__" in parts:
            continue
        if relative.suffix in _BYTECODE or (len(parts) == 1 and relative.suffix == ".pth"):
            continue
        if len(parts) == 1 and parts[0].startswith(("__editable__", "_editable_impl_")):
            continue
        if metadata_only and (
            not parts[0].endswith((".dist-info", ".egg-info")) or parts[-1] in ("RECORD", "direct_url.json")
        ):
            continue
        path = root / relative
        if path.is_file():
            yield relative, path


def _python_packages(files: _Collector, site: str, templates_dir: Path | None) -> None:
    """regdeploy (its directory), its templates and built-in inventory, and its dependency closure."""
    from regdeploy.deploy.templates import builtin_templates_dir
    from regdeploy.inventory.loader import builtin_inventory_path

    package = Path(regdeploy.__file__).resolve().parent
    data_dirs = ("_templates", "_inventories")
    files.tree(
        package,
        f"{site}/regdeploy",
        lambda rel, is_dir: (
            not (
                "__pycache__" in rel.parts
                or rel.parts[0] in data_dirs
                or (not is_dir and rel.suffix in _BYTECODE)
            )
        ),
    )
    templates = templates_dir if templates_dir is not None else builtin_templates_dir()
    if not templates.is_dir():
        raise ImageError(f"the templates directory {templates} does not exist")
    files.tree(templates, f"{site}/regdeploy/_templates", _no_cache)
    inventory = builtin_inventory_path().parent
    if inventory.is_dir():
        files.tree(inventory, f"{site}/regdeploy/_inventories/local", _no_cache)

    found: dict[str, importlib.metadata.Distribution] = {}

    def requires_of(name: str) -> list[str] | None:
        dist = _distribution(name)
        if dist is None:
            return None
        found[name] = dist
        return list(dist.requires or [])

    for name in requirement_closure(ROOT_DISTRIBUTION, requires_of, marker_environment()):
        dist = found[name]
        for relative, path in _distribution_files(dist, metadata_only=name == ROOT_DISTRIBUTION):
            files.file(f"{site}/{relative}", path)


def _no_cache(relative: PurePosixPath, is_dir: bool) -> bool:
    return "__pycache__" not in relative.parts and (is_dir or relative.suffix not in _BYTECODE)


def sidecar_context(templates_dir: Path | None = None) -> SidecarContext:
    """Gather the sidecar image's files from this machine: reads the filesystem, runs ``ldd``, builds nothing.

    *templates_dir* replaces regdeploy's built-in templates (``regdeploy/_templates`` in the image).
    ImageError when the interpreter, a dependency or a shared library cannot be found.
    """
    lib = stdlib_in_image()
    site = site_packages_in_image()
    files = _Collector()
    interpreter = base_interpreter()
    files.file(PYTHON_IN_IMAGE, interpreter, tree=False)

    stdlib = stdlib_dirs()
    for directory in stdlib:
        files.tree(
            directory,
            lib,
            lambda rel, is_dir: rel.parts[:1] != ("lib-dynload",) and stdlib_wanted(rel, is_dir),
        )
    files.directory(f"{lib}/lib-dynload", 0o755)  # the exec-prefix landmark, even when it holds no module
    dynload = lib_dynload_dir(stdlib)
    if dynload is not None:
        files.tree(
            dynload,
            f"{lib}/lib-dynload",
            lambda rel, is_dir: _no_cache(rel, is_dir) and extension_wanted(rel.name),
        )
    _python_packages(files, site, templates_dir)

    # Shared libraries: the interpreter's, then each extension module's. A stdlib module whose libraries are
    # not installed cannot be imported here either: it is left out. A package's must be found.
    libraries: set[str] = set()
    omitted: list[str] = []
    stdlib_so_prefix = f"{lib}/"
    for path, entry in sorted(files.entries.items()):
        if entry.source is None or not (path == PYTHON_IN_IMAGE or _is_shared_object(path)):
            continue
        try:
            needed = shared_libraries(entry.source)
        except ImageError:
            if path.startswith(stdlib_so_prefix) and not path.startswith(site + "/"):
                omitted.append(PurePosixPath(path).name)
                del files.entries[path]
                continue
            raise
        libraries.update(needed)
    for library in sorted(libraries):
        if os.path.realpath(library) in files.tree_sources:
            continue  # a wheel's bundled library (cffi.libs/...): already copied beside the package
        files.file(library, Path(library), tree=False)

    files.data("/etc/passwd", passwd_text().encode(), 0o644)
    files.data("/etc/group", group_text().encode(), 0o644)
    files.directory("/tmp", 0o1777)

    entries = tuple(sorted(files.entries.values(), key=lambda e: e.path_in_image))
    dockerfile = dockerfile_text()
    digest = content_digest(((e, e.read()) for e in entries), dockerfile)
    return SidecarContext(entries, digest, dockerfile, regdeploy.__version__, tuple(omitted))


# ---------------------------------------------------------------------------------------------------------
# The build context (tar) and the build
# ---------------------------------------------------------------------------------------------------------


def _tar_entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = _MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_context(ctx: SidecarContext, out: IO[bytes]) -> str:
    """Write the build context tar (``Dockerfile`` + ``rootfs/<path>``) to *out*; return the digest of what
    was written, which differs from ``ctx.digest`` only if a file changed since the context was gathered."""
    dir_modes = {e.path_in_image: e.mode for e in ctx.files if e.is_dir}
    written: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dockerfile = ctx.dockerfile.encode()
        tar.addfile(_tar_entry("Dockerfile", tarfile.REGTYPE, 0o644, len(dockerfile)), io.BytesIO(dockerfile))

        def add_dir(path: str) -> None:
            if path in seen:
                return
            parent = str(PurePosixPath(path).parent)
            if path != "/" and parent != path:
                add_dir(parent)
            seen.add(path)
            name = "rootfs" + ("" if path == "/" else path)
            tar.addfile(_tar_entry(name, tarfile.DIRTYPE, dir_modes.get(path, 0o755)))

        for entry in ctx.files:
            if entry.is_dir:
                add_dir(entry.path_in_image)
                written.append(_digest_line(entry, b""))
                continue
            add_dir(str(PurePosixPath(entry.path_in_image).parent))
            data = entry.read()
            info = _tar_entry("rootfs" + entry.path_in_image, tarfile.REGTYPE, entry.mode, len(data))
            tar.addfile(info, io.BytesIO(data))
            written.append(_digest_line(entry, data))
    return _combine(written, ctx.dockerfile)


def sidecar_labels(ctx: SidecarContext) -> dict[str, str]:
    return {LABEL_SIDECAR: "1", LABEL_CONTENT: ctx.digest, LABEL_VERSION: ctx.version}


def _present(client: DockerClient, tag: str, digest: str) -> str | None:
    """The id of image *tag* if it is a sidecar image with content *digest*, else None."""
    import docker.errors

    with docker_errors(f"cannot inspect image {tag!r}"):
        try:
            image = client.images.get(tag)
        except docker.errors.ImageNotFound:
            return None
    labels = image.labels or {}
    if labels.get(LABEL_SIDECAR) == "1" and labels.get(LABEL_CONTENT) == digest:
        return str(image.id)
    return None


def build_sidecar(
    client: DockerClient, tag: str | None = None, progress: Callable[[str], None] | None = None
) -> tuple[str, str]:
    """Build the sidecar image from this machine's files (no pull); return ``(tag, image id)``.

    *tag* defaults to the one ``up`` asks for (``sidecar_ref.default_sidecar_ref``). If image *tag*
    exists with the same ``io.regdeploy.content`` label it is returned as it is. The build context
    is spooled to a temporary file and streamed to the engine. ImageError (one line) when a file is
    missing or the engine refuses; TransportError if it is unreachable.
    """
    ctx = sidecar_context()
    tag = tag or default_sidecar_ref()
    existing = _present(client, tag, ctx.digest)
    if existing is not None:
        say(progress, f"sidecar {tag}: already built ({ctx.digest[:19]}), image {existing[:19]}")
        return tag, existing
    for name in ctx.omitted:
        say(progress, f"sidecar {tag}: leaving out {name}: its shared libraries are not installed here")
    size = f"{len(ctx.files)} files, {ctx.size / 1e6:.1f} MB"
    say(progress, f"sidecar {tag}: {size}, content {ctx.digest[:19]}")
    with tempfile.TemporaryFile(prefix="regdeploy-sidecar-") as fh:
        written = write_context(ctx, fh)
        if written != ctx.digest:
            raise ImageError(
                f"building the sidecar image {tag} failed: files changed while its build context was written "
                "(a package being installed?); run it again"
            )
        fh.seek(0)
        image = build_context(
            client, fh, tag, sidecar_labels(ctx), f"building the sidecar image {tag} failed", progress
        )
    say(progress, f"sidecar {tag}: done, image {image[:19]}")
    return tag, image
