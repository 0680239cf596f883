"""A bucket's objects under a prefix, by paged, signed ListObjectsV2 requests."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from regdeploy.storage.s3probe import S3Target, StorageError, request


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    modified: datetime | None  # LastModified; None when the server gave none it could parse


class TooManyObjects(StorageError):
    """More objects than a listing was allowed to page through."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _modified(text: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)  # S3 speaks UTC


def list_objects(target: S3Target, prefix: str = "", limit_pages: int = 100_000) -> Iterator[S3Object]:
    """Every object whose key starts with *prefix* (a full key prefix: the root directory's
    included); TooManyObjects past *limit_pages* pages of 1,000."""
    token = ""
    for _ in range(limit_pages):
        query = {"list-type": "2", "max-keys": "1000"}
        if prefix:
            query["prefix"] = prefix
        if token:
            query["continuation-token"] = token
        body = request(target, "GET", query=query, timeout=30.0)
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            raise StorageError(
                f"S3 at {target.endpoint} bucket '{target.bucket}': the object listing is not XML "
                f"({len(body)} bytes): is this an S3 endpoint?"
            ) from None
        for item in root:
            if _local(item.tag) != "Contents":
                continue
            fields = {_local(el.tag): el.text or "" for el in item}
            size = fields.get("Size", "0")
            yield S3Object(fields.get("Key", ""), int(size) if size.isdigit() else 0,
                           _modified(fields.get("LastModified", "")))  # fmt: skip
        token = next((el.text or "" for el in root if _local(el.tag) == "NextContinuationToken"), "")
        if not token:
            return
    raise TooManyObjects(
        f"S3 at {target.endpoint} bucket '{target.bucket}': "
        f"more than {limit_pages * 1000} objects under {prefix!r}"
    )
