"""``regdeploy retention``: delete the tags ``registry.retention`` does not keep, per host.

The registry is reached as ``verify`` reaches it (the host's address, the inventory's CA, the first
enabled user; token auth answered as docker does). Every repository of the catalog that a rule
matches is walked (tags, digests, created times), the policy decides, and each doomed manifest is
deleted by digest. A dry run walks and decides the same and deletes nothing. A failure stops that
host where it is: what was deleted until then is reported, and a re-run carries on from there.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from regdeploy.retention.policy import Decision, decide, matching_rule
from regdeploy.retention.scan import DeleteRefused, delete_manifest, scan_repository

if TYPE_CHECKING:
    from regdeploy.ops.run import HostJob
    from regdeploy.retention.scan import Api

Say = Callable[[str], None]
# The registry refuses n above catalog.maxentries (1000 by default) with a 400.
CATALOG_PAGE = 1000
CATALOG_LIMIT = 1_000_000


def delete_refused(host: str, why: str = "it answered DELETE with 405") -> str:
    return (
        f"{host}: the registry refuses deletes ({why}): set registry.storage.delete: true, "
        "run `regdeploy up`, then retention again"
    )


def retention_host(job: HostJob, dry_run: bool, now: datetime | None = None,
                   say: Say | None = None, api: Api | None = None) -> dict[str, Any]:  # fmt: skip
    """This host's report: ``{"ok", "changed", "repositories": {REPO: {"rule", "deleted", "kept"}},
    "unmatched", "error"}``; the repository a failure stopped in also has ``pending``, the deletions
    decided but not done. *api*: the registry client (tests); default as ``verify`` makes it."""
    spec = job.spec
    out: dict[str, Any] = {"ok": True, "changed": False, "repositories": {}, "unmatched": 0, "error": None}
    if not spec.retention:
        out["note"] = "no registry.retention rules"
        return out
    if not dry_run and not spec.delete_enabled:
        return {**out, "ok": False, "error": delete_refused(job.name, "registry.storage.delete is false")}
    when = now or datetime.now(UTC)
    client = api or _client(job)
    repo = ""
    try:
        for repo in client.catalog(page_size=CATALOG_PAGE, limit=CATALOG_LIMIT):
            if matching_rule(repo, spec.retention) is None:
                out["unmatched"] += 1
                continue
            decision = decide(repo, scan_repository(client, repo), spec.retention, when)
            if not decision.deleted and not decision.kept:
                continue  # a repository whose every tag is gone stays in 2.8's catalog
            entry: dict[str, Any] = {
                "rule": decision.rule,
                "deleted": [],
                "kept": [{"tag": k.tag, "reason": k.reason} for k in decision.kept],
            }
            out["repositories"][repo] = entry
            if say is not None and decision.deleted:
                verb = "would delete" if dry_run else "deleting"
                total = len(decision.deleted) + len(decision.kept)
                say(f"{repo}: {verb} {len(decision.deleted)} of {total} tags")
            _apply(client, decision, entry, dry_run, out)
    except DeleteRefused:
        out.update(ok=False, error=delete_refused(job.name))
    except (OSError, http.client.HTTPException) as exc:
        where = f"{repo}: " if repo else ""
        out.update(ok=False, error=f"{job.name}: {where}{exc or type(exc).__name__}")
    return out


def _apply(
    client: Api, decision: Decision, entry: dict[str, Any], dry_run: bool, out: dict[str, Any]
) -> None:
    # Until each is done, the decided deletions are "pending": a failure leaves them listed there.
    entry["pending"] = [{"tag": d.tag, "digest": d.digest, "reason": d.reason} for d in decision.deleted]
    for digest in decision.digests:
        if not dry_run:
            delete_manifest(client, decision.repository, digest)  # gone already: its tags are gone too
            out["changed"] = True
        entry["deleted"] += [d for d in entry["pending"] if d["digest"] == digest]
        entry["pending"] = [d for d in entry["pending"] if d["digest"] != digest]
    del entry["pending"]


def _client(job: HostJob) -> Api:
    from regdeploy.transport import open_transport
    from regdeploy.verify.context import make_target

    transport = open_transport(job.name, job.vars)
    try:
        address = transport.address
    finally:
        transport.close()
    return make_target(job, address, None).client()


def summary(hosts: dict[str, dict[str, Any]], dry_run: bool) -> dict[str, Any]:
    """The ``--json`` document."""
    return {
        "ok": all(h["ok"] for h in hosts.values()),
        "changed": any(h["changed"] for h in hosts.values()),
        "dry_run": dry_run,
        "hosts": hosts,
    }
