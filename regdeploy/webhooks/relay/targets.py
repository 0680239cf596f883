"""What the relay sends: which pushes a target wants, and the exact request for each target type.

GitHub (``repository_dispatch``): ``POST {api}/repos/OWNER/REPO/dispatches`` with
``{"event_type": ..., "client_payload": {...}}``, ``Authorization: Bearer TOKEN``,
``Accept: application/vnd.github+json``; GitHub answers 204, refuses a client_payload with more than
10 top-level keys and rejects requests without a User-Agent.

Generic: the same payload as a JSON object, optionally signed like GitHub's own webhooks:
``X-Regdeploy-Signature-256: sha256=HEX(HMAC-SHA256(secret, body))``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from regdeploy import __version__
from regdeploy.webhooks.envelope import EventSummary
from regdeploy.webhooks.relay.config import TargetConfig

GITHUB_ACCEPT = "application/vnd.github+json"
GITHUB_API_VERSION = "2022-11-28"
USER_AGENT = f"regdeploy-relay/{__version__}"
GITHUB_PAYLOAD_MAX_KEYS = 10


@dataclass(frozen=True)
class Outgoing:
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def wanted(summary: EventSummary) -> bool:
    """A tag push of a manifest: what starts a build.

    Blob pushes come first and carry no tag; a push by digest (each platform of a multi-arch
    image, before its tagged index) has no tag either: relaying those would start builds early.
    """
    return summary.action == "push" and bool(summary.tag) and not summary.is_blob


def matches(target: TargetConfig, summary: EventSummary) -> bool:
    """Case-sensitive globs (``*``, ``?``, ``[..]``): repository names and tags are case-sensitive."""
    return any(fnmatchcase(summary.repository, p) for p in target.repositories) and any(
        fnmatchcase(summary.tag, p) for p in target.tags
    )


def payload(summary: EventSummary) -> dict[str, str]:
    """The delivery's content: nine keys, inside GitHub's limit of ten."""
    return {
        "repository": summary.repository,
        "tag": summary.tag,
        "digest": summary.digest,
        "media_type": summary.media_type,
        "registry": summary.registry,
        "actor": summary.actor,
        "url": summary.url,
        "event_id": summary.id,
        "timestamp": summary.timestamp,
    }


def _json(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=False).encode()


def github_request(target: TargetConfig, content: Mapping[str, str], token: str) -> Outgoing:
    body = _json({"event_type": target.event_type, "client_payload": dict(content)})
    headers = (
        ("Accept", GITHUB_ACCEPT),
        ("Authorization", f"Bearer {token}"),
        ("X-GitHub-Api-Version", GITHUB_API_VERSION),
        ("Content-Type", "application/json"),
        ("User-Agent", USER_AGENT),
    )
    return Outgoing(target.endpoint, headers, body)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def generic_request(target: TargetConfig, content: Mapping[str, str], secret: str | None) -> Outgoing:
    body = _json({"action": "push", **content})
    headers = [
        ("Content-Type", "application/json"),
        ("User-Agent", USER_AGENT),
        ("X-Regdeploy-Event", "push"),
        ("X-Regdeploy-Delivery", content.get("event_id", "")),
    ]
    if secret is not None:
        headers.append((target.signature_header, signature(secret, body)))
    return Outgoing(target.url, tuple(headers), body)
