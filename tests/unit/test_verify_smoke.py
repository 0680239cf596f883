"""The in-memory smoke images (pure)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

from regdeploy.verify.smoke import (
    CONFIG_V1,
    LAYER_TAR_GZIP,
    MANIFEST_V2,
    SMOKE_FILE,
    build_smoke_image,
    docker_archive,
    sha256_digest,
)


def _files(tar_bytes: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_api_image_is_a_consistent_schema2_image():
    image = build_smoke_image("abc123")
    manifest = json.loads(image.manifest)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MANIFEST_V2
    assert manifest["config"] == {
        "mediaType": CONFIG_V1,
        "size": len(image.config),
        "digest": image.config_digest,
    }
    assert manifest["layers"] == [
        {"mediaType": LAYER_TAR_GZIP, "size": len(image.layer), "digest": image.layer_digest}
    ]
    tar = gzip.decompress(image.layer)
    assert _files(tar) == {SMOKE_FILE: b"regdeploy smoke test abc123\n"}
    config = json.loads(image.config)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256_digest(tar)]}
    assert config["os"] == "linux"
    assert image.manifest_digest == "sha256:" + hashlib.sha256(image.manifest).hexdigest()


def test_same_nonce_same_bytes_other_nonce_other_digests():
    assert build_smoke_image("n1") == build_smoke_image("n1")
    a, b = build_smoke_image("n1"), build_smoke_image("n2")
    assert a.layer_digest != b.layer_digest and a.config_digest != b.config_digest


def test_docker_archive_loads_as_the_config_digest():
    data, image_id = docker_archive("nonce-engine", "localhost:5000/regdeploy-smoke:engine-x")
    files = _files(data)
    (entry,) = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["localhost:5000/regdeploy-smoke:engine-x"]
    config = files[entry["Config"]]
    assert image_id == sha256_digest(config) == "sha256:" + entry["Config"].removesuffix(".json")
    layer = files[entry["Layers"][0]]
    assert json.loads(config)["rootfs"]["diff_ids"] == [sha256_digest(layer)]
    assert _files(layer) == {SMOKE_FILE: b"regdeploy smoke test nonce-engine\n"}
