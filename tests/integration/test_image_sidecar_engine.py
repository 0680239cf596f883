"""image.sidecar on the real local engine: build FROM scratch (no pull), reuse by content, run hardened."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

import regdeploy
from regdeploy.image.sidecar import (
    LABEL_CONTENT,
    LABEL_SIDECAR,
    PYTHON_IN_IMAGE,
    build_sidecar,
    sidecar_context,
)

pytestmark = pytest.mark.integration

TAG = "regdeploy-test/sidecar:it"
MAX_SIZE = 150_000_000

# What every regdeploy unit gets (DESIGN.md): non-root, read-only root, no capabilities, limits.
HARDENED: dict[str, Any] = {
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "mem_limit": "128m",
    "pids_limit": 64,
    "user": "65532:65532",
    "tmpfs": {"/tmp": ""},
    "network_disabled": True,
}

IMPORTS = """
import json, sys, ssl, sqlite3, hashlib, getpass, pwd, os, sysconfig, http.server, socketserver
import cryptography.hazmat.primitives.asymmetric.ec as ec, bcrypt, yaml, jinja2, click, paramiko, docker
import importlib.metadata
key = ec.generate_private_key(ec.SECP256R1())
print(json.dumps({
    "prefix": sys.prefix, "exec_prefix": sys.exec_prefix, "executable": sys.executable, "path": sys.path,
    "user": getpass.getuser(), "home": pwd.getpwuid(os.getuid()).pw_dir, "uid": os.getuid(),
    "openssl": ssl.OPENSSL_VERSION, "sqlite": sqlite3.sqlite_version, "curve": key.curve.name,
    "bcrypt": bcrypt.checkpw(b"pw", bcrypt.hashpw(b"pw", bcrypt.gensalt(4))),
    "sha256": hashlib.sha256(b"").hexdigest(), "stdlib": sysconfig.get_paths()["stdlib"],
    "ca_certs": ssl.create_default_context().cert_store_stats()["x509_ca"],
    "yaml": yaml.safe_load("a: 1"), "jinja2": jinja2.Template("{{ x }}").render(x="ok"),
    "version": importlib.metadata.version("regdeploy"), "encoding": sys.getfilesystemencoding(),
}))
"""


@pytest.fixture(scope="module")
def sidecar(docker_client: Any) -> Iterator[tuple[str, str]]:
    """(tag, image id) of the sidecar image built as TAG; removed afterwards."""
    import docker.errors

    try:
        yield build_sidecar(docker_client, tag=TAG)
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(TAG, force=True)


def _run(client: Any, image: str, command: list[str], *, entrypoint: list[str] | None = None) -> str:
    output = client.containers.run(image, command, entrypoint=entrypoint, remove=True, **HARDENED)
    return bytes(output).decode()


def test_the_image_is_labelled_small_and_runs_as_its_user(docker_client, sidecar):
    tag, image_id = sidecar
    assert tag == TAG
    image = docker_client.images.get(image_id)
    assert TAG in image.tags
    labels = image.labels
    assert labels[LABEL_SIDECAR] == "1"
    assert labels[LABEL_CONTENT] == sidecar_context().digest
    assert labels["org.opencontainers.image.version"] == regdeploy.__version__
    config = image.attrs["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == [PYTHON_IN_IMAGE, "-m", "regdeploy"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    known = {"PATH", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONSAFEPATH",
             "SSL_CERT_FILE"}  # fmt: skip
    assert set(env) <= known  # nothing secret, nothing of this machine's environment
    assert len(image.attrs["RootFS"]["Layers"]) == 1
    assert image.attrs["Size"] < MAX_SIZE, f"sidecar image is {image.attrs['Size'] / 1e6:.1f} MB"


def test_an_unchanged_package_finds_its_image_without_building(docker_client, sidecar):
    _, image_id = sidecar
    said: list[str] = []
    assert build_sidecar(docker_client, tag=TAG, progress=said.append) == (TAG, image_id)
    assert len(said) == 1 and "already built" in said[0]
    assert not any("Step" in line for line in said)


def test_hardened_it_prints_regdeploys_help(docker_client, sidecar):
    _, image_id = sidecar
    out = _run(docker_client, image_id, ["--help"])
    assert out.startswith("Usage: regdeploy")
    assert "webhooks" in out
    relay = _run(docker_client, image_id, ["webhooks", "relay", "--help"])
    assert relay.startswith("Usage: regdeploy webhooks relay")


def test_hardened_its_python_has_the_stdlib_and_every_dependency(docker_client, sidecar):
    _, image_id = sidecar
    out = _run(docker_client, image_id, ["-c", IMPORTS], entrypoint=[PYTHON_IN_IMAGE])
    facts = json.loads(out.strip().splitlines()[-1])
    # The prefix comes from the os.py landmark next to /opt/regdeploy/bin, not from where it was built.
    assert facts["prefix"] == facts["exec_prefix"] == "/opt/regdeploy"
    assert facts["executable"] == PYTHON_IN_IMAGE
    assert facts["stdlib"].startswith("/opt/regdeploy/")
    assert [p for p in facts["path"] if p.endswith("site-packages")] == [
        f"/opt/regdeploy/lib/python{sys_version()}/site-packages"
    ]
    assert facts["user"] == "regdeploy" and facts["uid"] == 65532 and facts["home"] == "/nonexistent"
    assert facts["curve"] == "secp256r1" and facts["bcrypt"] is True
    assert facts["ca_certs"] > 100  # certifi's bundle: the relay can verify public HTTPS targets
    assert facts["sha256"].startswith("e3b0c442")
    assert facts["openssl"].startswith("OpenSSL") and facts["sqlite"]
    assert facts["yaml"] == {"a": 1} and facts["jinja2"] == "ok"
    assert facts["version"] == regdeploy.__version__
    assert facts["encoding"] == "utf-8"


def test_it_needs_no_writable_root_filesystem(docker_client, sidecar):
    _, image_id = sidecar
    code = (
        "import os, pathlib; pathlib.Path('/tmp/ok').write_text('x'); "
        "print(bool(os.statvfs('/').f_flag & os.ST_RDONLY), pathlib.Path('/tmp/ok').read_text())"
    )
    out = _run(docker_client, image_id, ["-c", code], entrypoint=[PYTHON_IN_IMAGE])
    assert out.strip() == "True x"


def sys_version() -> str:
    import sys

    return f"{sys.version_info.major}.{sys.version_info.minor}"
