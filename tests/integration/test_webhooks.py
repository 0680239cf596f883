"""Webhooks end to end: a real registry (2.8.2) notifying real receivers on the Docker bridge gateway.

The recipes are read from docs/webhooks.md (the blocks marked ``<!-- recipe: NAME -->``) and checked
against stand-ins that accept only what the real service accepts: Jenkins' Generic Webhook Trigger
(token lookup, JSONPath variables, regexp filter) and GitHub's repository_dispatch endpoint.
Every receiver, relay process and registry is stopped and removed by the test that made it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from standins import Got, StandIn, wait_until
from test_up import TOKEN, Deployment, push_small_image

from regdeploy.cli import cli
from regdeploy.verify.registry_api import RegistryClient

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
EVENTS_V1 = "application/vnd.docker.distribution.events.v1+json"
BLOB = "application/octet-stream"
JENKINS_TOKEN = "gwt-9c2f-jenkins-trigger-token"
GITHUB_TOKEN = "ghp_standin0123456789abcdefABCDEF0123"
RELAY_TOKEN = "relay-5e8a-inbound-token"
SECRETS = (TOKEN, JENKINS_TOKEN, GITHUB_TOKEN, RELAY_TOKEN)





@pytest.fixture
def deployment(
    tmp_path: Path, unique_name: str, free_port: Callable[[], int], registry_image: str, docker_client: Any
) -> Iterator[Deployment]:
    d = Deployment(tmp_path, unique_name, free_port(), registry_image, docker_client)
    d.env.update(JENKINS_WEBHOOK_TOKEN=JENKINS_TOKEN, RELAY_TOKEN=RELAY_TOKEN)
    yield d
    d.cleanup()


class Outputs(list[str]):
    """Everything regdeploy printed in a test: no secret may appear in any of it."""

    def run(self, deployment: Deployment, *args: str) -> Any:
        result = deployment.run(*args)
        self.append(result.output)
        return result

    def assert_no_secret(self) -> None:
        text = "\n".join(self)
        assert text, "nothing captured"
        for secret in SECRETS:
            assert secret not in text


def manifest_pushes(requests: list[Got]) -> list[tuple[str, str, str]]:
    return [
        (e["target"]["repository"], e["target"].get("tag", ""), e["target"]["digest"])
        for g in requests
        if g.status == 200
        for e in g.events
        if e["action"] == "push" and e["target"]["mediaType"] != BLOB
    ]


def deploy(deployment: Deployment, outputs: Outputs, endpoints: list[dict[str, Any]]) -> RegistryClient:
    deployment.registry["notifications"] = {"endpoints": endpoints}
    deployment.write()
    result = outputs.run(deployment, "up", "--json")
    assert result.exit_code == 0, result.output
    return deployment.api()


def tag_again(api: RegistryClient, repo: str, tag: str, new_tag: str) -> str:
    got = api.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_V2})
    put = api.request(
        "PUT", f"/v2/{repo}/manifests/{new_tag}", body=got.body, headers={"Content-Type": MANIFEST_V2}
    )
    assert put.status == 201, put
    return put.headers["docker-content-digest"]


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


# --- the registry's own notifications --------------------------------------------------------------


def test_push_sends_one_event_per_manifest_with_tag_and_digest_like_the_sample(
    deployment: Deployment, stand_ins: Callable[..., StandIn], gateway: str
) -> None:
    receiver = stand_ins(gateway)
    outputs = Outputs()
    api = deploy(
        deployment,
        outputs,
        [{"name": "all", "url": receiver.base + "/all", "headers": {"Authorization": {"env": "CI_TOKEN"}}}],
    )
    app = push_small_image(api, "team/app")
    tools = push_small_image(api, "team/tools")
    marker = push_small_image(api, "zz/marker")
    # One queue per endpoint, delivered in order: once the marker is in, everything before it is.
    wait_until(lambda: ("zz/marker", "v1", marker) in manifest_pushes(receiver.at("/all")), "the marker push")
    got = receiver.at("/all")
    assert manifest_pushes(got) == [
        ("team/app", "v1", app),
        ("team/tools", "v1", tools),
        ("zz/marker", "v1", marker),
    ]
    blobs = [e for g in got for e in g.events if e["target"]["mediaType"] == BLOB]
    assert blobs and all("tag" not in e["target"] and e["action"] == "push" for e in blobs)
    assert all(len(g.events) == 1 for g in got)
    real = got[-1]
    assert real.headers["content-type"] == EVENTS_V1
    assert real.headers["authorization"] == TOKEN
    assert real.headers["user-agent"] == "Go-http-client/1.1"

    # `webhooks test` sends what the registry sent: same fields in the same order, same headers.
    result = outputs.run(deployment, "webhooks", "test", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hosts"]["localhost"]["endpoints"][0]["status"] == 200
    sample = receiver.at("/all")[-1]
    assert shape(sample.json()) == shape(real.json())
    assert set(sample.headers) == set(real.headers)
    for name in ("content-type", "authorization", "user-agent", "accept-encoding"):
        assert sample.headers[name] == real.headers[name]
    assert sample.body.startswith(b'{\n   "events": [\n      {\n         "id": ')  # Go's MarshalIndent
    outputs.assert_no_secret()


def test_ignore_pull_suppresses_pull_events(
    deployment: Deployment, stand_ins: Callable[..., StandIn], gateway: str
) -> None:
    receiver = stand_ins(gateway)
    outputs = Outputs()
    api = deploy(
        deployment,
        outputs,
        [
            {"name": "all", "url": receiver.base + "/all"},
            {"name": "nopull", "url": receiver.base + "/nopull", "ignore": {"actions": ["pull"]}},
        ],
    )
    digest = push_small_image(api, "team/app")
    for method in ("GET", "HEAD"):  # docker pull starts with HEAD: the registry reports both
        pulled = api.request(method, "/v2/team/app/manifests/v1", headers={"Accept": MANIFEST_V2})
        assert pulled.status == 200
    marker = push_small_image(api, "zz/marker")
    for path in ("/all", "/nopull"):
        wait_until(
            lambda p=path: ("zz/marker", "v1", marker) in manifest_pushes(receiver.at(p)), f"marker at {path}"
        )

    def pulls(path: str) -> list[tuple[str, str]]:
        return [
            (e["request"]["method"], e["target"]["digest"])
            for g in receiver.at(path)
            for e in g.events
            if e["action"] == "pull"
        ]

    assert pulls("/all") == [("GET", digest), ("HEAD", digest)]
    assert pulls("/nopull") == []
    assert manifest_pushes(receiver.at("/nopull")) == manifest_pushes(receiver.at("/all"))


def test_receiver_failing_first_gets_the_event_after_retries(
    deployment: Deployment, stand_ins: Callable[..., StandIn], gateway: str
) -> None:
    statuses = iter([500, 500])
    receiver = stand_ins(gateway, lambda g: (next(statuses, 200), b""))
    outputs = Outputs()
    api = deploy(
        deployment,
        outputs,
        [
            {
                "name": "flaky",
                "url": receiver.base + "/flaky",
                "threshold": 1,
                "backoff": "100ms",
                "ignore": {"mediatypes": [BLOB]},
            }
        ],
    )
    digest = push_small_image(api, "team/app")
    wait_until(lambda: manifest_pushes(receiver.at("/flaky")) == [("team/app", "v1", digest)], "the push")
    first, second, third, *rest = receiver.at("/flaky")
    assert [first.status, second.status, third.status] == [500, 500, 200]
    assert first.events[0]["id"] == second.events[0]["id"] == third.events[0]["id"]  # the same event, retried
    assert rest == []


# --- recipes from docs/webhooks.md ------------------------------------------------------------------


def recipe(name: str) -> str:
    match = re.search(rf"<!-- recipe: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", DOCS.read_text(), re.S)
    assert match, f"docs/webhooks.md has no recipe block {name!r}"
    return match.group(1)


def json_path(doc: Any, expression: str) -> str:
    """The subset of Jayway JSONPath the recipe uses ($.a.b[0].c); a missing path reads as ''."""
    value = doc
    for name, index in re.findall(r"\.([A-Za-z_]\w*)|\[(\d+)\]", expression.removeprefix("$")):
        try:
            value = value[int(index)] if index else value[name]
        except (KeyError, IndexError, TypeError):
            return ""
    return value if isinstance(value, str) else json.dumps(value)


class GenericWebhookTrigger:
    """Jenkins' Generic Webhook Trigger plugin, for one job configured by the recipe's Jenkinsfile."""

    NOT_FOUND = b"Did not find any jobs with GenericTrigger configured!\nA token was supplied.\n"

    def __init__(self, pipeline: str, token: str) -> None:
        self.token = token
        self.variables = dict(re.findall(r"\[key: '(\w+)', value: '([^']+)'\]", pipeline))
        self.filter_text = self._setting(pipeline, "regexpFilterText")
        self.filter_expression = self._setting(pipeline, "regexpFilterExpression")
        self.builds: list[dict[str, str]] = []

    @staticmethod
    def _setting(pipeline: str, name: str) -> str:
        match = re.search(rf"{name}: '([^']*)'", pipeline)
        assert match, f"the Jenkinsfile recipe has no {name}"
        return match.group(1)

    def given_token(self, got: Got) -> str | None:  # the plugin's own order of lookup
        if "token" in got.query:
            return got.query["token"][0]
        if "token" in got.headers:
            return got.headers["token"]
        auth = got.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:]
        return got.headers.get("x-gitlab-token")

    def __call__(self, got: Got) -> tuple[int, bytes]:
        if got.path != "/generic-webhook-trigger/invoke":
            return 404, b"Not Found"
        if self.given_token(got) != self.token:
            return 404, self.NOT_FOUND
        doc = json.loads(got.body)  # the plugin reads any content type but form-urlencoded as JSON
        resolved = {key: json_path(doc, path) for key, path in self.variables.items()}
        text = self.filter_text
        for key in sorted(resolved, key=lambda k: (-len(k), k)):
            text = text.replace("$" + key, resolved[key]).replace("${" + key + "}", resolved[key])
        triggered = re.search(self.filter_expression, text) is not None
        if triggered:
            self.builds.append(resolved)
        answer = {
            "jobs": {"deploy": {"triggered": triggered, "resolvedVariables": resolved}},
            "message": "Triggered jobs.",
        }
        return 200, json.dumps(answer).encode()


def test_jenkins_recipe(deployment: Deployment, stand_ins: Callable[..., StandIn], gateway: str) -> None:
    jenkins = GenericWebhookTrigger(recipe("jenkins-pipeline"), JENKINS_TOKEN)
    server = stand_ins(gateway, jenkins)
    endpoints = []
    for block in ("jenkins-inventory", "jenkins-inventory-url-token"):
        text = recipe(block).replace("https://jenkins.example.com", server.base)
        text = text.replace("JENKINS_WEBHOOK_TOKEN_VALUE", JENKINS_TOKEN)
        endpoints += yaml.safe_load(text)["registry"]["notifications"]["endpoints"]
    assert {"jenkins", "jenkins-url"} == {e["name"] for e in endpoints}
    deployment.registry["notifications"] = {"endpoints": endpoints}
    deployment.write()
    outputs = Outputs()

    # Before the first push: both endpoints accept the sample (no build: the filter wants team/app).
    tested = outputs.run(deployment, "webhooks", "test", "--json")
    assert tested.exit_code == 0, tested.output
    assert [e["status"] for e in json.loads(tested.stdout)["hosts"]["localhost"]["endpoints"]] == [200, 200]
    assert jenkins.builds == []
    # A wrong token is caught now, not after a push: Jenkins answers 404, which the registry
    # would retry forever.
    deployment.env["JENKINS_WEBHOOK_TOKEN"] = "not-the-token"
    wrong = outputs.run(deployment, "webhooks", "test", "-e", "jenkins")
    deployment.env["JENKINS_WEBHOOK_TOKEN"] = JENKINS_TOKEN
    assert wrong.exit_code == 1
    assert "REFUSED jenkins" in wrong.output and "404 Not Found: Did not find any jobs" in wrong.output

    api = deploy(deployment, outputs, endpoints)
    tested_requests = len(server.requests)
    push_small_image(api, "other/app")
    digest = push_small_image(api, "team/app")
    wait_until(lambda: len(jenkins.builds) == 2, "a build from each endpoint")
    time.sleep(0.3)  # a stray duplicate or blob event would arrive within this
    from_registry = server.requests[tested_requests:]
    assert len(from_registry) == 4  # two manifest pushes per endpoint; blobs and pulls never sent
    assert all(g.events[0]["target"]["mediaType"] == MANIFEST_V2 for g in from_registry)
    for build in jenkins.builds:
        assert {
            k: build[k] for k in ("REGISTRY_ACTION", "IMAGE_REPOSITORY", "IMAGE_TAG", "IMAGE_DIGEST")
        } == {
            "REGISTRY_ACTION": "push",
            "IMAGE_REPOSITORY": "team/app",
            "IMAGE_TAG": "v1",
            "IMAGE_DIGEST": digest,
        }
        assert build["REGISTRY_HOST"].endswith(f":{deployment.port}")
    outputs.assert_no_secret()


class GitHubDispatches:
    """GitHub's POST /repos/OWNER/REPO/dispatches, with the checks the real API makes."""

    def __init__(self, repository: str, token: str) -> None:
        self.path = f"/repos/{repository}/dispatches"
        self.token = token
        self.down = False
        self.accepted: list[dict[str, Any]] = []

    def __call__(self, got: Got) -> tuple[int, bytes]:
        if self.down:
            return 503, b'{"message": "Service Unavailable"}'
        if got.path != self.path:
            return 404, b'{"message": "Not Found"}'
        if got.headers.get("authorization") != f"Bearer {self.token}":
            return 401, b'{"message": "Bad credentials"}'
        if not got.headers.get("user-agent"):
            return (
                403,
                b'{"message": "Request forbidden by administrative rules. '
                b'Please make sure your request has a User-Agent header"}',
            )
        if (
            got.headers.get("accept") != "application/vnd.github+json"
            or got.headers.get("content-type") != "application/json"
        ):
            return 415, b'{"message": "Unsupported Media Type"}'
        body = got.json()
        payload = body.get("client_payload")
        event_type = body.get("event_type")
        if not isinstance(event_type, str) or not 1 <= len(event_type) <= 100:
            return 422, b'{"message": "Invalid request. event_type"}'
        if not isinstance(payload, dict) or len(payload) > 10:
            return 422, b'{"message": "Invalid request. client_payload: no more than 10 properties"}'
        self.accepted.append(body)
        return 204, b""


class RelayProcess:
    """`regdeploy webhooks relay` as its own process, with stdout and stderr collected line by line."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "regdeploy", "webhooks", "relay", "-c", str(config)],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.readers = [
            threading.Thread(target=self._read, args=(s,)) for s in (self.proc.stdout, self.proc.stderr)
        ]
        for reader in self.readers:
            reader.start()
        self.wait_for("listening on")

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, fragment: str, timeout: float = 20) -> None:
        wait_until(
            lambda: any(fragment in line for line in self.lines) or self.proc.poll() is not None,
            f"relay log {fragment!r}",
            timeout,
        )
        assert any(fragment in line for line in self.lines), "".join(self.lines)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        for reader in self.readers:
            reader.join(5)
        return code


def test_github_actions_recipe_through_the_relay(
    deployment: Deployment, stand_ins: Callable[..., StandIn], gateway: str, tmp_path: Path
) -> None:
    config = yaml.safe_load(recipe("github-relay-config"))
    target = config["targets"][0]
    github = GitHubDispatches(target["repository"], GITHUB_TOKEN)
    api_server = stand_ins("127.0.0.1", github)
    probe = stand_ins(gateway)  # only to find a free port on the gateway address
    relay_port = probe.server.server_address[1]
    probe.close()
    config["listen"].update(bind=gateway, port=relay_port)
    config["queue"]["dir"] = str(tmp_path / "relay-queue")
    target["api_url"] = api_server.base
    config_file = tmp_path / "relay.yml"
    config_file.write_text(yaml.safe_dump(config))
    env = {"GITHUB_TOKEN": GITHUB_TOKEN, "RELAY_TOKEN": RELAY_TOKEN}
    endpoints = yaml.safe_load(
        recipe("github-relay-inventory").replace("172.17.0.1:5080", f"{gateway}:{relay_port}")
    )
    endpoints = endpoints["registry"]["notifications"]["endpoints"]
    outputs = Outputs()

    check = CliRunner().invoke(cli, ["webhooks", "relay", "-c", str(config_file), "--check"], env=env)
    outputs.append(check.output)
    assert check.exit_code == 0, check.output
    relays = [RelayProcess(config_file, env)]
    try:
        api = deploy(deployment, outputs, endpoints)
        tested = outputs.run(deployment, "webhooks", "test", "-e", "relay")
        assert tested.exit_code == 0, tested.output  # the relay accepts the sample (and skips it: no match)

        push_small_image(api, "other/app")  # no match: repository
        push_small_image(api, "team/app")  # match: team/app:v1
        tag_again(api, "team/app", "v1", "dev")  # no match: tag
        digest = tag_again(api, "team/app", "v1", "v1.0")  # match
        wait_until(lambda: len(github.accepted) >= 2, "two repository_dispatch requests")
        relays[0].wait_for("delivered push team/app:v1.0")
        assert any("skipped push other/app:v1: no target matches" in line for line in relays[0].lines)
        assert any("skipped push team/app:dev: no target matches" in line for line in relays[0].lines)
        assert [
            (d["event_type"], d["client_payload"]["repository"], d["client_payload"]["tag"])
            for d in github.accepted
        ] == [("registry-push", "team/app", "v1"), ("registry-push", "team/app", "v1.0")]
        payload = github.accepted[-1]["client_payload"]
        assert payload["digest"] == digest and payload["actor"] == "alice"
        assert payload["registry"] == f"127.0.0.1:{deployment.port}"

        # The workflow in the docs listens for this event_type and reads fields the payload has.
        workflow = yaml.safe_load(recipe("github-workflow"))
        on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as true
        assert target["event_type"] in on["repository_dispatch"]["types"]
        used = set(re.findall(r"github\.event\.client_payload\.(\w+)", recipe("github-workflow")))
        assert used and used <= set(payload)

        # GitHub is down: the event waits on disk, across a restart of the relay.
        github.down = True
        tag_again(api, "team/app", "v1", "v2")
        relays[0].wait_for("attempt 1 for push team/app:v2 failed (503")
        assert relays[0].stop() == 0
        relays[0].wait_for("stopped; 1 pending delivery kept in")
        pending = list((tmp_path / "relay-queue" / target["name"]).glob("*.json"))
        assert len(pending) == 1
        github.down = False
        relays.append(RelayProcess(config_file, env))
        relays[1].wait_for(f"pending {target['name']}: 1")
        relays[1].wait_for("delivered push team/app:v2")
        assert [d["client_payload"]["tag"] for d in github.accepted] == ["v1", "v1.0", "v2"]
        assert list((tmp_path / "relay-queue" / target["name"]).glob("*.json")) == []
    finally:
        for relay in relays:
            relay.stop()
            outputs.append("".join(relay.lines))
    assert len(api_server.requests) == len(github.accepted) + sum(
        1 for g in api_server.requests if g.status == 503
    )
    queue_files = "".join(p.read_text() for p in (tmp_path / "relay-queue").rglob("*") if p.is_file())
    assert not any(secret in queue_files for secret in SECRETS)
    outputs.assert_no_secret()


def test_github_actions_recipe_through_the_deployed_relay(
    deployment: Deployment, stand_ins: Callable[..., StandIn], gateway: str
) -> None:
    """The same recipe with `registry.relay`: `up` runs the relay unit, wires the registry to it, and
    the pushes that match reach (a stand-in of) GitHub's repository_dispatch."""
    relay = yaml.safe_load(recipe("relay-unit"))["registry"]["relay"]
    target = relay["targets"][0]
    github = GitHubDispatches(target["repository"], GITHUB_TOKEN)
    api_server = stand_ins(gateway, github)  # where the relay's container reaches this machine
    target["api_url"] = api_server.base
    deployment.registry["relay"] = relay
    deployment.env["GITHUB_TOKEN"] = GITHUB_TOKEN
    deployment.write()
    result = deployment.run("up", "--json")
    assert result.exit_code == 0, result.output
    api = deployment.api()
    push_small_image(api, "other/app")  # no match: repository
    push_small_image(api, "team/app")  # match: team/app:v1
    digest = tag_again(api, "team/app", "v1", "v2.0")
    tag_again(api, "team/app", "v1", "dev")  # no match: tag
    wait_until(lambda: len(github.accepted) == 2, "two repository_dispatch requests")
    assert [(d["event_type"], d["client_payload"]["tag"]) for d in github.accepted] == [
        ("registry-push", "v1"), ("registry-push", "v2.0"),
    ]  # fmt: skip
    assert github.accepted[-1]["client_payload"]["digest"] == digest
    logs = subprocess.run(["docker", "logs", deployment.name + "-relay"], capture_output=True, text=True)
    assert "skipped push other/app:v1: no target matches" in logs.stderr + logs.stdout
    assert GITHUB_TOKEN not in logs.stderr + logs.stdout
