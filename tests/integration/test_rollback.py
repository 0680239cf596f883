"""`regdeploy rollback` on the real engine: the previous definition and files come back, data stays,
and the next `up` wants the newer state again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from deploytools import Deployment, changes, deployment, push_small_image

__all__ = ["deployment"]

pytestmark = pytest.mark.integration

ACCEPT = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}


def definition(d: Deployment) -> dict[str, Any]:
    return dict(json.loads(d.container()["Config"]["Labels"]["io.regdeploy.definition"]))


def test_rollback_puts_back_the_previous_definition_and_files(deployment: Deployment, docker_client: Any,
                                                               registry_image: str) -> None:  # fmt: skip
    d = deployment
    d.up_json()
    digest = push_small_image(d.api(), "team/app")
    before_def = definition(d)
    before_config = (d.config / "config.yml").read_bytes()
    # A new image reference (the same image under another tag) and a config change go out together.
    retagged = f"{registry_image.rsplit(':', 1)[0]}:rollback-{d.name}"
    docker_client.images.get(registry_image).tag(retagged)
    try:
        d.registry.update(image=retagged, log_level="debug")
        d.write()
        assert (f"container:{d.name}", "recreate") in changes(d.up_json())
        assert definition(d)["image"] == retagged
        assert (d.config / "config.yml").read_bytes() != before_config

        back = d.run("rollback", "--json")
        assert back.exit_code == 0, back.output
        assert (f"container:{d.name}", "recreate") in changes(json.loads(back.stdout))
        assert definition(d) == before_def
        assert (d.config / "config.yml").read_bytes() == before_config
        got = d.api().request("GET", "/v2/team/app/manifests/v1", headers=ACCEPT)
        assert got.status == 200 and got.headers["docker-content-digest"] == digest  # data untouched

        # The inventory still says the newer state: up wants it again, and says why.
        plan = d.run("plan", "--json")
        planned = json.loads(plan.stdout)["hosts"]["localhost"]["changes"]
        reasons = {c["resource"]: c["reason"] for c in planned}
        assert f"image {registry_image} -> {retagged}" in reasons[f"container:{d.name}"]
        assert f"file:{d.config}/config.yml" in reasons

        again = d.run("rollback")
        assert again.exit_code == 1 and "nothing to roll back" in again.output  # one generation, used once
    finally:
        docker_client.images.remove(retagged)


def test_rollback_removes_a_unit_the_last_up_created(deployment: Deployment) -> None:
    d = deployment
    d.up_json()
    d.registry["relay"] = {"targets": [{"name": "ci", "type": "generic", "url": "http://127.0.0.1:9/h"}]}
    d.write()
    d.up_json()
    assert d.client.containers.get(f"{d.name}-relay").status == "running"
    back = d.run("rollback", "--json")
    assert back.exit_code == 0, back.output
    done = changes(json.loads(back.stdout))
    assert (f"container:{d.name}-relay", "remove") in done
    assert (f"container:{d.name}", "recreate") in done  # its config no longer names the relay
    assert not any(c.name == f"{d.name}-relay" for c in d.client.containers.list(all=True))


def test_rollback_touches_only_what_the_last_up_changed(deployment: Deployment) -> None:
    """An up that rewrote htpasswd alone, or recreated the registry alone, rolls back to just that:
    the host's other units are not strays to remove."""
    d = deployment
    d.registry["relay"] = {"targets": [{"name": "ci", "type": "generic", "url": "http://127.0.0.1:9/h"}]}
    d.write()
    d.up_json()
    relay_id = d.client.containers.get(f"{d.name}-relay").id
    d.registry["auth"]["users"].append({"name": "bob"})  # htpasswd only
    d.write()
    assert changes(d.up_json()) == [(f"file:{d.config}/auth/htpasswd", "update")]
    registry_id = d.container()["Id"]
    back = d.run("rollback", "--json")
    assert back.exit_code == 0, back.output
    assert changes(json.loads(back.stdout)) == [(f"file:{d.config}/auth/htpasswd", "update")]
    assert d.container()["Id"] == registry_id
    assert d.client.containers.get(f"{d.name}-relay").id == relay_id
    assert b"bob:" not in (d.config / "auth" / "htpasswd").read_bytes()
