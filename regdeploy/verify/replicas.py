"""``replicas`` (clusters): every image this run pushed has the same digest on every replica of the
cluster, asked directly (not through a balancer) — the replicas share one storage."""

from __future__ import annotations

import dataclasses

from regdeploy.verify.context import VerifyContext
from regdeploy.verify.model import NETWORK_ERRORS, Blocked, CheckFailed, describe_error, registry_error
from regdeploy.verify.smoke import MANIFEST_V2


def check_replicas(ctx: VerifyContext) -> str:
    view = ctx.job.spec.cluster_view
    assert view is not None  # verify_host selects this check for cluster hosts only
    ctx.wait_for_pushes("replicas")
    if not ctx.pushed:
        raise Blocked("nothing was pushed")
    seen: list[str] = []
    for member in view.members:
        target = dataclasses.replace(
            ctx.target, host=member.host, address=member.address, port=member.port,
            server_name=member.address, tokens={},
        )  # fmt: skip
        client = target.client()
        for p in ctx.pushed:
            path = f"/v2/{p.repository}/manifests/{p.tag}"
            try:
                resp = client.request("HEAD", path, headers={"Accept": MANIFEST_V2})
            except NETWORK_ERRORS as exc:
                raise CheckFailed(
                    f"replica {member.host} ({target.registry}): {describe_error(exc)}"
                ) from None
            if resp.status != 200:
                raise CheckFailed(f"replica {member.host}: {p.ref} answers {registry_error(resp)}")
            digest = resp.headers.get("docker-content-digest")
            if digest != p.digest:
                raise CheckFailed(f"replica {member.host}: {p.ref} is {digest}, pushed {p.digest}")
        seen.append(member.host)
    refs = ", ".join(p.ref for p in ctx.pushed)
    return f"{refs}: the same digest on {len(seen)} replicas ({', '.join(seen)}), asked directly"
