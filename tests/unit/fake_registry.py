"""A registry's HTTP API in memory, as far as retention uses it: catalog, tags, manifests, blobs, DELETE."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import unquote

from regdeploy.verify.registry_api import Response

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    def __init__(self) -> None:
        self.tags: dict[str, dict[str, str]] = {}  # repo -> tag -> digest
        self.manifests: dict[str, dict[str, tuple[str, bytes]]] = {}  # repo -> digest -> (type, body)
        self.blobs: dict[str, bytes] = {}
        self.redirect_blobs: dict[str, str] = {}  # digest -> Location
        self.delete_status = 202
        self.fail: dict[tuple[str, str], int] = {}  # (method, path) -> status
        self.requests: list[tuple[str, str]] = []
        self.tag_page: int | None = None  # paginate tags/list (3.x does; 2.8 does not)

    # -- building content ---------------------------------------------------------------------------
    def blob(self, data: bytes) -> str:
        self.blobs[digest_of(data)] = data
        return digest_of(data)

    def manifest(self, repo: str, body: dict[str, Any], media_type: str, tag: str | None = None) -> str:
        data = json.dumps({"mediaType": media_type, **body}).encode()
        digest = digest_of(data)
        self.manifests.setdefault(repo, {})[digest] = (media_type, data)
        self.tags.setdefault(repo, {})
        if tag is not None:
            self.tags[repo][tag] = digest
        return digest

    def image(self, repo: str, tag: str | None, config: dict[str, Any] | bytes,
              config_type: str = DOCKER_CONFIG) -> str:  # fmt: skip
        data = config if isinstance(config, bytes) else json.dumps(config).encode()
        cfg = self.blob(data)
        body = {"schemaVersion": 2, "config": {"mediaType": config_type, "size": len(data), "digest": cfg},
                "layers": []}  # fmt: skip
        return self.manifest(repo, body, DOCKER_MANIFEST, tag)

    def index(self, repo: str, tag: str, children: list[tuple[str, dict[str, Any]]]) -> str:
        entries = [{"mediaType": DOCKER_MANIFEST, "digest": d, "size": 1, "platform": p} for d, p in children]
        body = {"schemaVersion": 2, "manifests": entries}
        return self.manifest(repo, body, OCI_INDEX, tag)

    # -- the API ------------------------------------------------------------------------------------
    def catalog(self, page_size: int = 100, limit: int = 10000) -> list[str]:
        return sorted(self.tags)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, auth: bool = True) -> Response:  # fmt: skip
        self.requests.append((method, path))
        if (method, path) in self.fail:
            return Response(self.fail[method, path], {}, b'{"errors":[{"code":"DENIED","message":"no"}]}')
        base, _, query = path.partition("?")
        rest = base.removeprefix("/v2/")
        if rest.endswith("/tags/list"):
            return self._tags(rest.removesuffix("/tags/list"), query)
        if "/manifests/" in rest:
            repo, _, ref = rest.partition("/manifests/")
            return self._manifest(method, repo, unquote(ref))
        if "/blobs/" in rest:
            _, _, digest = rest.partition("/blobs/")
            if digest in self.redirect_blobs:
                return Response(307, {"location": self.redirect_blobs[digest]}, b"")
            if digest in self.blobs:
                return Response(200, {}, self.blobs[digest])
            return Response(404, {}, b"")
        return Response(404, {}, b"")

    def _tags(self, repo: str, query: str) -> Response:
        if repo not in self.tags:
            return Response(404, {}, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')
        names = sorted(self.tags[repo])
        if self.tag_page is None:
            return Response(200, {}, json.dumps({"name": repo, "tags": names or None}).encode())
        last = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("last")
        start = names.index(last) + 1 if last else 0
        page = names[start : start + self.tag_page]
        headers = {}
        if start + self.tag_page < len(names):
            headers["link"] = f'</v2/{repo}/tags/list?n={self.tag_page}&last={page[-1]}>; rel="next"'
        return Response(200, headers, json.dumps({"name": repo, "tags": page}).encode())

    def _manifest(self, method: str, repo: str, ref: str) -> Response:
        digest = ref if ref.startswith("sha256:") else self.tags.get(repo, {}).get(ref)
        stored = self.manifests.get(repo, {}).get(digest or "")
        if method == "DELETE":
            if self.delete_status != 202:
                return Response(self.delete_status, {}, b'{"errors":[{"code":"UNSUPPORTED"}]}')
            if stored is None or not ref.startswith("sha256:"):
                return Response(404, {}, b"")
            del self.manifests[repo][ref]
            self.tags[repo] = {t: d for t, d in self.tags[repo].items() if d != ref}
            return Response(202, {}, b"")
        if stored is None:
            return Response(404, {}, b"")
        media_type, data = stored
        return Response(200, {"content-type": media_type, "docker-content-digest": digest or ""}, data)
