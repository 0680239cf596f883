"""``api``: push and pull through the registry HTTP API itself, no Docker engine needed.

The config goes up as a monolithic upload (POST, then PUT with the whole blob), the layer as a
chunked one (POST, PATCH with the first half, PUT with the rest), then a schema 2 manifest under a tag.
Everything is fetched back by tag and by digest and compared byte for byte.
"""

from __future__ import annotations

import urllib.parse

from regdeploy.verify.context import Pushed, VerifyContext
from regdeploy.verify.model import NETWORK_ERRORS, CheckFailed, describe_error, parallel, registry_error
from regdeploy.verify.registry_api import RegistryClient, Response
from regdeploy.verify.smoke import MANIFEST_V2, build_smoke_image, sha256_digest

OCTET = "application/octet-stream"
DIGEST_HEADER = "docker-content-digest"


def api_tag(ctx: VerifyContext) -> str:
    return f"api-{ctx.nonce}"


def check_api(ctx: VerifyContext) -> str:
    client = ctx.target.client()
    image = build_smoke_image(ctx.nonce)
    repo = ctx.target.smoke_repository
    tag = api_tag(ctx)
    try:
        parallel(
            lambda: upload_monolithic(client, repo, image.config),
            lambda: upload_chunked(client, repo, image.layer),
        )
        digest = put_manifest(client, repo, tag, image.manifest)
        ctx.add_pushed(Pushed("api", tag, digest, repo))
    except NETWORK_ERRORS as exc:
        raise CheckFailed(f"push: {describe_error(exc)}") from None
    except CheckFailed as exc:
        raise CheckFailed(f"push refused: {exc}{_readonly_hint(ctx)}") from None
    finally:
        ctx.push_finished("api")

    accept = {"Accept": MANIFEST_V2}
    base = f"/v2/{repo}"
    try:
        by_tag, by_digest, layer, config = parallel(
            lambda: client.request("GET", f"{base}/manifests/{tag}", headers=accept),
            lambda: client.request("GET", f"{base}/manifests/{digest}", headers=accept),
            lambda: client.request("GET", f"{base}/blobs/{image.layer_digest}"),
            lambda: client.request("GET", f"{base}/blobs/{image.config_digest}"),
        )
    except NETWORK_ERRORS as exc:
        raise CheckFailed(f"pull: {describe_error(exc)}") from None
    for what, resp, want in (
        (f"manifest {repo}:{tag}", by_tag, image.manifest),
        (f"manifest {repo}@{digest[:19]}…", by_digest, image.manifest),
        (f"layer {image.layer_digest[:19]}…", layer, image.layer),
        (f"config {image.config_digest[:19]}…", config, image.config),
    ):
        if resp.status != 200:
            raise CheckFailed(f"pull: GET {what} answered {registry_error(resp)}")
        if sha256_digest(resp.body) != sha256_digest(want):
            raise CheckFailed(f"pull: {what} came back different (digest {sha256_digest(resp.body)[:19]}…)")
    if by_tag.headers.get(DIGEST_HEADER) != digest:
        raise CheckFailed(
            f"pull: the registry names {repo}:{tag} {by_tag.headers.get(DIGEST_HEADER)}, pushed {digest}"
        )
    return (
        f"pushed {repo}:{tag} (config monolithic, layer chunked, schema 2 manifest {digest[:19]}…), "
        "fetched back by tag and by digest: manifest, layer and config match"
    )


def _readonly_hint(ctx: VerifyContext) -> str:
    if ctx.job.spec.readonly:
        return " (storage.readonly is true: the registry refuses every write)"
    return ""


def upload_path(location: str | None, digest: str | None = None) -> str:
    """Path and query of an upload ``Location`` (absolute or not), with ``digest=`` added if given."""
    if not location:
        raise CheckFailed("the registry gave no upload Location")
    parts = urllib.parse.urlsplit(location)
    query = parts.query
    if digest is not None:
        query = (query + "&" if query else "") + urllib.parse.urlencode({"digest": digest})
    return parts.path + ("?" + query if query else "")


def _expect(resp: Response, status: int, what: str) -> Response:
    if resp.status != status:
        raise CheckFailed(f"{what} answered {registry_error(resp)}")
    return resp


def _start(client: RegistryClient, repo: str) -> str | None:
    resp = client.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    return _expect(resp, 202, f"POST /v2/{repo}/blobs/uploads/").headers.get("location")


def _finished(resp: Response, digest: str, what: str) -> str:
    _expect(resp, 201, what)
    got = resp.headers.get(DIGEST_HEADER)
    if got != digest:
        raise CheckFailed(f"{what}: the registry stored {got}, sent {digest}")
    return digest


def upload_monolithic(client: RegistryClient, repo: str, data: bytes) -> str:
    digest = sha256_digest(data)
    location = _start(client, repo)
    resp = client.request("PUT", upload_path(location, digest), body=data, headers={"Content-Type": OCTET})
    return _finished(resp, digest, f"monolithic upload of {digest[:19]}…")


def upload_chunked(client: RegistryClient, repo: str, data: bytes) -> str:
    """Two chunks: a PATCH with the first half (Content-Range), then the PUT carrying the rest."""
    digest = sha256_digest(data)
    half = len(data) // 2
    location = _start(client, repo)
    resp = client.request(
        "PATCH",
        upload_path(location),
        body=data[:half],
        headers={"Content-Type": OCTET, "Content-Range": f"0-{half - 1}"},
    )
    _expect(resp, 202, "PATCH (first chunk)")
    if resp.headers.get("range") != f"0-{half - 1}":
        raise CheckFailed(
            f"PATCH (first chunk): the registry holds {resp.headers.get('range')}, sent 0-{half - 1}"
        )
    resp = client.request(
        "PUT",
        upload_path(resp.headers.get("location"), digest),
        body=data[half:],
        headers={"Content-Type": OCTET},
    )
    return _finished(resp, digest, f"chunked upload of {digest[:19]}…")


def put_manifest(client: RegistryClient, repo: str, tag: str, manifest: bytes) -> str:
    digest = sha256_digest(manifest)
    resp = client.request(
        "PUT", f"/v2/{repo}/manifests/{tag}", body=manifest, headers={"Content-Type": MANIFEST_V2}
    )
    return _finished(resp, digest, f"PUT manifest {repo}:{tag}")
