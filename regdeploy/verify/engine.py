"""``engine``: push and pull through the control machine's Docker engine, as ``docker push/pull`` would.

A tiny image ``FROM scratch`` is made locally (no pull: loaded from an in-memory archive, see ``smoke``),
tagged ``NAME:PORT/regdeploy-smoke:engine-<nonce>``, pushed with the configured user's credentials
(``auth_config``: nothing is written to ``~/.docker/config.json``), removed locally, pulled back and
compared by manifest digest and image id.
Trust comes from the inventory's CA in ``/etc/docker/certs.d`` (see ``trust``), never from an
insecure-registries setting.

``prepare`` (SDK import, engine connection, smoke image: about half a second) needs no registry, so the
runner starts it alongside the first checks; ``check_engine`` then only pushes and pulls.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regdeploy.verify.context import Pushed, VerifyContext
from regdeploy.verify.model import CheckFailed, describe_error
from regdeploy.verify.trust import Trust, ca_in_certs_d, insecure_because

if TYPE_CHECKING:
    import docker


def engine_tag(ctx: VerifyContext) -> str:
    return f"engine-{ctx.nonce}"


@dataclass(frozen=True)
class Prepared:
    client: docker.DockerClient
    repo: str  # NAME:PORT/regdeploy-smoke
    tag: str
    image_id: str
    insecure: str | None  # why the engine skips certificate checks for this registry, if it does
    seconds: float

    @property
    def ref(self) -> str:
        return f"{self.repo}:{self.tag}"


@contextlib.contextmanager
def _sdk_errors() -> Iterator[None]:
    """The Docker SDK's exceptions as CheckFailed, with the engine's own words."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except docker.errors.APIError as exc:
        raise CheckFailed(f"the Docker engine refused: {_api_reason(exc)}") from None
    except (requests.exceptions.RequestException, OSError) as exc:
        raise CheckFailed(f"the Docker engine cannot be reached: {describe_error(exc)}") from None


def prepare(ctx: VerifyContext) -> Prepared:
    """Connect to the engine and load the smoke image: everything that does not need the registry."""
    started = time.perf_counter()
    t = ctx.target
    client = ctx.control_engine()
    repo = f"{t.registry}/{t.smoke_repository}"
    tag = engine_tag(ctx)
    with _sdk_errors():
        insecure = None
        if t.ca_pem is not None:
            insecure = insecure_because(client.info().get("RegistryConfig") or {}, t.registry)
        image_id = _load(ctx, client, f"{repo}:{tag}")
    return Prepared(client, repo, tag, image_id, insecure, time.perf_counter() - started)


def check_engine(ctx: VerifyContext) -> str:
    # Without the runner (tests) nobody started the groundwork: do it now.
    prep = prepare(ctx) if ctx.engine_ready is None else ctx.engine_ready.result()
    t = ctx.target
    client, ref = prep.client, prep.ref
    auth = {"username": t.user, "password": t.password, "serveraddress": t.registry}
    with _sdk_errors():
        with _trust(ctx, prep) as trust:
            try:
                digest = drain(
                    client.api.push(prep.repo, tag=prep.tag, auth_config=auth, stream=True, decode=True)
                )
                if not digest:
                    raise CheckFailed("the engine reported no digest")
                ctx.add_pushed(Pushed("engine", prep.tag, digest, t.smoke_repository))
            except CheckFailed as exc:
                raise CheckFailed(f"push {ref} refused: {exc}{_hint(ctx, str(exc), trust)}") from None
            finally:
                ctx.push_finished("engine")
            client.images.remove(ref)
            try:
                pulled = drain(
                    client.api.pull(prep.repo, tag=prep.tag, auth_config=auth, stream=True, decode=True)
                )
            except CheckFailed as exc:
                raise CheckFailed(
                    f"pull {ref} after the push failed: {exc}{_hint(ctx, str(exc), trust)}"
                ) from None
            image = client.images.get(ref)
        if trust.left_behind:
            raise CheckFailed(f"pushed and pulled, but could not remove {trust.left_behind}")
    repo_digests = image.attrs.get("RepoDigests") or []
    if pulled and pulled != digest:
        raise CheckFailed(f"pulled {ref} has digest {pulled}, pushed {digest}")
    if f"{prep.repo}@{digest}" not in repo_digests:
        raise CheckFailed(f"pulled {ref} but the engine lists digests {repo_digests}, pushed {digest}")
    if image.id != prep.image_id:
        raise CheckFailed(f"pulled {ref} is image {image.id[:19]}…, pushed {prep.image_id[:19]}…")
    return (
        f"pushed {ref} as {t.user}, removed it, pulled it back: digest {digest[:19]}… and image id match "
        f"(image made in {prep.seconds:.2f}s alongside the first checks); {trust.note}"
    )


@contextlib.contextmanager
def _trust(ctx: VerifyContext, prep: Prepared) -> Iterator[Trust]:
    t = ctx.target
    if t.ca_pem is None:
        yield Trust(f"plain HTTP: the engine talks to {t.registry} without TLS", None)
        return
    if prep.insecure is not None:
        # Said plainly: this push proves the engine path, not the certificate (the tls check does).
        yield Trust(
            f"note: {prep.insecure}, so the engine skipped certificate verification (and ignores certs.d) "
            "for this push: the tls check is what proves the CA",
            None,
        )
        return
    if not _engine_is_local():
        yield Trust(
            f"the engine at {os.environ.get('DOCKER_HOST')} reads its own /etc/docker/certs.d: "
            "it must trust the inventory's CA there",
            None,
        )
        return
    with ca_in_certs_d(t.registry, t.ca_pem) as trust:
        yield trust


def _engine_is_local() -> bool:
    url = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return url.startswith("unix://")


def _load(ctx: VerifyContext, client: docker.DockerClient, ref: str) -> str:
    from regdeploy.verify.smoke import docker_archive

    data, image_id = docker_archive(f"{ctx.nonce}-engine", ref)
    ctx.add_local_image(ref)  # before loading: cleanup removes it even if the load half-succeeds
    for line in client.api.load_image(data):
        if "error" in line or "errorDetail" in line:
            detail = line.get("errorDetail") or {}
            raise CheckFailed(
                f"the engine refused the smoke image: {detail.get('message') or line.get('error')}"
            )
    loaded = client.images.get(ref).id
    if loaded != image_id:
        raise CheckFailed(f"the engine loaded the smoke image as {loaded[:19]}…, expected {image_id[:19]}…")
    return image_id


def drain(lines: Iterator[dict[str, Any]]) -> str | None:
    """Drain a push/pull progress stream: the manifest digest it reports, or CheckFailed with its error."""
    digest: str | None = None
    for line in lines:
        if "error" in line or "errorDetail" in line:
            detail = line.get("errorDetail") or {}
            raise CheckFailed(" ".join(str(detail.get("message") or line.get("error")).split()))
        aux = line.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            digest = str(aux["Digest"])  # push
        status = str(line.get("status", ""))
        if status.startswith("Digest: "):
            digest = status.removeprefix("Digest: ").strip()  # pull
    return digest


def _hint(ctx: VerifyContext, message: str, trust: Trust) -> str:
    lowered = message.lower()
    if "x509" in lowered or "certificate" in lowered:
        return f" ({trust.note})"
    if ctx.job.spec.readonly and any(w in lowered for w in ("405", "not allowed", "unsupported", "denied")):
        return " (storage.readonly is true: the registry refuses every write)"
    if "unauthorized" in lowered or "authentication required" in lowered:
        return f" (the registry refused user {ctx.target.user!r})"
    return ""


def _api_reason(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    text = explanation.decode(errors="replace") if isinstance(explanation, bytes) else str(explanation or exc)
    return " ".join(text.split())
