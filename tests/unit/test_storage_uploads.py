"""Stale uploads in an S3 bucket: grouping the registry's upload keys and choosing by age (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
    uploads = group_uploads(objects)
    assert [u.directory for u in uploads] == [ROOT + "other/_uploads/u2/", ROOT + "team/app/_uploads/u1/"]
    team = uploads[1]
    assert team.started == NOW - timedelta(days=9) and team.size == 4116 and len(team.keys) == 3
    assert uploads[0].started == NOW - timedelta(days=2)


def test_only_uploads_started_over_the_age_are_stale() -> None:
    uploads = group_uploads([
        obj("a/_uploads/old/startedat", 7.5),
        obj("a/_uploads/young/startedat", 6.5),
        obj("a/_uploads/undated/data", None),
    ])  # fmt: skip
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
    assert group_uploads(objects) == []
