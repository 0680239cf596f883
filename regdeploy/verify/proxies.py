"""``proxies``: each pull-through cache answers with the registry's TLS and auth, and, when the
inventory names an image to check (``proxies[].check_image``), pulls it through from its upstream."""

from __future__ import annotations

from regdeploy.verify.context import VerifyContext
from regdeploy.verify.model import NETWORK_ERRORS, CheckFailed, NotApplicable, describe_error, registry_error

MANIFESTS = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))  # fmt: skip


def check_proxies(ctx: VerifyContext) -> str:
    proxies = ctx.job.spec.proxies
    if not proxies:
        raise NotApplicable("no registry.proxies")
    t = ctx.target
    said = []
    for p in proxies:
        client = t.client().at_port(p.port)
        try:
            root = client.request("GET", "/v2/")
            if root.status != 200:
                raise CheckFailed(
                    f"proxy {p.name} (port {p.port}): GET /v2/ as {t.user} answered {root.status}"
                )
            if p.check_image is None:
                said.append(f"{p.name} :{p.port} 200")
                continue
            repo, _, tag = p.check_image.rpartition(":")
            got = client.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFESTS})
        except NETWORK_ERRORS as exc:
            raise CheckFailed(f"proxy {p.name} (port {p.port}): {describe_error(exc)}") from None
        if got.status != 200:
            raise CheckFailed(
                f"proxy {p.name}: pulling {p.check_image} from {p.remoteurl} answered {registry_error(got)}"
            )
        digest = got.headers.get("docker-content-digest", "?")
        said.append(f"{p.name} :{p.port} pulled {p.check_image} ({digest[:19]})")
    return "; ".join(said)
