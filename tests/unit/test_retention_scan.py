"""The registry API walk of retention: tags, digests, created times from configs, deletes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fake_registry import DOCKER_MANIFEST, FakeRegistry

from regdeploy.retention.scan import (
    ACCEPT,
    DeleteRefused,
    ScanError,
    delete_manifest,
    scan_repository,
    tags,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_tags_follow_link_pages() -> None:
    reg = FakeRegistry()
    for i in range(7):
        reg.image("team/app", f"t{i}", {"created": f"2026-01-01T00:00:0{i}Z"})
    reg.tag_page = 3
    assert tags(reg, "team/app") == [f"t{i}" for i in range(7)]
    assert sum(1 for m, p in reg.requests if "/tags/list" in p) == 3


def test_a_repository_without_tags_or_gone() -> None:
    reg = FakeRegistry()
    reg.tags["empty"] = {}
    assert tags(reg, "empty") == []
    assert tags(reg, "never-was") == []


def test_digest_and_created_from_the_config() -> None:
    reg = FakeRegistry()
    digest = reg.image("team/app", "v1", {"created": "2026-01-01T00:00:07.123456789Z", "os": "linux"})
    reg.tags["team/app"]["also"] = digest
    (v1, also) = sorted(scan_repository(reg, "team/app"), key=lambda t: t.tag, reverse=True)
    assert (v1.tag, v1.digest, v1.created) == ("v1", digest, at("2026-01-01T00:00:07.123456+00:00"))
    assert also.digest == digest
    # Both tags share one config: it is read once.
    assert sum(1 for m, p in reg.requests if "/blobs/" in p) == 1


def test_the_manifest_is_asked_for_in_every_v2_and_oci_type() -> None:
    seen: list[dict[str, str]] = []
    reg = FakeRegistry()
    reg.image("r", "v1", {"created": "2026-01-01T00:00:00Z"})
    request = reg.request

    def spy(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            auth: bool = True):  # fmt: skip
        if "/manifests/" in path:
            seen.append(headers or {})
        return request(method, path, body, headers, auth)

    reg.request = spy  # type: ignore[method-assign]
    scan_repository(reg, "r")
    accept = seen[0]["Accept"]
    assert accept == ACCEPT
    for media_type in ("application/vnd.docker.distribution.manifest.v2+json",
                       "application/vnd.docker.distribution.manifest.list.v2+json",
                       "application/vnd.oci.image.manifest.v1+json",
                       "application/vnd.oci.image.index.v1+json"):  # fmt: skip
        assert media_type in accept


def test_an_index_takes_its_first_image_and_lists_its_children() -> None:
    reg = FakeRegistry()
    amd = reg.image("r", None, {"created": "2026-02-02T00:00:00Z"})
    arm = reg.image("r", None, {"created": "2026-02-03T00:00:00Z"})
    att = reg.image("r", None, {"created": "2020-01-01T00:00:00Z"})
    index = reg.index("r", "multi", [(att, {"os": "unknown", "architecture": "unknown"}),
                                     (amd, {"os": "linux", "architecture": "amd64"}),
                                     (arm, {"os": "linux", "architecture": "arm64"})])  # fmt: skip
    (info,) = scan_repository(reg, "r")
    assert info.digest == index
    assert info.children == (att, amd, arm)
    assert info.created == at("2026-02-02T00:00:00+00:00")  # amd64's: the attestation is skipped


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ({"os": "linux"}, "its image config has no created time"),
        ({"created": "0001-01-01T00:00:00Z"}, "is unreadable or a reproducible-build placeholder"),
        ({"created": "1970-01-01T00:00:00Z"}, "reproducible-build placeholder"),
        ({"created": "yesterday"}, "'yesterday' is unreadable"),
        (b"not json", "could not be read"),
    ],
)
def test_unknown_times_say_why(config: dict[str, str] | bytes, why: str) -> None:
    reg = FakeRegistry()
    reg.image("r", "v1", config)
    (info,) = scan_repository(reg, "r")
    assert info.created is None
    assert why in info.unknown_why


def test_an_artifact_has_no_image_time_but_may_have_an_annotation() -> None:
    reg = FakeRegistry()
    cfg = reg.blob(b"{}")
    body = {"schemaVersion": 2, "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                                           "digest": cfg, "size": 2}, "layers": []}  # fmt: skip
    reg.manifest("r", body, "application/vnd.oci.image.manifest.v1+json", "chart-1")
    annotated = {**body, "annotations": {"org.opencontainers.image.created": "2026-01-05T10:00:00Z"}}
    reg.manifest("r", annotated, "application/vnd.oci.image.manifest.v1+json", "chart-2")
    infos = {t.tag: t for t in scan_repository(reg, "r")}
    assert infos["chart-1"].created is None
    assert "an artifact (config application/vnd.cncf.helm.config.v1+json)" in infos["chart-1"].unknown_why
    assert infos["chart-2"].created == at("2026-01-05T10:00:00+00:00")
    assert not any("/blobs/" in p for _, p in reg.requests)  # artifacts' configs are never fetched


def test_schema1_reads_the_v1_history() -> None:
    reg = FakeRegistry()
    v1 = json.dumps({"created": "2016-05-01T12:00:00.5Z", "id": "x"})
    reg.manifest("r", {"schemaVersion": 1, "history": [{"v1Compatibility": v1}]},
                 "application/vnd.docker.distribution.manifest.v1+prettyjws", "old")  # fmt: skip
    (info,) = scan_repository(reg, "r")
    assert info.created == at("2016-05-01T12:00:00.5+00:00")


def test_a_config_redirected_to_storage_is_fetched_there() -> None:
    reg = FakeRegistry()
    digest = reg.image("r", "v1", {"created": "2026-01-01T00:00:03Z"})
    config = json.loads(reg.manifests["r"][digest][1])["config"]["digest"]
    reg.redirect_blobs[config] = "https://s3.example/bucket/blob?X-Amz-Signature=abc"
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return reg.blobs[config]

    (info,) = scan_repository(reg, "r", fetch)
    assert fetched == ["https://s3.example/bucket/blob?X-Amz-Signature=abc"]
    assert info.created == at("2026-01-01T00:00:03+00:00")


def test_a_config_that_cannot_be_fetched_leaves_the_age_unknown() -> None:
    reg = FakeRegistry()
    digest = reg.image("r", "v1", {"created": "2026-01-01T00:00:03Z"})
    config = json.loads(reg.manifests["r"][digest][1])["config"]["digest"]
    reg.redirect_blobs[config] = "https://s3.example/blob"

    def fetch(url: str) -> bytes:
        raise OSError("connection refused")

    (info,) = scan_repository(reg, "r", fetch)
    assert info.created is None
    assert "could not be read (OSError: connection refused)" in info.unknown_why


def test_a_tag_deleted_during_the_walk_is_left_out() -> None:
    reg = FakeRegistry()
    reg.image("r", "v1", {"created": "2026-01-01T00:00:00Z"})
    reg.fail["GET", "/v2/r/manifests/v1"] = 404
    assert scan_repository(reg, "r") == []


def test_refusals_name_the_request() -> None:
    reg = FakeRegistry()
    reg.image("r", "v1", {"created": "2026-01-01T00:00:00Z"})
    reg.fail["GET", "/v2/r/tags/list?n=1000"] = 401
    expected = r"GET /v2/r/tags/list\?n=1000 answered 401: the user is not authorized: no"
    with pytest.raises(ScanError, match=expected):
        scan_repository(reg, "r")


def test_delete_by_digest() -> None:
    reg = FakeRegistry()
    digest = reg.image("r", "v1", {"created": "2026-01-01T00:00:00Z"})
    reg.tags["r"]["v1-again"] = digest
    assert delete_manifest(reg, "r", digest) is True
    assert reg.tags["r"] == {}  # the registry drops every tag of the digest
    assert delete_manifest(reg, "r", digest) is False  # gone already


def test_delete_refused_by_the_registry() -> None:
    reg = FakeRegistry()
    digest = reg.image("r", "v1", {"created": "2026-01-01T00:00:00Z"})
    reg.delete_status = 405
    with pytest.raises(DeleteRefused, match="answered 405"):
        delete_manifest(reg, "r", digest)
    reg.delete_status = 403
    with pytest.raises(ScanError, match="answered 403: the user may not do this"):
        delete_manifest(reg, "r", digest)


def test_media_type_from_the_body_when_the_header_is_missing() -> None:
    reg = FakeRegistry()
    digest = reg.image("r", "v1", {"created": "2026-01-01T00:00:09Z"})
    assert reg.manifests["r"][digest][0] == DOCKER_MANIFEST
    request = reg.request

    def no_type(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                auth: bool = True):  # fmt: skip
        resp = request(method, path, body, headers, auth)
        resp.headers.pop("content-type", None)
        resp.headers.pop("docker-content-digest", None)
        return resp

    reg.request = no_type  # type: ignore[method-assign]
    (info,) = scan_repository(reg, "r")
    assert info.digest == digest  # computed from the body
    assert info.created == at("2026-01-01T00:00:09+00:00")
