"""The relay: configuration, on-disk queue, outgoing requests, retry policy, and the service."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from regdeploy.cli import cli
from regdeploy.errors import InputError, SecretError
from regdeploy.materials.secrets import Masker, SecretRef, SecretResolver
from regdeploy.materials.state import StateStore
from regdeploy.webhooks.client import post
from regdeploy.webhooks.envelope import EventSummary, media_type, sample_push
from regdeploy.webhooks.receiver import Receiver, Reply, Request
from regdeploy.webhooks.relay.config import RelayConfig, TargetConfig, load_config, parse_config
from regdeploy.webhooks.relay.queue import DiskQueue, Item, QueueFull
from regdeploy.webhooks.relay.service import Attempt, Relay, backoff, classify
from regdeploy.webhooks.relay.targets import (
    generic_request,
    github_request,
    matches,
    payload,
    signature,
    wanted,
)


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Every receiver, worker and timer a test starts is gone when it ends."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(threading.enumerate()) - before == set()


GH_TOKEN = "ghp_relaytesttoken0123456789abcdef"
INBOUND = "inbound-relay-token-4567"
HMAC_KEY = "hmac-shared-secret-89ab"


def github_target(**kw: Any) -> dict[str, Any]:
    return {"name": "actions", "type": "github", "repository": "acme/deploy", "token": {"env": "GH"}, **kw}


def config_doc(tmp: Path, *targets: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"queue": {"dir": str(tmp / "q")}, "targets": list(targets) or [github_target()], **top}


# --- configuration ---------------------------------------------------------------------------------


def test_full_configuration(tmp_path: Path) -> None:
    path = tmp_path / "relay.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "listen": {"bind": "0.0.0.0", "port": 6000, "token": {"env": "IN"}, "token_header": "X-Auth"},
                "queue": {"dir": "spool", "max_events": 5},
                "retry": {"initial": "250ms", "max": "1m"},
                "timeout": "3s",
                "targets": [
                    github_target(
                        api_url="https://ghe.example/api/v3/",
                        event_type="push-it",
                        repositories=["team/*"],
                        tags=["v*", "latest"],
                    ),
                    {
                        "name": "hook",
                        "type": "generic",
                        "url": "https://ci.example/h",
                        "secret": {"file": "~/k"},
                    },
                ],
            }
        )
    )
    config = load_config(path)
    assert config.queue_dir == tmp_path / "spool"  # relative to the file
    assert (config.bind, config.port, config.token, config.token_header) == (
        "0.0.0.0",
        6000,
        SecretRef("env", "IN"),
        "X-Auth",
    )
    assert (config.max_events, config.retry_initial, config.retry_max, config.timeout) == (5, 0.25, 60, 3)
    gh, hook = config.targets
    assert gh.endpoint == "https://ghe.example/api/v3/repos/acme/deploy/dispatches"
    assert (gh.event_type, gh.repositories, gh.tags) == ("push-it", ("team/*",), ("v*", "latest"))
    assert hook.endpoint == "https://ci.example/h" and hook.secret == SecretRef(
        "file", os.path.expanduser("~/k")
    )
    assert hook.repositories == ("*",) and hook.signature_header == "X-Regdeploy-Signature-256"


def test_defaults(tmp_path: Path) -> None:
    config = parse_config(config_doc(tmp_path), "relay.yml")
    assert (config.bind, config.port, config.max_events, config.retry_initial, config.retry_max) == (
        "127.0.0.1",
        5080,
        1000,
        1.0,
        300.0,
    )
    assert config.targets[0].endpoint == "https://api.github.com/repos/acme/deploy/dispatches"
    assert config.targets[0].event_type == "registry-push"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"listn": {}}, "relay.yml: listn: unknown key (did you mean 'listen'?)"),
        ({"queue": {}}, "relay.yml: queue.dir: is required"),
        ({"targets": []}, "relay.yml: targets: needs at least one target"),
        ({"targets": [github_target(token=None)]}, "relay.yml: targets[0].token: is required"),
        (
            {"targets": [github_target(token="ghp_inline")]},
            "targets[0].token: write secrets as {env: VARIABLE}",
        ),
        (
            {"targets": [github_target(repository="acme")]},
            "targets[0].repository: invalid value 'acme': expected",
        ),
        ({"targets": [github_target(event_type="x" * 101)]}, "GitHub accepts at most 100 characters"),
        ({"targets": [github_target(url="http://x")]}, "targets[0].url: unknown key"),
        ({"targets": [github_target(tags=[])]}, "targets[0].tags: must be a non-empty list"),
        ({"targets": [github_target(type="gitlab")]}, "targets[0].type: unknown value 'gitlab'"),
        ({"targets": [github_target(), github_target()]}, "targets[1].name: duplicate target 'actions'"),
        ({"targets": [{"name": "h", "type": "generic", "url": "ftp://x"}]}, "targets[0].url: invalid value"),
        ({"retry": {"initial": "10s", "max": "1s"}}, "retry.max: must be at least retry.initial (10s)"),
        ({"retry": {"initial": "soon"}}, "retry.initial: invalid duration 'soon'"),
        ({"listen": {"port": 70000}}, "listen.port: 70000 is out of range 0..65535"),
    ],
)
def test_configuration_errors_name_the_file_and_key(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    doc = config_doc(tmp_path)
    doc.update(change)
    with pytest.raises(InputError, match=None) as info:
        parse_config(doc, "relay.yml")
    assert message in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="relay configuration file not found"):
        load_config(tmp_path / "absent.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("targets: [\n")
    with pytest.raises(InputError, match=rf"{bad}:\d+: invalid YAML"):
        load_config(bad)


# --- queue -----------------------------------------------------------------------------------------


def test_queue_is_fifo_durable_and_deduplicated(tmp_path: Path) -> None:
    q = DiskQueue(tmp_path / "q", 3)
    assert q.put("a", {"n": 1}) and q.put("b", {"n": 2})
    assert not q.put("a", {"n": 1})  # the registry re-sent an event it had no answer for
    assert len(q) == 2
    assert (tmp_path / "q").stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in (tmp_path / "q").glob("*.json"))

    reopened = DiskQueue(tmp_path / "q", 3)  # a restart
    first = reopened.peek(0.01)
    assert first is not None and (first.key, first.payload) == ("a", {"n": 1})
    reopened.done(first)
    assert not reopened.put("a", {"n": 1})  # delivered lately: still a duplicate
    second = reopened.peek(0.01)
    assert second is not None and second.key == "b"
    assert len(DiskQueue(tmp_path / "q", 3)) == 1


def test_queue_bound_and_failed_items(tmp_path: Path) -> None:
    q = DiskQueue(tmp_path / "q", 2)
    q.put("a", {})
    q.put("b", {})
    with pytest.raises(QueueFull):
        q.put("c", {})
    item = q.peek(0.01)
    assert item is not None
    where = q.fail(item, "422 Unprocessable Entity")
    assert (
        where.parent.name == "failed"
        and json.loads(where.read_text())["failed"] == "422 Unprocessable Entity"
    )
    assert len(q) == 1 and q.put("c", {})
    for key in ("d", "e"):  # failed/ keeps at most max_items
        q.fail(q.peek(0.01) or pytest.fail("empty"), "x")
        q.put(key, {})
    assert len(q.failed()) == 2


def test_queue_survives_garbage(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    directory.mkdir()
    (directory / ".00001-x.json.tmp").write_text("half written")
    (directory / "00002-broken.json").write_text("{not json")
    (directory / "00003-good.json").write_text(json.dumps({"key": "good", "payload": {"ok": 1}}))
    q = DiskQueue(directory, 10)
    assert not (directory / ".00001-x.json.tmp").exists()
    item = q.peek(0.01)
    assert item is not None and item.key == "good"
    assert [p.name for p in q.failed()] == ["00002-broken.json"]


def test_queue_peek_waits_for_a_put(tmp_path: Path) -> None:
    q = DiskQueue(tmp_path / "q", 10)
    threading.Timer(0.05, lambda: q.put("late", {})).start()
    item = q.peek(2)
    assert item is not None and item.key == "late"
    assert q.peek(0.01) is not None  # still there until done()


# --- what is sent ----------------------------------------------------------------------------------


def summary(repository: str = "team/app", tag: str = "v1") -> EventSummary:
    return EventSummary.of(
        sample_push(version=2, registry="reg:5000", repository=repository, tag=tag, actor="ci").event
    )


def test_github_request_is_what_the_api_wants() -> None:
    target = parse_config(config_doc(Path("/q")), "x").targets[0]
    s = summary()
    out = github_request(target, payload(s), GH_TOKEN)
    assert out.url == "https://api.github.com/repos/acme/deploy/dispatches"
    headers = dict(out.headers)
    assert headers["Authorization"] == f"Bearer {GH_TOKEN}"
    assert headers["Accept"] == "application/vnd.github+json"
    assert headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert headers["User-Agent"].startswith("regdeploy-relay/")
    body = json.loads(out.body)
    assert body["event_type"] == "registry-push"
    assert len(body["client_payload"]) <= 10  # GitHub's limit
    assert {k: body["client_payload"][k] for k in ("repository", "tag", "digest")} == {
        "repository": "team/app",
        "tag": "v1",
        "digest": s.digest,
    }


def test_generic_request_signature_verifies() -> None:
    target = TargetConfig(name="h", type="generic", url="https://ci.example/h")
    out = generic_request(target, payload(summary()), HMAC_KEY)
    headers = dict(out.headers)
    expected = "sha256=" + hmac.new(HMAC_KEY.encode(), out.body, hashlib.sha256).hexdigest()
    assert headers["X-Regdeploy-Signature-256"] == expected == signature(HMAC_KEY, out.body)
    assert json.loads(out.body)["action"] == "push" and headers["X-Regdeploy-Event"] == "push"
    unsigned = generic_request(target, payload(summary()), None)
    assert "X-Regdeploy-Signature-256" not in dict(unsigned.headers)


def test_which_events_are_relayed() -> None:
    target = TargetConfig(name="t", type="github", repositories=("team/*",), tags=("v*",))
    assert wanted(summary()) and matches(target, summary())
    assert not matches(target, summary(repository="other/app"))
    assert not matches(target, summary(tag="latest"))
    assert not matches(target, summary(repository="Team/app"))  # case-sensitive, like the registry
    blob = EventSummary.of(
        {
            "action": "push",
            "target": {"mediaType": "application/octet-stream", "repository": "team/app", "tag": "v1"},
        }
    )
    untagged = EventSummary.of({"action": "push", "target": {"mediaType": "x", "repository": "team/app"}})
    pull = EventSummary.of({**sample_push(version=2, registry="r:1").event, "action": "pull"})
    assert not any(wanted(s) for s in (blob, untagged, pull))


@pytest.mark.parametrize(
    ("status", "headers", "outcome", "retry_after"),
    [
        (204, {}, "delivered", None),
        (200, {}, "delivered", None),
        (500, {}, "retry", None),
        (503, {"retry-after": "7"}, "retry", 7.0),
        (429, {"retry-after": "Thu, 01 Jan 2099 00:00:00 GMT"}, "retry", None),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1060"}, "retry", 60.0),
        (403, {}, "refused", None),
        (401, {}, "refused", None),
        (404, {}, "refused", None),
        (422, {}, "refused", None),
        (301, {"location": "https://api.github.com/repositories/1"}, "refused", None),
    ],
)
def test_classify(status: int, headers: dict[str, str], outcome: str, retry_after: float | None) -> None:
    result = classify(status, "Reason", headers, "  some\nanswer ", now=1000.0)
    assert result.outcome == outcome
    if retry_after is not None:
        assert result.retry_after == retry_after
    if status == 429:
        assert result.retry_after is not None and result.retry_after > 1e9
    if outcome == "refused" and status != 301:
        assert result.detail == f"{status} Reason: some answer"
    if status == 301:
        assert "redirected to https://api.github.com/repositories/1" in result.detail


def test_backoff_doubles_up_to_the_maximum_and_honours_retry_after() -> None:
    assert [backoff(n, 1, 10, None) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]
    assert backoff(1, 1, 10, 30) == 30
    assert backoff(1, 1, 10, 1e9) == 3600


# --- the service -----------------------------------------------------------------------------------


class FakeGitHub:
    """Answers dispatches with scripted statuses (204 once the script runs out), recording them."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: list[int] = []
        self.receiver = Receiver("127.0.0.1", 0, self._handle).start()
        self.got = threading.Condition()

    def _handle(self, request: Request) -> Reply:
        with self.got:
            self.requests.append(request)
            self.got.notify_all()
            status = self.script.pop(0) if self.script else 204
        return Reply(status, b"" if status == 204 else b'{"message": "nope"}')

    @property
    def url(self) -> str:
        return self.receiver.url.rstrip("/")

    def wait_for(self, n: int, timeout: float = 5) -> list[Request]:
        with self.got:
            assert self.got.wait_for(lambda: len(self.requests) >= n, timeout), self.requests
            return list(self.requests)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    yield fake
    fake.receiver.close()


class Harness:
    def __init__(self, tmp: Path, github: FakeGitHub, **target: Any) -> None:
        self.lines: list[str] = []
        doc = config_doc(
            tmp,
            github_target(api_url=github.url, repositories=["team/*"], tags=["v*"], **target),
            listen={"port": 0, "token": {"env": "IN"}},
            retry={"initial": "50ms", "max": "200ms"},
            timeout="2s",
        )
        self.config: RelayConfig = parse_config(doc, "relay.yml")
        self.relay: Relay | None = None

    def start(self, relay_class: type[Relay] = Relay) -> Relay:
        masker = Masker()
        resolver = SecretResolver(
            StateStore(self.config.queue_dir), masker, environ={"GH": GH_TOKEN, "IN": INBOUND}
        )
        self.relay = relay_class(self.config, resolver, masker, self.lines.append).start()
        return self.relay

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None

    def push(self, repository: str, tag: str, token: str = INBOUND) -> int:
        assert self.relay is not None
        env = sample_push(version=2, registry="reg:5000", repository=repository, tag=tag, actor="ci")
        headers = [("Content-Type", media_type(2)), ("X-Relay-Token", token)]
        return post(self.relay.url, env.body, headers, 2).status

    def wait_log(self, fragment: str, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not any(fragment in line for line in self.lines):
            assert time.monotonic() < deadline, self.lines
            time.sleep(0.01)


@pytest.fixture
def harness(tmp_path: Path, github: FakeGitHub) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**target: Any) -> Harness:
        h = Harness(tmp_path, github, **target)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()


def test_matching_push_is_dispatched_and_others_are_not(
    harness: Callable[..., Harness], github: FakeGitHub
) -> None:
    h = harness()
    h.start()
    assert h.push("other/app", "v1") == 200
    assert h.push("team/app", "latest") == 200
    assert h.push("team/app", "v1") == 200
    (request,) = github.wait_for(1)
    assert request.path == "/repos/acme/deploy/dispatches"
    assert request.headers["authorization"] == f"Bearer {GH_TOKEN}"
    body = json.loads(request.body)
    assert body["client_payload"]["repository"] == "team/app" and body["client_payload"]["tag"] == "v1"
    h.wait_log("delivered push team/app:v1")
    assert any("skipped push other/app:v1: no target matches" in line for line in h.lines)
    assert any("skipped push team/app:latest" in line for line in h.lines)
    time.sleep(0.1)
    assert len(github.requests) == 1
    assert not any(GH_TOKEN in line or INBOUND in line for line in h.lines)


def test_inbound_token_and_bad_bodies(harness: Callable[..., Harness], github: FakeGitHub) -> None:
    h = harness()
    relay = h.start()
    assert h.push("team/app", "v1", token="wrong") == 401
    assert post(relay.url, b"{", [("X-Relay-Token", INBOUND)], 2).status == 400
    assert github.requests == []
    assert not any("wrong" in line and INBOUND in line for line in h.lines)


def test_retries_with_backoff_until_delivered(harness: Callable[..., Harness], github: FakeGitHub) -> None:
    github.script = [503, 500]
    h = harness()
    h.start()
    h.push("team/app", "v1")
    requests = github.wait_for(3)
    assert len({r.body for r in requests}) == 1  # the same delivery each time
    h.wait_log("delivered push team/app:v1")
    assert any("attempt 1 for push team/app:v1 failed (503 Service Unavailable" in ln for ln in h.lines)
    assert any("attempt 2 for push team/app:v1 failed (500 Internal Server Error" in ln for ln in h.lines)


def test_refused_delivery_moves_to_failed_and_the_queue_moves_on(
    harness: Callable[..., Harness], github: FakeGitHub
) -> None:
    github.script = [422]
    h = harness()
    relay = h.start()
    h.push("team/app", "v1")
    h.push("team/app", "v2")
    github.wait_for(2)
    h.wait_log("delivered push team/app:v2")
    (failed,) = relay.queues["actions"].failed()
    assert json.loads(failed.read_text())["payload"]["tag"] == "v1"
    assert any("refused push team/app:v1: 422" in line for line in h.lines)


def test_pending_delivery_survives_a_restart(
    harness: Callable[..., Harness], github: FakeGitHub, tmp_path: Path
) -> None:
    github.script = [503] * 100
    h = harness()
    h.start()
    h.push("team/app", "v7")
    h.wait_log("attempt 1 for push team/app:v7 failed")
    h.stop()
    assert any("stopped; 1 pending delivery kept in" in line for line in h.lines)
    assert len(list((tmp_path / "q" / "actions").glob("*.json"))) == 1
    github.script = []
    before = len(github.requests)
    h.start()
    assert any("pending actions: 1" in line for line in h.lines)
    h.wait_log("delivered push team/app:v7")
    assert json.loads(github.requests[before].body)["client_payload"]["tag"] == "v7"
    assert list((tmp_path / "q" / "actions").glob("*.json")) == []


class BuggyOnce(Relay):
    """A relay whose first delivery attempt hits a bug."""

    failed = False

    def attempt(self, target: TargetConfig, item: Item) -> Attempt:
        if not self.failed:
            self.failed = True
            raise RuntimeError("boom")
        return super().attempt(target, item)


def test_a_worker_survives_a_bug(harness: Callable[..., Harness], github: FakeGitHub) -> None:
    h = harness()
    h.start(BuggyOnce)
    h.push("team/app", "v1")
    h.wait_log("actions: unexpected RuntimeError: boom; retrying in 0.2s")
    h.wait_log("delivered push team/app:v1")
    assert len(github.requests) == 1


def test_full_queue_asks_the_registry_to_retry(tmp_path: Path, github: FakeGitHub) -> None:
    github.script = [503] * 100
    h = Harness(tmp_path, github)
    h.config = parse_config(
        config_doc(
            tmp_path,
            github_target(api_url=github.url),
            queue={"dir": str(tmp_path / "q"), "max_events": 1},
            listen={"port": 0, "token": {"env": "IN"}},
            retry={"initial": "1s"},
        ),
        "x",
    )
    try:
        h.start()
        assert h.push("team/app", "v1") == 200
        assert h.push("team/app", "v2") == 503
        h.wait_log("queue full")
    finally:
        h.stop()


def test_missing_secret_stops_the_relay_before_it_listens(tmp_path: Path) -> None:
    config = parse_config(config_doc(tmp_path), "x")
    resolver = SecretResolver(StateStore(tmp_path), Masker(), environ={})
    with pytest.raises(SecretError, match=r"targets\[0\]\.token: environment variable GH is not set"):
        Relay(config, resolver, Masker(), print)


# --- the command -----------------------------------------------------------------------------------


def relay_cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["webhooks", "relay", *args], env=env or {}, catch_exceptions=False)


def test_check_shows_targets_without_secrets(tmp_path: Path) -> None:
    path = tmp_path / "relay.yml"
    path.write_text(yaml.safe_dump(config_doc(tmp_path, github_target(repositories=["team/*"]))))
    result = relay_cli("-c", str(path), "--check", "--port", "6001", env={"GH": GH_TOKEN})
    assert result.exit_code == 0, result.output
    assert (
        "actions: github -> https://api.github.com/repos/acme/deploy/dispatches for repositories team/*"
        in (result.output)
    )
    assert "listen on 127.0.0.1:6001" in result.output and GH_TOKEN not in result.output
    missing = relay_cli("-c", str(path), "--check")
    assert missing.exit_code == 2 and "environment variable GH is not set" in missing.stderr


def test_options_instead_of_a_file(tmp_path: Path) -> None:
    ok = relay_cli(
        "--github",
        "acme/deploy",
        "--token-env",
        "GH",
        "--queue-dir",
        str(tmp_path / "q"),
        "--repository",
        "team/*",
        "--tag",
        "v*",
        "--check",
        env={"GH": GH_TOKEN},
    )
    assert ok.exit_code == 0, ok.output
    assert "for repositories team/* and tags v*" in ok.output
    cases = [
        ([], "give --config FILE, or --github OWNER/REPO"),
        (["--github", "acme/deploy", "--queue-dir", "q"], "exactly one of --token-env"),
        (["--github", "acme/deploy", "--token-env", "GH"], "--queue-dir is required without --config"),
        (["-c", "x.yml", "--github", "a/b"], "--github: describe targets in x.yml"),
    ]
    for args, message in cases:
        result = relay_cli(*args, "--check")
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
