"""A registry's S3 storage as the probe sees it, checked from this machine: writable before `up`
switches a registry to it, readable for `verify`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from regdeploy.materials.host import HostMaterials
    from regdeploy.spec.registry import RegistrySpec
    from regdeploy.storage.s3probe import S3Target


def s3_target(spec: RegistrySpec, materials: HostMaterials) -> S3Target | None:
    from regdeploy.storage.s3probe import S3Target

    s3 = spec.storage.s3
    if s3 is None or materials.storage is None:
        return None
    access, secret = materials.storage
    return S3Target(
        bucket=s3.bucket, region=s3.region, accesskey=access, secretkey=secret,
        regionendpoint=s3.regionendpoint, rootdirectory=s3.rootdirectory, secure=s3.secure,
        skipverify=s3.skipverify,
    )  # fmt: skip


def check_writable(spec: RegistrySpec, materials: HostMaterials) -> float | None:
    """Seconds a write, read back and delete of a probe object took; None without S3 storage.
    StorageError (one line: the bucket, the endpoint, S3's reason) when it cannot."""
    from regdeploy.storage.s3probe import probe

    target = s3_target(spec, materials)
    return None if target is None else probe(target, write=True)
