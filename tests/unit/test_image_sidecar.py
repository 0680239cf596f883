"""image.sidecar: stdlib filter, layout, digest and build context (no engine)."""

from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path, PurePosixPath

import pytest

import regdeploy
from regdeploy.errors import ImageError
from regdeploy.image.sidecar import (
    GID,
    PYTHON_IN_IMAGE,
    UID,
    ContextFile,
    SidecarContext,
    content_digest,
    dockerfile_text,
    extension_wanted,
    group_text,
    passwd_text,
    sidecar_context,
    site_packages_in_image,
    stdlib_in_image,
    stdlib_wanted,
    write_context,
)

# --------------------------------------------------------------------------------------------------------
# What of the stdlib goes in
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "is_dir", "wanted"),
    [
        ("os.py", False, True),
        ("_sysconfigdata__linux_x86_64-linux-gnu.py", False, True),
        ("encodings", True, True),
        ("encodings/utf_8.py", False, True),
        ("test", True, False),
        ("idlelib", True, False),
        ("tkinter", True, False),
        ("turtledemo", True, False),
        ("ensurepip", True, False),
        ("lib2to3", True, False),
        ("site-packages", True, False),
        ("dist-packages", True, False),
        ("config-3.11-x86_64-linux-gnu", True, False),
        ("__pycache__", True, False),
        ("json/__pycache__", True, False),
        ("ctypes/test", True, False),
        ("unittest/test", True, False),
        ("distutils/tests", True, False),
        ("unittest/mock.py", False, True),
        ("os.cpython-311.pyc", False, False),
        ("sitecustomize.py", False, False),
        ("json/sitecustomize.py", False, True),
    ],
)
def test_stdlib_wanted(path, is_dir, wanted):
    assert stdlib_wanted(PurePosixPath(path), is_dir) is wanted


@pytest.mark.parametrize(
    ("name", "wanted"),
    [
        ("_ssl.cpython-311-x86_64-linux-gnu.so", True),
        ("_hashlib.cpython-311-x86_64-linux-gnu.so", True),
        ("_sqlite3.cpython-311-x86_64-linux-gnu.so", True),
        ("_testcapi.cpython-311-x86_64-linux-gnu.so", False),
        ("_testmultiphase.cpython-311-x86_64-linux-gnu.so", False),
        ("_ctypes_test.cpython-311-x86_64-linux-gnu.so", False),
        ("_xxtestfuzz.cpython-311-x86_64-linux-gnu.so", False),
        ("xxlimited_35.cpython-311-x86_64-linux-gnu.so", False),
        ("_tkinter.cpython-311-x86_64-linux-gnu.so", False),
        ("_xxsubinterpreters.cpython-311-x86_64-linux-gnu.so", True),
    ],
)
def test_extension_wanted(name, wanted):
    assert extension_wanted(name) is wanted


# --------------------------------------------------------------------------------------------------------
# Layout, fixed files, digest and tag
# --------------------------------------------------------------------------------------------------------


def test_layout_puts_the_stdlib_where_the_interpreter_looks_for_its_landmark():
    assert PYTHON_IN_IMAGE == "/opt/regdeploy/bin/python3"
    assert stdlib_in_image((3, 11), "lib") == "/opt/regdeploy/lib/python3.11"
    assert stdlib_in_image((3, 12), "lib64") == "/opt/regdeploy/lib64/python3.12"
    assert site_packages_in_image((3, 11)) == "/opt/regdeploy/lib/python3.11/site-packages"


def test_dockerfile():
    text = dockerfile_text((3, 11))
    lines = text.splitlines()
    assert lines[:2] == ["FROM scratch", "COPY rootfs/ /"]
    assert f"USER {UID}:{GID}" in lines
    entrypoint = next(line for line in lines if line.startswith("ENTRYPOINT "))
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == [
        "/opt/regdeploy/bin/python3",
        "-m",
        "regdeploy",
    ]
    env = dict(line.removeprefix("ENV ").split("=", 1) for line in lines if line.startswith("ENV "))
    assert env == {
        "PATH": "/opt/regdeploy/bin",
        "PYTHONPATH": "/opt/regdeploy/lib/python3.11/site-packages",
        "SSL_CERT_FILE": "/opt/regdeploy/lib/python3.11/site-packages/certifi/cacert.pem",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONSAFEPATH": "1",
    }
    assert not any(line.startswith(("RUN", "LABEL", "ARG")) for line in lines)


def test_passwd_and_group_name_the_image_user():
    users = {line.split(":")[0]: line.split(":") for line in passwd_text().splitlines()}
    assert users["regdeploy"][2:4] == [str(UID), str(GID)]
    assert users["regdeploy"][1] == "x"  # no password hash, ever
    groups = {line.split(":")[0]: line.split(":") for line in group_text().splitlines()}
    assert groups["regdeploy"][2] == str(GID)
    assert UID == GID == 65532


def _entry(path, data=b"x", mode=0o644):
    return ContextFile(path, None, data, mode)


def test_content_digest_covers_path_mode_bytes_kind_and_dockerfile():
    base = [(_entry("/a"), b"x"), (_entry("/b", b"y"), b"y")]
    digest = content_digest(base, "FROM scratch\n")
    assert digest.startswith("sha256:") and len(digest) == 7 + 64
    assert content_digest(list(reversed(base)), "FROM scratch\n") == digest  # order does not matter
    variants = [
        [(_entry("/a", mode=0o755), b"x"), base[1]],
        [(_entry("/a", b"z"), b"z"), base[1]],
        [(_entry("/c"), b"x"), base[1]],
        [(ContextFile("/a", None, None, 0o644), b""), base[1]],
        base[:1],
    ]
    assert len({digest, *(content_digest(v, "FROM scratch\n") for v in variants)}) == 1 + len(variants)
    assert content_digest(base, "FROM scratch\nUSER 1\n") != digest


def _context(files, version="0.1.0"):
    dockerfile = dockerfile_text((3, 11))
    digest = content_digest(((f, f.read()) for f in files), dockerfile)
    return SidecarContext(tuple(files), digest, dockerfile, version)



# --------------------------------------------------------------------------------------------------------
# The build context tar
# --------------------------------------------------------------------------------------------------------


def test_write_context(tmp_path):
    script = tmp_path / "tool"
    script.write_bytes(b"#!/bin/false\n")
    files = [
        ContextFile("/etc/passwd", None, passwd_text().encode(), 0o644),
        ContextFile("/opt/regdeploy/bin/python3", script, None, 0o755),
        ContextFile("/opt/regdeploy/lib/python3.11/lib-dynload", None, None, 0o755),
        ContextFile("/tmp", None, None, 0o1777),
    ]
    ctx = _context(files)
    out = io.BytesIO()
    assert write_context(ctx, out) == ctx.digest
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("Dockerfile").read().decode() == ctx.dockerfile  # type: ignore[union-attr]
        assert tar.extractfile("rootfs/opt/regdeploy/bin/python3").read() == b"#!/bin/false\n"  # type: ignore[union-attr]
    names = list(members)
    assert names[0] == "Dockerfile"
    for name in ("rootfs", "rootfs/etc", "rootfs/opt", "rootfs/opt/regdeploy", "rootfs/opt/regdeploy/bin"):
        assert members[name].isdir() and members[name].mode == 0o755
        assert names.index(name) < names.index("rootfs/opt/regdeploy/bin/python3")  # parents first
    assert members["rootfs/tmp"].isdir() and members["rootfs/tmp"].mode == 0o1777
    assert members["rootfs/opt/regdeploy/lib/python3.11/lib-dynload"].isdir()
    assert members["rootfs/etc/passwd"].mode == 0o644
    assert members["rootfs/opt/regdeploy/bin/python3"].mode == 0o755
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members.values())
    assert len(names) == len(set(names))


def test_write_context_reports_a_file_that_changed(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("A = 1\n")
    ctx = _context([ContextFile("/opt/mod.py", source, None, 0o644)])
    source.write_text("A = 2\n")
    assert write_context(ctx, io.BytesIO()) != ctx.digest


# --------------------------------------------------------------------------------------------------------
# sidecar_context() on this machine (reads the local installation and runs ldd; builds nothing)
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_context() -> SidecarContext:
    return sidecar_context()


def _paths(ctx):
    return {f.path_in_image: f for f in ctx.files}


def test_local_context_has_the_interpreter_stdlib_and_landmarks(local_context):
    paths = _paths(local_context)
    lib = stdlib_in_image()
    python = paths[PYTHON_IN_IMAGE]
    assert python.source is not None and python.source.read_bytes()[:4] == b"\x7fELF"
    assert python.mode == 0o755
    for name in (
        "os.py",
        "site.py",
        "sysconfig.py",
        "ssl.py",
        "http/server.py",
        "socketserver.py",
        "json/__init__.py",
        "encodings/utf_8.py",
        "getpass.py",
    ):
        assert f"{lib}/{name}" in paths, name
    assert any(p.startswith(f"{lib}/_sysconfigdata_") for p in paths)  # what `import sysconfig` reads
    assert paths[f"{lib}/lib-dynload"].is_dir
    dynload = {PurePosixPath(p).name.split(".")[0] for p in paths if p.startswith(f"{lib}/lib-dynload/")}
    import sys

    if "_ssl" not in sys.builtin_module_names:
        assert {"_ssl", "_hashlib", "_json", "_socket", "select"} <= dynload
    assert not any(name.startswith(("_test", "_tkinter", "xxlimited")) for name in dynload)


def test_local_context_leaves_out_bytecode_tests_and_machine_hooks(local_context):
    lib = stdlib_in_image()
    for path in _paths(local_context):
        parts = PurePosixPath(path).parts
        assert "__pycache__" not in parts and not path.endswith((".pyc", ".pyo")), path
        if path.startswith(lib + "/") and "/site-packages/" not in path:
            rel = PurePosixPath(path).relative_to(lib).parts
            assert rel[0] not in ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"), path
            assert not rel[0].startswith("config-"), path
            assert rel[0] != "sitecustomize.py"
        assert not PurePosixPath(path).name.endswith(".pth"), path


def test_local_context_has_regdeploy_its_templates_and_dependencies(local_context):
    paths = _paths(local_context)
    site = site_packages_in_image()
    package = Path(regdeploy.__file__).resolve().parent
    assert paths[f"{site}/regdeploy/__init__.py"].source == package / "__init__.py"
    assert f"{site}/regdeploy/image/sidecar.py" in paths
    assert f"{site}/regdeploy/_templates/config.yml.j2" in paths
    assert f"{site}/regdeploy/_inventories/local/hosts.yml" in paths
    assert any(p.startswith(f"{site}/regdeploy-") and p.endswith(".dist-info/METADATA") for p in paths)
    assert not any(p.endswith(("/direct_url.json",)) and "/regdeploy-" in p for p in paths)
    for module in (
        "click/__init__.py",
        "jinja2/__init__.py",
        "markupsafe/__init__.py",
        "yaml/__init__.py",
        "cryptography/__init__.py",
        "bcrypt/__init__.py",
        "paramiko/__init__.py",
        "nacl/__init__.py",
        "docker/__init__.py",
        "requests/__init__.py",
        "urllib3/__init__.py",
        "cffi/__init__.py",
        "certifi/cacert.pem",
    ):
        assert f"{site}/{module}" in paths, module
    assert any(p.startswith(f"{site}/cryptography/hazmat/bindings/_rust") for p in paths)
    assert not any(
        p.startswith((f"{site}/pytest", f"{site}/ruff", f"{site}/mypy/", f"{site}/ansible")) for p in paths
    )


def test_local_context_has_every_shared_library_ldd_names(local_context):
    from regdeploy.image.build import shared_libraries

    paths = _paths(local_context)
    sources = {str(f.source.resolve()) for f in local_context.files if f.source is not None}
    site = site_packages_in_image()
    rust = next(f for p, f in paths.items() if p.startswith(f"{site}/cryptography/hazmat/bindings/_rust"))
    assert rust.source is not None
    for elf in (paths[PYTHON_IN_IMAGE].source, rust.source):
        assert elf is not None
        for library in shared_libraries(elf):
            assert library in paths or str(Path(library).resolve()) in sources, library


def test_local_context_modes_and_fixed_files(local_context):
    paths = _paths(local_context)
    assert {f.mode for f in local_context.files} <= {0o644, 0o755, 0o1777}
    assert paths["/tmp"].is_dir and stat.S_IMODE(paths["/tmp"].mode) == 0o1777
    assert paths["/etc/passwd"].data == passwd_text().encode()
    assert paths["/etc/group"].data == group_text().encode()
    assert local_context.version == regdeploy.__version__
    assert [f.path_in_image for f in local_context.files] == sorted(paths)


def test_local_context_digest_is_stable(local_context):
    again = content_digest(((f, f.read()) for f in local_context.files), local_context.dockerfile)
    assert again == local_context.digest


def test_templates_dir_replaces_the_builtin_templates(tmp_path):
    (tmp_path / "config.yml.j2").write_text("version: 0.1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"")
    ctx = sidecar_context(tmp_path)
    templates = {p for p in _paths(ctx) if "/regdeploy/_templates/" in p}
    assert templates == {f"{site_packages_in_image()}/regdeploy/_templates/config.yml.j2"}
    with pytest.raises(ImageError, match="does not exist"):
        sidecar_context(tmp_path / "absent")
