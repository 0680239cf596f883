"""`regdeploy retention` against a real registry 2.8.2: 12 tags with controlled created times, a policy
keeping the 3 newest plus `latest`: the dry run lists exactly what the real run deletes, and then
exactly those 4 remain; a second run deletes nothing; a registry without deletes fails clearly."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from deploytools import Deployment, deployment, image_config, push_small_image

from regdeploy.verify.registry_api import RegistryClient

__all__ = ["deployment"]

pytestmark = pytest.mark.integration

REPO = "team/app"
RULES = [{"repositories": "team/*", "keep_last": 3, "keep_tags": ["latest"]}]
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def push(api: RegistryClient, repo: str, tag: str, created: str) -> str:
    """An image whose config says it was *created* then; returns its manifest digest."""
    return push_small_image(api, repo, b"regdeploy retention test layer", tag, image_config(created=created))


def registry_tags(api: RegistryClient, repo: str = REPO) -> set[str]:
    resp = api.request("GET", f"/v2/{repo}/tags/list")
    assert resp.status == 200, resp
    return set(resp.json().get("tags") or [])


def retention(d: Deployment, *args: str) -> tuple[int, dict[str, Any]]:
    result = d.run("retention", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def test_keeps_the_three_newest_plus_latest(deployment: Deployment) -> None:
    d = deployment
    d.registry["retention"] = RULES
    d.write()
    d.up_json()
    api = d.api()
    digests = {"latest": push(api, REPO, "latest", "2026-01-01T00:00:00Z")}
    for n in range(1, 12):  # v01 (oldest) .. v11 (newest); with latest, 12 tags
        digests[f"v{n:02d}"] = push(api, REPO, f"v{n:02d}", f"2026-01-01T00:00:{n:02d}Z")
    other = push(api, "other/tool", "v1", "2020-01-01T00:00:00Z")  # no rule matches it
    assert len(registry_tags(api)) == 12
    doomed = [f"v{n:02d}" for n in range(8, 0, -1)]

    code, dry = retention(d, "--dry-run")
    assert code == 0, dry
    host = dry["hosts"]["localhost"]
    assert (dry["ok"], dry["changed"], host["ok"], host["changed"]) == (True, False, True, False)
    listed = host["repositories"][REPO]["deleted"]
    assert [x["tag"] for x in listed] == doomed
    assert all(x["digest"] == digests[x["tag"]] and "not among the 3 newest" in x["reason"] for x in listed)
    assert [(k["tag"], k["reason"].split(" (")[0]) for k in host["repositories"][REPO]["kept"]] == [
        ("v11", "among the 3 newest"), ("v10", "among the 3 newest"), ("v09", "among the 3 newest"),
        ("latest", "matches keep_tags 'latest'"),
    ]  # fmt: skip
    assert host["unmatched"] == 1
    assert len(registry_tags(api)) == 12  # the dry run deleted nothing

    code, done = retention(d)
    assert code == 0, done
    assert done["changed"] and done["hosts"]["localhost"]["repositories"][REPO]["deleted"] == listed
    assert registry_tags(api) == {"latest", "v09", "v10", "v11"}
    for tag in ("latest", "v09", "v10", "v11"):  # each kept tag still resolves to its digest
        resp = api.request("HEAD", f"/v2/{REPO}/manifests/{tag}", headers={"Accept": MANIFEST})
        assert (resp.status, resp.headers.get("docker-content-digest")) == (200, digests[tag])
    for tag in doomed:
        assert api.request("HEAD", f"/v2/{REPO}/manifests/{digests[tag]}").status == 404
    assert registry_tags(api, "other/tool") == {"v1"}
    assert api.request("HEAD", f"/v2/other/tool/manifests/{other}").status == 200

    code, again = retention(d)
    assert code == 0 and not again["changed"]
    assert again["hosts"]["localhost"]["repositories"][REPO]["deleted"] == []

    text = d.run("retention", "--dry-run")
    assert text.exit_code == 0
    assert text.stdout.startswith("localhost: would delete 0 tags in 1 repository\n")


def test_a_registry_without_deletes_fails_with_one_clear_line(deployment: Deployment) -> None:
    from regdeploy.ops.retention import retention_host
    from regdeploy.ops.run import prepare

    d = deployment
    d.registry["retention"] = RULES
    d.registry["storage"] = {"delete": False}
    d.write()
    d.up_json()
    api = d.api()
    for n in range(1, 5):
        push(api, REPO, f"v{n}", f"2026-01-01T00:00:0{n}Z")

    result = d.run("retention")  # the inventory says so: refused before any request
    assert result.exit_code == 1
    assert "registry.storage.delete is false" in result.stdout

    # The inventory claims deletes, the registry (deployed without) answers 405.
    (job,) = prepare(d.inventory, None, render_files=False).jobs
    job = dataclasses.replace(job, spec=dataclasses.replace(job.spec, delete_enabled=True))
    out = retention_host(job, dry_run=False)
    assert not out["ok"] and not out["changed"]
    assert out["error"] == (
        "localhost: the registry refuses deletes (it answered DELETE with 405): set "
        "registry.storage.delete: true, run `regdeploy up`, then retention again"
    )
    assert registry_tags(api) == {"v1", "v2", "v3", "v4"}


def test_through_token_auth(deployment: Deployment, free_port: Any) -> None:
    """With auth.mode token, the walk and the deletes answer the registry's Bearer challenges."""
    d = deployment
    d.registry["auth"] = {"mode": "token", "users": [{"name": "alice"}], "bcrypt_cost": 5,
                          "token": {"port": free_port()}}  # fmt: skip
    d.registry["retention"] = [{"repositories": "team/*", "keep_last": 1}]
    d.write()
    d.up_json()
    api = d.api()
    assert api.request("GET", "/v2/").status == 200  # a token, from the deployed token server
    for n in range(1, 4):
        push(api, REPO, f"v{n}", f"2026-01-01T00:00:0{n}Z")
    code, out = retention(d)
    assert code == 0, out
    assert [x["tag"] for x in out["hosts"]["localhost"]["repositories"][REPO]["deleted"]] == ["v2", "v1"]
    assert registry_tags(api) == {"v3"}
