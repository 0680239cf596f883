"""The event envelope the registry posts, built and read exactly as distribution does.

Checked against distribution 2.8.2 (tried): one event per POST, body ``{"events": [EVENT]}`` encoded
by Go's ``json.MarshalIndent(envelope, "", "   ")`` (three-space indent, no trailing newline), content
type ``application/vnd.docker.distribution.events.v1+json``; 3.x sends the same fields as ``…v2+json``.
A manifest push carries ``target.tag`` and, with ``events.includereferences``, the config and layer
descriptors; a blob push has media type ``application/octet-stream`` and no tag.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVENTS_MEDIA_TYPES = {
    2: "application/vnd.docker.distribution.events.v1+json",
    3: "application/vnd.docker.distribution.events.v2+json",
}
BLOB_MEDIA_TYPE = "application/octet-stream"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# Go's net/http default; the registry sets no User-Agent of its own on notifications.
GO_USER_AGENT = "Go-http-client/1.1"
SAMPLE_REPOSITORY = "regdeploy/webhook-test"
SAMPLE_TAG = "test"


class EnvelopeError(ValueError):
    """A body that is not a registry event envelope."""


def media_type(version: int) -> str:
    """The envelope's content type for a registry major version (2 or 3)."""
    return EVENTS_MEDIA_TYPES[3 if version >= 3 else 2]


def encode(events: Sequence[Mapping[str, Any]]) -> bytes:
    """Bytes identical to Go's ``json.MarshalIndent(Envelope{events}, "", "   ")``."""
    text = json.dumps({"events": list(events)}, indent=3, ensure_ascii=False, separators=(",", ": "))
    # Go escapes these for safe embedding in HTML; they only ever occur inside JSON strings.
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return text.encode()


def go_timestamp(when: datetime) -> str:
    """RFC 3339 with nanoseconds and trailing zeros trimmed, as Go's time.Time marshals (UTC)."""
    when = when.astimezone(UTC)
    fraction = f"{when.microsecond:06d}000".rstrip("0")
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def _descriptor(media: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media, "size": len(data), "digest": "sha256:" + hashlib.sha256(data).hexdigest()}


# A fixed, valid image: its digests are real, so a receiver that fetches them gets a clear 404.
_SAMPLE_LAYER = b"regdeploy webhook test layer"
_SAMPLE_CONFIG = json.dumps(
    {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}},
    separators=(",", ":"),
).encode()


def sample_manifest() -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": _descriptor(CONFIG_V1, _SAMPLE_CONFIG),
        "layers": [_descriptor(LAYER_GZIP, _SAMPLE_LAYER)],
    }
    return json.dumps(manifest, indent=3).encode()


@dataclass(frozen=True)
class Envelope:
    media_type: str
    body: bytes
    event: Mapping[str, Any]


def sample_push(
    *,
    version: int,
    registry: str,
    scheme: str = "https",
    repository: str = SAMPLE_REPOSITORY,
    tag: str = SAMPLE_TAG,
    actor: str = "",
    include_references: bool = True,
    now: datetime | None = None,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Envelope:
    """The envelope a registry at ``registry`` (host:port, as clients address it) sends for a tag push.

    Every field the real event has is present, in the registry's order; the values say it is a test
    (the user agent) but have the real shapes (uuids, digests, URLs), so receivers parse it as they
    will parse real events.
    """
    manifest = sample_manifest()
    desc = _descriptor(MANIFEST_V2, manifest)
    target: dict[str, Any] = {
        "mediaType": desc["mediaType"],
        "size": desc["size"],
        "digest": desc["digest"],
        "length": desc["size"],
        "repository": repository,
        "url": f"{scheme}://{registry}/v2/{repository}/manifests/{desc['digest']}",
        "tag": tag,
    }
    if include_references:
        target["references"] = [
            _descriptor(CONFIG_V1, _SAMPLE_CONFIG),
            _descriptor(LAYER_GZIP, _SAMPLE_LAYER),
        ]
    actor_record = {"name": actor} if actor else {}  # Go omits an empty name: "actor": {}
    event = {
        "id": new_id(),
        "timestamp": go_timestamp(now or datetime.now(UTC)),
        "action": "push",
        "target": target,
        "request": {
            "id": new_id(),
            "addr": "127.0.0.1:0",
            "host": registry,
            "method": "PUT",
            "useragent": "regdeploy webhooks test",
        },
        "actor": actor_record,
        "source": {"addr": "regdeploy-webhooks-test:5000", "instanceID": new_id()},
    }
    return Envelope(media_type(version), encode([event]), event)


def decode(body: bytes) -> list[dict[str, Any]]:
    """The events of an envelope; EnvelopeError if the body is not one."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"not JSON: {exc}") from None
    events = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise EnvelopeError('expected {"events": [...]}')
    return events


@dataclass(frozen=True)
class EventSummary:
    """The fields people and CI jobs act on, read leniently from one event."""

    id: str
    action: str
    repository: str
    tag: str
    digest: str
    media_type: str
    actor: str
    timestamp: str
    registry: str
    url: str

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> EventSummary:
        def text(section: str, key: str) -> str:
            part = event.get(section)
            value = part.get(key) if isinstance(part, Mapping) else None
            return value if isinstance(value, str) else ""

        return cls(
            id=str(event.get("id") or ""),
            action=str(event.get("action") or ""),
            repository=text("target", "repository"),
            tag=text("target", "tag"),
            digest=text("target", "digest"),
            media_type=text("target", "mediaType"),
            actor=text("actor", "name"),
            timestamp=str(event.get("timestamp") or ""),
            registry=text("request", "host"),
            url=text("target", "url"),
        )

    @property
    def is_blob(self) -> bool:
        return self.media_type == BLOB_MEDIA_TYPE

    @property
    def reference(self) -> str:
        """repository:tag, repository@digest for untagged manifests and blobs, or the repository."""
        if self.tag:
            return f"{self.repository}:{self.tag}"
        return f"{self.repository}@{self.digest}" if self.digest else self.repository

    def as_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "action": self.action,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "media_type": self.media_type,
            "actor": self.actor,
            "timestamp": self.timestamp,
        }

    def line(self) -> str:
        kind = "blob" if self.is_blob else (self.media_type or "-")
        by = self.actor or "anonymous"
        digest = f" {self.digest}" if self.tag and self.digest else ""
        return f"{self.action} {self.reference}{digest} by {by} ({kind})"
