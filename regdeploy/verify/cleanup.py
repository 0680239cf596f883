"""``cleanup``: remove what this run created — smoke manifests on the registry, images on the local engine.

It runs whenever a check pushed or built something, even when not asked for, and fails when anything
stays: with ``storage.delete`` disabled the registry answers 405 and the smoke manifests remain.
Deleting a manifest unlinks it and its tag; the blobs stay on disk until the registry's garbage-collect,
and the repository name stays in the catalog (the registry API cannot delete repositories).
"""

from __future__ import annotations

from regdeploy.verify.context import Pushed, VerifyContext
from regdeploy.verify.model import (
    NETWORK_ERRORS,
    CheckFailed,
    NotApplicable,
    describe_error,
    parallel,
    registry_error,
)
from regdeploy.verify.registry_api import Response


def needed(ctx: VerifyContext) -> bool:
    return bool(ctx.pushed or ctx.local_images)


def check_cleanup(ctx: VerifyContext) -> str:
    if not needed(ctx):
        raise NotApplicable("nothing was pushed or built")
    done: list[str] = []
    left: list[str] = []
    pushed = sorted(ctx.pushed, key=lambda p: p.ref)  # the push checks finish in any order
    if pushed:
        client = ctx.target.client()

        def delete(p: Pushed) -> Response | str:
            try:
                return client.request("DELETE", f"/v2/{p.repository}/manifests/{p.digest}")
            except NETWORK_ERRORS as exc:
                return describe_error(exc)

        answers = parallel(*((lambda p=p: delete(p)) for p in pushed))
        refused_refs: list[str] = []
        reasons: set[str] = set()
        for p, answer in zip(pushed, answers, strict=True):
            if isinstance(answer, Response) and answer.status in (202, 404):  # 404: already gone
                done.append(p.ref)
            elif isinstance(answer, Response):
                refused_refs.append(f"{p.ref} ({p.digest})")
                reasons.add(registry_error(answer))
            else:
                left.append(f"{p.ref} ({p.digest}) could not be deleted: {answer}")
        if refused_refs:
            reason = "; ".join(sorted(reasons))
            if not ctx.job.spec.delete_enabled:
                reason += " (storage.delete is disabled)"
            left.insert(0, f"DELETE answered {reason}: left on the registry: {', '.join(refused_refs)}")
    removed, not_removed = _remove_local(ctx)
    left += not_removed
    summary = []
    if done:
        summary.append(f"deleted {', '.join(done)} (blobs stay on disk until garbage-collect)")
    if removed:
        summary.append("removed " + ", ".join(removed))
    if left:
        raise CheckFailed("; ".join(left + summary))
    return "; ".join(summary)


def _remove_local(ctx: VerifyContext) -> tuple[list[str], list[str]]:
    """(removed, not removed with why) for the images this run put on the control machine's engine."""
    if not ctx.local_images:
        return [], []
    import docker.errors

    done: list[str] = []
    left: list[str] = []
    client = ctx.control_engine()
    for ref in ctx.local_images:
        try:
            client.images.remove(ref)
            done.append(f"local image {ref}")
        except docker.errors.ImageNotFound:
            done.append(f"local image {ref}")  # the pull never brought it back, or it was removed already
        except docker.errors.APIError as exc:
            left.append(f"local image {ref}: {exc.explanation or exc}")
    return done, left
