"""The envelope regdeploy builds is byte-for-byte what distribution 2.8.2 sends (captured from it)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from regdeploy.webhooks.envelope import (
    EnvelopeError,
    EventSummary,
    decode,
    encode,
    go_timestamp,
    media_type,
    sample_manifest,
    sample_push,
)

# A manifest push as registry 2.8.2 posted it (regdeploy's integration run, Content-Length 1608).
REAL_PUSH = b"""{
   "events": [
      {
         "id": "54aca802-305d-40ec-84f0-7ef987f4e606",
         "timestamp": "2026-11-27T04:46:01.61087526Z",
         "action": "push",
         "target": {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "size": 438,
            "digest": "sha256:0fc391099e1c0385a0425ab78f5ad41dab634607a9873bd7642c32fd4d3c903e",
            "length": 438,
            "repository": "team/app",
            "url": "https://127.0.0.1:39775/v2/team/app/manifests/sha256:0fc391099e1c0385a0425ab78f5ad41dab634607a9873bd7642c32fd4d3c903e",
            "tag": "v1",
            "references": [
               {
                  "mediaType": "application/vnd.docker.container.image.v1+json",
                  "size": 86,
                  "digest": "sha256:519bbf4427ce65cd05f107f39ad9b781e44ef756339f8343303f898f41e110d0"
               },
               {
                  "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                  "size": 20,
                  "digest": "sha256:c278db3686178ea510b110c290e757df3dbdbb9e25a3a9f1a25b738c1769b262"
               }
            ]
         },
         "request": {
            "id": "6c885585-c017-4611-9333-37f2edf60870",
            "addr": "172.17.0.1:50770",
            "host": "127.0.0.1:39775",
            "method": "PUT",
            "useragent": ""
         },
         "actor": {
            "name": "alice"
         },
         "source": {
            "addr": "de6ebbf82ae1:5000",
            "instanceID": "5ac88156-16fb-43f8-8b97-7e4a7d329de4"
         }
      }
   ]
}"""

REAL_BLOB_PUSH = {
    "id": "39feb48d-ec4a-4f5f-93e3-5610345e8e45",
    "timestamp": "2026-11-27T04:46:01.241245086Z",
    "action": "push",
    "target": {
        "mediaType": "application/octet-stream",
        "size": 86,
        "digest": "sha256:519bbf4427ce65cd05f107f39ad9b781e44ef756339f8343303f898f41e110d0",
        "length": 86,
        "repository": "team/app",
        "url": "https://127.0.0.1:39775/v2/team/app/blobs/sha256:519b",
    },
    "request": {
        "id": "5025",
        "addr": "172.17.0.1:50744",
        "host": "127.0.0.1:39775",
        "method": "PUT",
        "useragent": "",
    },
    "actor": {"name": "alice"},
    "source": {"addr": "de6ebbf82ae1:5000", "instanceID": "5ac8"},
}


def shape(value: Any) -> Any:
    """The keys (in order) and value types of a JSON document, without the values."""
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def test_encode_reproduces_the_registrys_bytes() -> None:
    assert encode(decode(REAL_PUSH)) == REAL_PUSH


def test_encode_escapes_like_go() -> None:
    body = encode([{"a": "<b>&\u2028é"}])
    assert b"\\u003cb\\u003e\\u0026\\u2028" in body
    assert "é".encode() in body  # Go keeps UTF-8 as is
    assert json.loads(body) == {"events": [{"a": "<b>&\u2028é"}]}


def test_sample_push_has_the_real_events_fields_in_the_real_order() -> None:
    real = decode(REAL_PUSH)[0]
    sample = sample_push(version=2, registry="localhost:5000", actor="alice")
    assert shape(sample.event) == shape(real)
    assert shape(json.loads(sample.body)) == shape(json.loads(REAL_PUSH))
    assert sample.body == encode([sample.event])


def test_sample_values_are_consistent() -> None:
    ids = iter(["e", "r", "s"])
    when = datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)
    env = sample_push(
        version=2,
        registry="reg.example:5000",
        repository="team/app",
        tag="v1",
        actor="bob",
        now=when,
        new_id=lambda: next(ids),
    )
    event = env.event
    manifest = sample_manifest()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert event["id"] == "e" and event["request"]["id"] == "r" and event["source"]["instanceID"] == "s"
    assert event["timestamp"] == "2026-01-02T03:04:05.12Z"
    target = event["target"]
    assert (target["repository"], target["tag"], target["digest"]) == ("team/app", "v1", digest)
    assert target["size"] == target["length"] == len(manifest)
    assert target["url"] == f"https://reg.example:5000/v2/team/app/manifests/{digest}"
    assert [r["digest"] for r in target["references"]] == [
        d["digest"] for d in [json.loads(manifest)["config"], *json.loads(manifest)["layers"]]
    ]
    assert event["request"]["host"] == "reg.example:5000" and event["actor"] == {"name": "bob"}


def test_media_type_follows_the_registry_version() -> None:
    assert media_type(2) == "application/vnd.docker.distribution.events.v1+json"
    assert media_type(3) == "application/vnd.docker.distribution.events.v2+json"
    assert sample_push(version=3, registry="r:5000").media_type == media_type(3)


def test_without_references_and_anonymous() -> None:
    event = sample_push(version=2, registry="r:1", include_references=False, scheme="http").event
    assert "references" not in event["target"]
    assert event["actor"] == {}  # Go's omitempty on the name
    assert event["target"]["url"].startswith("http://r:1/v2/")


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC), "2026-05-06T07:08:09Z"),
        (datetime(2026, 5, 6, 7, 8, 9, 100, tzinfo=UTC), "2026-05-06T07:08:09.0001Z"),
        (datetime(2026, 5, 6, 7, 8, 9, 999999, tzinfo=UTC), "2026-05-06T07:08:09.999999Z"),
    ],
)
def test_go_timestamp(when: datetime, text: str) -> None:
    assert go_timestamp(when) == text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "expected"),
        (b'{"events": {}}', "expected"),
        (b'{"events": [1]}', "expected"),
    ],
)
def test_decode_refuses_what_is_not_an_envelope(body: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        decode(body)


def test_summary_of_a_manifest_push() -> None:
    s = EventSummary.of(decode(REAL_PUSH)[0])
    assert (s.action, s.repository, s.tag, s.actor, s.registry) == (
        "push",
        "team/app",
        "v1",
        "alice",
        "127.0.0.1:39775",
    )
    assert s.digest.startswith("sha256:0fc3") and not s.is_blob
    assert s.line() == (
        "push team/app:v1 sha256:0fc391099e1c0385a0425ab78f5ad41dab634607a9873bd7642c32fd4d3c903e "
        "by alice (application/vnd.docker.distribution.manifest.v2+json)"
    )
    assert s.as_json()["tag"] == "v1" and set(s.as_json()) == {
        "id",
        "action",
        "repository",
        "tag",
        "digest",
        "media_type",
        "actor",
        "timestamp",
    }


def test_summary_of_a_blob_and_of_garbage() -> None:
    blob = EventSummary.of(REAL_BLOB_PUSH)
    assert blob.is_blob and blob.tag == ""
    assert blob.line() == f"push team/app@{blob.digest} by alice (blob)"
    odd = EventSummary.of({"action": "delete", "target": "nonsense", "actor": None})
    assert (odd.action, odd.repository, odd.reference, odd.actor) == ("delete", "", "", "")
    assert odd.line() == "delete  by anonymous (-)"
