"""Stale uploads in an S3 bucket: grouping the registry's upload keys and choosing by age (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from regdeploy.storage.listing import S3Object
from regdeploy.storage.uploads import MAX_AGE, group_uploads, stale

ROOT = "registry/docker/registry/v2/repositories/"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def obj(key: str, days_ago: float | None, size: int = 10) -> S3Object:
    return S3Object(ROOT + key, size, None if days_ago is None else NOW - timedelta(days=days_ago))


def test_uploads_are_grouped_by_directory_and_dated_by_startedat() -> None:
    objects = [
        obj("team/app/_uploads/u1/startedat", 9),
        obj("team/app/_uploads/u1/data", 1, size=4096),  # appended to yesterday; started 9 days ago
        obj("team/app/_uploads/u1/hashstates/sha256/0", 1),
        obj("team/app/_layers/sha256/abc/link", 30),
        obj("team/app/_manifests/tags/v1/current/link", 30),
        obj("other/_uploads/u2/data", 3),  # no startedat: dated by its newest object
        obj("other/_uploads/u2/hashstates/sha256/0", 2),
    ]
    uploads = group_uploads(objects, ROOT)
    assert [u.directory for u in uploads] == [ROOT + "other/_uploads/u2/", ROOT + "team/app/_uploads/u1/"]
    team = uploads[1]
    assert team.started == NOW - timedelta(days=9) and team.size == 4116 and len(team.keys) == 3
    assert uploads[0].started == NOW - timedelta(days=2)


def test_only_uploads_started_over_the_age_are_stale() -> None:
    uploads = group_uploads([
        obj("a/_uploads/old/startedat", 7.5),
        obj("a/_uploads/young/startedat", 6.5),
        obj("a/_uploads/undated/data", None),
    ], ROOT)  # fmt: skip
    assert [u.directory.rsplit("/", 2)[-2] for u in stale(uploads, NOW)] == ["old"]
    assert stale(uploads, NOW, MAX_AGE * 2) == []
    assert [u.directory.rsplit("/", 2)[-2] for u in stale(uploads, NOW + timedelta(days=1))] == [
        "old",
        "young",
    ]


def test_keys_outside_upload_directories_are_never_chosen() -> None:
    objects = [
        S3Object("registry/docker/registry/v2/blobs/sha256/ab/abcd/data", 5, NOW - timedelta(days=99)),
        obj("team/app/_uploads/", 99),  # a listed directory marker (SeaweedFS): no upload id
        obj("team/app/_manifests/revisions/sha256/ff/link", 99),
    ]
    assert group_uploads(objects, ROOT) == []


def test_a_tag_named_uploads_is_no_upload() -> None:
    # Tags may start with "_" ([A-Za-z0-9_][A-Za-z0-9_.-]*); repository components may not.
    objects = [
        obj("team/app/_manifests/tags/_uploads/current/link", 30),
        obj("team/app/_manifests/tags/_uploads/index/sha256/ab/link", 30),
    ]
    assert group_uploads(objects, ROOT) == []


def test_a_root_directory_naming_uploads_or_repositories_changes_nothing() -> None:
    root = "x/repositories/_uploads/docker/registry/v2/repositories/"
    objects = [
        S3Object(root + "team/app/_layers/sha256/ab/link", 1, NOW - timedelta(days=30)),
        S3Object(root + "team/app/_uploads/u1/startedat", 1, NOW - timedelta(days=30)),
        S3Object("elsewhere/team/app/_uploads/u9/startedat", 1, NOW - timedelta(days=30)),
    ]
    assert [u.directory for u in group_uploads(objects, root)] == [root + "team/app/_uploads/u1/"]


def test_listing_pages_parses_times_and_refuses_what_is_not_xml(monkeypatch: pytest.MonkeyPatch) -> None:
    from regdeploy.storage import listing
    from regdeploy.storage.s3probe import S3Target, StorageError

    ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    pages = {
        "": f"<ListBucketResult {ns}><Contents><Key>a</Key><Size>3</Size>"
        "<LastModified>2026-12-01T21:50:03.000Z</LastModified></Contents>"
        "<NextContinuationToken>t2</NextContinuationToken></ListBucketResult>",
        "t2": f"<ListBucketResult {ns}><Contents><Key>b</Key><Size>4</Size>"
        "<LastModified>2026-12-01T21:50:03</LastModified></Contents></ListBucketResult>",
    }
    asked: list[dict[str, str]] = []

    def fake(target: S3Target, method: str, key: str = "", **kw: Any) -> bytes:
        asked.append(kw["query"])
        return pages[kw["query"].get("continuation-token", "")].encode()

    monkeypatch.setattr(listing, "request", fake)
    target = S3Target("b", "us-east-1", "A", "S", "http://127.0.0.1:1")
    got = list(listing.list_objects(target, "p/"))
    stamp = datetime(2026, 12, 1, 21, 50, 3, tzinfo=UTC)
    assert got == [S3Object("a", 3, stamp), S3Object("b", 4, stamp)]  # a stamp without offset is UTC
    assert [q.get("prefix") for q in asked] == ["p/", "p/"]
    monkeypatch.setattr(listing, "request", lambda *a, **k: b"<html>not s3")
    with pytest.raises(StorageError, match="listing is not XML"):
        list(listing.list_objects(target))


def test_gc_adds_up_the_collected_blobs_from_the_listing_before(monkeypatch: pytest.MonkeyPatch) -> None:
    from regdeploy.ops.gc import collected_bytes
    from regdeploy.storage import contents
    from regdeploy.storage.s3probe import S3Target

    blobs = "registry/docker/registry/v2/blobs/"
    keep, drop = "ab" * 32, "cd" * 32
    listed = [
        S3Object(f"{blobs}sha256/ab/{keep}/data", 1000, NOW),
        S3Object(f"{blobs}sha256/cd/{drop}/data", 262144, NOW),
        obj(f"team/app/_layers/sha256/{drop}/link", 0, size=71),  # not a blob: a link (gc drops it too, tiny)
        obj("team/app/_uploads/u1/startedat", 9, size=20),
    ]
    monkeypatch.setattr(contents, "list_objects", lambda target, prefix, limit_pages: iter(listed))
    bucket = contents.read_contents(S3Target("b", "us-east-1", "A", "S", "http://127.0.0.1:1", "/registry"))
    assert bucket is not None
    assert bucket.total == 1000 + 262144 + 71 + 20
    assert bucket.blobs == {f"sha256/{keep}": 1000, f"sha256/{drop}": 262144}
    assert [o.key for o in bucket.uploads] == [ROOT + "team/app/_uploads/u1/startedat"]
    log = (
        "2 blobs marked, 1 blobs and 0 manifests eligible for deletion\n"
        f"blob eligible for deletion: sha256:{drop}\n"
    )
    assert collected_bytes(bucket.blobs, log) == 262144
    assert collected_bytes(bucket.blobs, "0 blobs marked") == 0
    deleting = f'msg="Deleting blob: /docker/registry/v2/blobs/sha256/cd/{drop}" go.version=go1.19'
    assert collected_bytes(bucket.blobs, deleting) == 262144
