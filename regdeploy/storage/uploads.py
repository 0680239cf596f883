"""Stale uploads in a registry's S3 bucket, found and deleted from this machine.

The registry keeps an upload in progress under
``docker/registry/v2/repositories/REPO/_uploads/UUID/`` (``startedat``, ``data``, ``hashstates/…``)
and its own purger deletes those older than a week. On S3 regdeploy turns that purger off: on
SeaweedFS, which lists emptied upload directories, it panics the registry (``index out of range``
in ``getOutstandingUploads``, distribution 2.8.2, seen in about one start in sixty, when the
random delay before its first run is zero). ``regdeploy gc`` does the purge instead, inside its
read-only window, with the registry's rule: an upload started more than a week ago is dead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from regdeploy.storage.contents import REPOSITORIES
from regdeploy.storage.listing import S3Object, list_objects
from regdeploy.storage.s3probe import S3Target, request

MAX_AGE = timedelta(days=7)  # the registry's uploadpurging.age default (168h)


@dataclass(frozen=True)
class Upload:
    directory: str  # the full key prefix ending in "/"
    started: datetime | None
    keys: tuple[str, ...]
    size: int


def group_uploads(objects: Iterable[S3Object], root: str) -> list[Upload]:
    """The objects under ``ROOT REPO/_uploads/UUID/`` grouped by upload, where *root* is the full
    key prefix of the repositories (``…docker/registry/v2/repositories/``). Only the first path
    component starting with ``_`` counts, and it must be ``_uploads`` after a repository name: a tag
    named ``_uploads`` (``REPO/_manifests/tags/_uploads/…``) is no upload. started is ``startedat``'s
    LastModified, or the newest of the upload's objects when it has none."""
    grouped: dict[str, list[S3Object]] = {}
    for obj in objects:
        if not obj.key.startswith(root):
            continue
        parts = obj.key[len(root) :].split("/")
        at = next((k for k, part in enumerate(parts) if part.startswith("_")), None)
        if at is None or at == 0 or parts[at] != "_uploads" or len(parts) < at + 3 or not parts[at + 1]:
            continue
        grouped.setdefault(root + "/".join(parts[: at + 2]) + "/", []).append(obj)
    uploads = []
    for directory, objs in sorted(grouped.items()):
        stamps = [o.modified for o in objs if o.key == directory + "startedat" and o.modified]
        stamps = stamps or [o.modified for o in objs if o.modified]
        started = max(stamps) if stamps else None
        uploads.append(Upload(directory, started, tuple(o.key for o in objs), sum(o.size for o in objs)))
    return uploads


def stale(uploads: Iterable[Upload], now: datetime, max_age: timedelta = MAX_AGE) -> list[Upload]:
    """Uploads started before *now* - *max_age*; one of unknown age is kept."""
    return [u for u in uploads if u.started is not None and u.started < now - max_age]


def stale_among(
    objects: Iterable[S3Object], target: S3Target, now: datetime, max_age: timedelta = MAX_AGE
) -> list[Upload]:
    """The stale uploads *objects* (of *target*'s bucket, listed already) hold."""
    return stale(group_uploads(objects, f"{target.prefix}{REPOSITORIES}"), now, max_age)


def find_stale(target: S3Target, now: datetime, max_age: timedelta = MAX_AGE) -> list[Upload]:
    """The stale uploads in *target*'s bucket, by a listing of its repositories."""
    return stale_among(list_objects(target, f"{target.prefix}{REPOSITORIES}"), target, now, max_age)


def delete(target: S3Target, uploads: Iterable[Upload]) -> int:
    """Delete every object of *uploads*; how many objects went."""
    count = 0
    for upload in uploads:
        for key in upload.keys:
            request(target, "DELETE", key, timeout=30.0)
            count += 1
    return count
