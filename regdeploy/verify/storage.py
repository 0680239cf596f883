"""``storage`` (S3 registries): the bucket answers a listing from this machine with the registry's
keys. A registry on storage it cannot reach still answers ``GET /`` for a while (its storage health
check trips after three failed 10 s probes), so this check names the storage itself."""

from __future__ import annotations

from regdeploy.verify.context import VerifyContext
from regdeploy.verify.model import CheckFailed, NotApplicable


def check_storage(ctx: VerifyContext) -> str:
    from regdeploy.storage.s3probe import StorageError, probe
    from regdeploy.storage.target import s3_target

    target = s3_target(ctx.job.spec, ctx.job.materials)
    if target is None:
        raise NotApplicable("filesystem storage (data_dir on the host)")
    s3 = ctx.job.spec.storage.s3
    assert s3 is not None
    try:
        seconds = probe(target, write=False)
    except StorageError as exc:
        raise CheckFailed(f"storage: {exc}") from None
    return f"{s3.describe}: the bucket answers a listing with the registry's keys ({seconds * 1000:.0f} ms)"
