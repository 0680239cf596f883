"""The smoke images verify pushes, built in memory: real, pullable ``FROM scratch`` images. Pure.

One layer holding ``/regdeploy-smoke.txt`` with a nonce (new content for every run, so a push really
uploads data) and an image config naming that layer's diff id. The ``api`` check pushes it as a gzip'ed
layer with a Docker v2 schema 2 manifest; the ``engine`` check loads it into the Docker engine as a
``docker save`` archive (what a one-file ``FROM scratch`` build produces, at less than half the engine's
time: building runs a container and commits it). Deterministic for a given nonce, so tests can rebuild it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SMOKE_FILE = "regdeploy-smoke.txt"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class SmokeImage:
    layer: bytes  # tar.gz
    config: bytes
    manifest: bytes

    @property
    def layer_digest(self) -> str:
        return sha256_digest(self.layer)

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config)

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest)


def _layer_tar(nonce: str) -> bytes:
    data = f"regdeploy smoke test {nonce}\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(SMOKE_FILE)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _config(nonce: str, tar: bytes, created_by: str) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"io.regdeploy.smoke-nonce": nonce}},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]},
            "history": [{"created_by": created_by}],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def build_smoke_image(nonce: str) -> SmokeImage:
    tar = _layer_tar(nonce)
    layer = gzip.compress(tar, compresslevel=6, mtime=0)  # mtime 0: same nonce, same bytes
    config = _config(nonce, tar, "regdeploy verify (api check)")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": sha256_digest(config)},
            "layers": [{"mediaType": LAYER_TAR_GZIP, "size": len(layer), "digest": sha256_digest(layer)}],
        },
        indent=3,  # as docker itself writes manifests; any bytes work, the digest is of these bytes
    ).encode()
    return SmokeImage(layer, config, manifest)


def docker_archive(nonce: str, ref: str) -> tuple[bytes, str]:
    """A ``docker save`` archive of a one-layer smoke image tagged *ref*, and the image id it loads as."""
    tar = _layer_tar(nonce)
    config = _config(nonce, tar, "regdeploy verify (engine check)")
    image_id = sha256_digest(config)
    entries = (
        (image_id.removeprefix("sha256:") + ".json", config),
        ("layer.tar", tar),
        ("manifest.json", json.dumps([{"Config": image_id.removeprefix("sha256:") + ".json",
                                       "RepoTags": [ref], "Layers": ["layer.tar"]}]).encode()),
    )  # fmt: skip
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue(), image_id
