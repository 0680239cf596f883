"""The registry API walk behind retention: repositories, their tags, each tag's manifest digest and
the created time of its image, and the deletion of a manifest by digest.

A tag's time is its image config's ``created`` (for an index: of its first image manifest that is
not an attestation), else the manifest's ``org.opencontainers.image.created`` annotation, else
unknown. Times before 1980 are placeholders of reproducible builds (ko writes year 1, Bazel and
``SOURCE_DATE_EPOCH=0`` 1970) and read as unknown. A config blob that cannot be read leaves the
time unknown too, with the reason: the policy then keeps the tag rather than guess its age.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from regdeploy.retention.policy import TagInfo
from regdeploy.verify.registry_api import Response

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+prettyjws",
           "application/vnd.docker.distribution.manifest.v1+json")  # fmt: skip
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST, *SCHEMA1))
IMAGE_CONFIGS = ("application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json")
CREATED_ANNOTATION = "org.opencontainers.image.created"
PLACEHOLDER_BEFORE = datetime(1980, 1, 1, tzinfo=UTC)
MAX_CONFIG_BYTES = 4 << 20
_REDIRECTS = (301, 302, 303, 307, 308)
_LINK_RE = re.compile(r'<([^>]+)>;\s*rel="?next"?')


class Api(Protocol):
    """What the walk needs of :class:`regdeploy.verify.registry_api.RegistryClient`."""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, auth: bool = True) -> Response: ...  # fmt: skip

    def catalog(self, page_size: int = 100, limit: int = 10000) -> list[str]: ...


class ScanError(OSError):
    """The registry answered something the walk cannot go on from; ``str()`` says what."""


class DeleteRefused(ScanError):
    """The registry refuses deletes (405: ``storage.delete`` is not enabled)."""


def tags(api: Api, repository: str) -> list[str]:
    """Every tag of *repository*, following ``Link`` pages (2.8 returns all in one)."""
    found: list[str] = []
    path: str | None = f"/v2/{repository}/tags/list?n=1000"
    while path:
        resp = api.request("GET", path)
        if resp.status == 404:  # every tag deleted since the catalog listed it
            return found
        _expect(resp, 200, "GET", path)
        found += resp.json().get("tags") or []
        match = _LINK_RE.search(resp.headers.get("link", ""))
        path = match.group(1) if match else None
    return list(dict.fromkeys(found))


def scan_repository(api: Api, repository: str, fetch: Callable[[str], bytes] | None = None) -> list[TagInfo]:
    """Each tag's digest and time. A tag deleted while the walk runs is left out.

    *fetch*: how a config blob the registry redirects elsewhere (S3) is read; default urllib with the
    system's trust."""
    configs: dict[str, tuple[datetime | None, str]] = {}
    out = []
    for tag in tags(api, repository):
        info = tag_info(api, repository, tag, configs, fetch or _fetch_url)
        if info is not None:
            out.append(info)
    return out


def tag_info(api: Api, repository: str, tag: str, configs: dict[str, tuple[datetime | None, str]],
             fetch: Callable[[str], bytes]) -> TagInfo | None:  # fmt: skip
    got = _manifest(api, repository, tag)
    if got is None:
        return None
    digest, media_type, body = got
    children: tuple[str, ...] = ()
    image = body
    if media_type in (OCI_INDEX, DOCKER_LIST):
        manifests = [m for m in body.get("manifests") or [] if isinstance(m, dict) and m.get("digest")]
        children = tuple(str(m["digest"]) for m in manifests)
        first = next((m for m in manifests if not _attestation(m)), None)
        image = {}
        if first is not None:
            child = _manifest(api, repository, str(first["digest"]))
            image = child[2] if child is not None else {}
    created, why = _created(api, repository, image, configs, fetch)
    if created is None:
        annotated = _time((body.get("annotations") or {}).get(CREATED_ANNOTATION))
        if annotated is not None:
            created, why = annotated, ""
    return TagInfo(tag, digest, created, children, why or TagInfo.unknown_why)


def delete_manifest(api: Api, repository: str, digest: str) -> bool:
    """DELETE the manifest *digest* (and so every tag of it); False if it was already gone."""
    path = f"/v2/{repository}/manifests/{digest}"
    resp = api.request("DELETE", path)
    if resp.status in (200, 202):
        return True
    if resp.status == 404:
        return False
    if resp.status == 405:
        raise DeleteRefused(f"DELETE {path} answered 405: the registry does not allow deletes")
    _expect(resp, 202, "DELETE", path)
    return True


def _manifest(api: Api, repository: str, reference: str) -> tuple[str, str, dict[str, Any]] | None:
    path = f"/v2/{repository}/manifests/{quote(reference, safe=':')}"
    resp = api.request("GET", path, headers={"Accept": ACCEPT})
    if resp.status == 404:
        return None
    _expect(resp, 200, "GET", path)
    digest = resp.headers.get("docker-content-digest") or "sha256:" + hashlib.sha256(resp.body).hexdigest()
    try:
        body = json.loads(resp.body)
    except ValueError:
        raise ScanError(f"GET {path}: the manifest is not JSON") from None
    if not isinstance(body, dict):
        raise ScanError(f"GET {path}: the manifest is not a JSON object")
    media_type = resp.headers.get("content-type", "").split(";")[0].strip() or str(body.get("mediaType", ""))
    return digest, media_type, body


def _created(api: Api, repository: str, manifest: dict[str, Any],
             configs: dict[str, tuple[datetime | None, str]],
             fetch: Callable[[str], bytes]) -> tuple[datetime | None, str]:  # fmt: skip
    if manifest.get("schemaVersion") == 1:  # schema 1: the newest layer's v1 JSON has the time
        history = manifest.get("history") or [{}]
        try:
            v1 = json.loads(history[0].get("v1Compatibility") or "{}")
        except (ValueError, AttributeError):
            v1 = {}
        return _dated(v1.get("created") if isinstance(v1, dict) else None)
    config = manifest.get("config")
    if not isinstance(config, dict) or not config.get("digest"):
        return None, ""
    if config.get("mediaType") not in IMAGE_CONFIGS:
        return None, f"an artifact (config {config.get('mediaType')}) has no created time"
    digest = str(config["digest"])
    if digest not in configs:
        configs[digest] = _config_time(api, repository, digest, fetch)
    return configs[digest]


def _config_time(api: Api, repository: str, digest: str,
                 fetch: Callable[[str], bytes]) -> tuple[datetime | None, str]:  # fmt: skip
    path = f"/v2/{repository}/blobs/{digest}"
    try:
        resp = api.request("GET", path)
        location = resp.headers.get("location", "") if resp.status in _REDIRECTS else ""
        if location.startswith("/"):  # on the registry itself
            resp, location = api.request("GET", location), ""
        if location:
            data = fetch(location)  # the storage (S3): a presigned URL, no registry credentials
        elif resp.status == 200:
            data = resp.body
        else:
            return None, f"its config blob answered {resp.status}"
        config = json.loads(data[:MAX_CONFIG_BYTES])
    except (OSError, ValueError) as exc:
        return None, f"its config blob could not be read ({type(exc).__name__}: {exc})"
    return _dated(config.get("created") if isinstance(config, dict) else None)


def _dated(value: Any) -> tuple[datetime | None, str]:
    created = _time(value)
    if created is None and isinstance(value, str) and value:
        return None, f"its created time {value[:40]!r} is unreadable or a reproducible-build placeholder"
    return created, ""


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return None if when < PLACEHOLDER_BEFORE else when


def _attestation(entry: dict[str, Any]) -> bool:
    platform = entry.get("platform") or {}
    annotations = entry.get("annotations") or {}
    return platform.get("os") == "unknown" or "vnd.docker.reference.type" in annotations


def _expect(resp: Response, status: int, method: str, path: str) -> None:
    if resp.status == status:
        return
    detail = ""
    try:
        errors = resp.json().get("errors") or []
        detail = "; ".join(str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        pass
    why = {401: "the user is not authorized", 403: "the user may not do this"}.get(resp.status, "")
    raise ScanError(f"{method} {path} answered {resp.status}" + "".join(f": {x}" for x in (why, detail) if x))


def _fetch_url(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10, context=ssl.create_default_context()) as resp:
        data: bytes = resp.read(MAX_CONFIG_BYTES + 1)
        return data
