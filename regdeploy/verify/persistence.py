"""``persistence`` (opt-in): restart the registry container; what was pushed must still be there.

This proves the storage is the bind-mounted ``data_dir``, not the container's own layer. It interrupts
the registry for about a second, hence opt-in (``--persistence``). It runs after ``notifications``: a
restart drops the registry's in-memory queue of undelivered events.
"""

from __future__ import annotations

import ssl
import time

from regdeploy.deploy.health import http_probe
from regdeploy.verify.context import VerifyContext
from regdeploy.verify.model import NETWORK_ERRORS, CheckFailed, describe_error, parallel, registry_error
from regdeploy.verify.smoke import MANIFEST_V2

RESTART_TIMEOUT = 10  # seconds docker waits for the registry to stop before killing it


def check_persistence(ctx: VerifyContext) -> str:
    import docker.errors

    spec = ctx.job.spec
    t = ctx.target
    started = time.monotonic()
    try:
        ctx.transport.docker().api.restart(spec.name, timeout=RESTART_TIMEOUT)
    except docker.errors.APIError as exc:
        raise CheckFailed(f"cannot restart container {spec.name!r}: {exc.explanation or exc}") from None
    _wait_serving(ctx, spec.health_timeout)
    took = time.monotonic() - started
    client = t.client()
    pushed = list(ctx.pushed)
    try:
        answers = parallel(
            *(
                (
                    lambda p=p: client.request(
                        "HEAD", f"/v2/{p.repository}/manifests/{p.tag}", headers={"Accept": MANIFEST_V2}
                    )
                )
                for p in pushed
            )
        )
    except NETWORK_ERRORS as exc:
        raise CheckFailed(f"after the restart: {describe_error(exc)}") from None
    for p, resp in zip(pushed, answers, strict=True):
        if resp.status != 200:
            raise CheckFailed(
                f"after the restart, {p.ref} answers {registry_error(resp)}: the data did not survive"
            )
        now = resp.headers.get("docker-content-digest")
        if now != p.digest:
            raise CheckFailed(f"after the restart, {p.ref} is {now}, pushed {p.digest}")
    refs = ", ".join(p.ref for p in pushed)
    took_text = f"serving again after {took:.1f}s"
    return f"restarted container {spec.name!r} ({took_text}): {refs} still there, same digests"


def _wait_serving(ctx: VerifyContext, timeout: float) -> None:
    t = ctx.target
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status = http_probe(t.address, t.port, t.ca_pem, 1.0, acme=ctx.job.spec.tls.mode == "letsencrypt")
            if status == 200:
                return
            last = f"GET / answered {status}"
        except (OSError, ssl.SSLError) as exc:
            last = describe_error(exc)
        time.sleep(0.05)
    raise CheckFailed(f"the registry did not serve again within {timeout:g}s of the restart ({last})")
