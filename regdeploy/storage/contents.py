"""A registry's bucket as `gc` needs it, from one listing: the bytes it holds, each blob's bytes,
and the objects of uploads in progress."""

from __future__ import annotations

from dataclasses import dataclass

from regdeploy.storage.listing import S3Object, TooManyObjects, list_objects
from regdeploy.storage.s3probe import S3Target

# Where distribution keeps things, under the root directory.
REPOSITORIES = "docker/registry/v2/repositories/"
BLOBS = "docker/registry/v2/blobs/"


@dataclass(frozen=True)
class BucketContents:
    total: int  # bytes under the root directory
    blobs: dict[str, int]  # each blob's bytes by "ALGORITHM/HEX" (from BLOBS/ALGORITHM/HE/HEX/data)
    uploads: list[S3Object]  # the objects under REPOSITORIES…/_uploads/


def read_contents(target: S3Target, limit_pages: int = 1000) -> BucketContents | None:
    """The bucket under *target*'s root directory; None past *limit_pages* pages of 1,000 objects."""
    blobs_at = f"{target.prefix}{BLOBS}"
    repositories_at = f"{target.prefix}{REPOSITORIES}"
    total, blobs, uploads = 0, {}, []
    try:
        for obj in list_objects(target, target.prefix, limit_pages=limit_pages):
            total += obj.size
            if obj.key.startswith(blobs_at):
                parts = obj.key[len(blobs_at) :].split("/")  # ALGORITHM/HE/HEX/data
                if len(parts) == 4 and parts[3] == "data":
                    blobs[f"{parts[0]}/{parts[2]}"] = obj.size
            elif obj.key.startswith(repositories_at) and "/_uploads/" in obj.key:
                uploads.append(obj)
    except TooManyObjects:
        return None
    return BucketContents(total, blobs, uploads)
