"""``webhooks test``: the request is the registry's, answers are reported, secrets never shown."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from regdeploy.cli import cli
from regdeploy.materials.host import ResolvedEndpoint
from regdeploy.spec.registry import parse_spec
from regdeploy.webhooks.envelope import decode, media_type, sample_push
from regdeploy.webhooks.receiver import Receiver, Reply, Request
from regdeploy.webhooks.sender import loopback_warning, redact_url, sample_for, send

TOKEN = "tok-7d1e-webhook-secret-value"


class Recorder:
    """A loopback receiver answering each path with a scripted reply, recording every request."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.replies: dict[str, Callable[[Request], Reply]] = {}
        self.receiver = Receiver("127.0.0.1", 0, self._handle).start()

    def _handle(self, request: Request) -> Reply:
        self.requests.append(request)
        return self.replies.get(request.path, lambda r: Reply(200, b"ok"))(request)

    def url(self, path: str) -> str:
        host, port = self.receiver.address
        return f"http://{host}:{port}{path}"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.receiver.close()


def endpoint(url: str, **kw: Any) -> ResolvedEndpoint:
    values: dict[str, Any] = dict(
        name="ci",
        url=url,
        headers=(("Authorization", TOKEN),),
        timeout="2s",
        threshold=5,
        backoff="1s",
        ignoredmediatypes=(),
        ignore_mediatypes=(),
        ignore_actions=(),
        disabled=False,
    )
    values.update(kw)
    return ResolvedEndpoint(**values)


def mask(text: str) -> str:
    return text.replace(TOKEN, "********")


def test_request_is_the_registrys(recorder: Recorder) -> None:
    env = sample_push(version=2, registry="localhost:5000")
    result = send(endpoint(recorder.url("/hook?x=1")), env, mask)
    assert result.ok and result.sent and result.status == 200 and result.detail == "OK"
    (req,) = recorder.requests
    assert (req.method, req.path, req.query) == ("POST", "/hook", {"x": ["1"]})
    assert req.body == env.body
    assert req.headers["content-type"] == media_type(2)
    assert req.headers["user-agent"] == "Go-http-client/1.1"
    assert req.headers["accept-encoding"] == "gzip"
    assert req.headers["authorization"] == TOKEN
    assert decode(req.body)[0]["target"]["tag"] == "test"


def test_refusal_is_reported_with_the_answer_masked(recorder: Recorder) -> None:
    # Jenkins' Generic Webhook Trigger echoes request headers (tokens!) in its 403 answer.
    recorder.replies["/hook"] = lambda r: Reply(403, f"headers {{authorization=[{TOKEN}]}}\n".encode())
    result = send(endpoint(recorder.url("/hook")), sample_push(version=2, registry="r:1"), mask)
    assert not result.ok and result.status == 403
    assert result.detail == "Forbidden: headers {authorization=[********]}"
    assert TOKEN not in json.dumps(result.as_json())


def test_redirect_counts_as_accepted_like_the_registry(recorder: Recorder) -> None:
    recorder.replies["/old"] = lambda r: Reply(302, headers={"Location": "http://x/new?token=abc"})
    result = send(endpoint(recorder.url("/old")), sample_push(version=2, registry="r:1"), mask)
    assert result.ok and result.status == 302
    assert result.detail == "Found: redirect to http://x/new?token=******** (the registry follows it)"


def test_connection_refused_and_timeout(recorder: Recorder, free_port: int) -> None:
    env = sample_push(version=2, registry="r:1")
    refused = send(endpoint(f"http://127.0.0.1:{free_port}/"), env, mask)
    assert not refused.ok and refused.status is None and refused.detail == "connection refused"

    def slow(r: Request) -> Reply:
        time.sleep(0.6)
        return Reply(200)

    recorder.replies["/slow"] = slow
    timed = send(endpoint(recorder.url("/slow"), timeout="200ms"), env, mask)
    assert not timed.ok and timed.detail.startswith("no answer within 0.2s (the endpoint's timeout")
    assert 0.15 < timed.seconds < 0.6


def test_disabled_endpoint_is_skipped_unless_forced(recorder: Recorder) -> None:
    env = sample_push(version=2, registry="r:1")
    skipped = send(endpoint(recorder.url("/"), disabled=True), env, mask)
    assert skipped.ok and not skipped.sent and recorder.requests == []
    forced = send(endpoint(recorder.url("/"), disabled=True), env, mask, force=True)
    assert forced.sent and forced.status == 200 and len(recorder.requests) == 1


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://ci.example/hook", "https://ci.example/hook"),
        (
            "https://ci.example/invoke?token=s3cret&job=a",
            "https://ci.example/invoke?token=********&job=********",
        ),
        ("https://bob:pw@ci.example:8443/x", "https://bob:********@ci.example:8443/x"),
        ("https://bob@ci.example/x#frag", "https://bob@ci.example/x"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "warns"),
    [
        ("http://127.0.0.1:9000/", True),
        ("http://localhost/", True),
        ("http://[::1]:80/", True),
        ("http://172.17.0.1:9000/", False),
        ("https://jenkins.example.com/", False),
    ],
)
def test_loopback_warning(url: str, warns: bool) -> None:
    assert (loopback_warning(url) is not None) == warns


def test_sample_names_the_registry_as_clients_write_it():
    spec = parse_spec("reg-eu", {"port": 5443})
    envelope = sample_for("reg-eu", {"ansible_host": "fd00::5"}, spec, "team/app", "v1")
    assert b'"host": "[fd00::5]:5443"' in envelope.body


# --- the command -----------------------------------------------------------------------------------


@pytest.fixture
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_inventory(tmp: Path, endpoints: list[dict[str, Any]], **registry: Any) -> Path:
    reg = {
        "port": 5999,
        "config_dir": str(tmp / "c"),
        "data_dir": str(tmp / "d"),
        "auth": {"users": [{"name": "alice"}]},
        "notifications": {"endpoints": endpoints},
        **registry,
    }
    path = tmp / "hosts.yml"
    path.write_text(
        yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_connection": "local", "registry": reg}}}})
    )
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(
        cli, ["webhooks", "test", *args], env={"CI_TOKEN": TOKEN}, catch_exceptions=False
    )


def test_command_reports_each_endpoint_and_fails_on_a_refusal(
    recorder: Recorder, tmp_path: Path, free_port: int
) -> None:
    recorder.replies["/denied"] = lambda r: Reply(401, f"bad token {TOKEN}".encode())
    inventory = write_inventory(
        tmp_path,
        [
            {"name": "good", "url": recorder.url("/good"), "headers": {"Authorization": {"env": "CI_TOKEN"}}},
            {"name": "denied", "url": recorder.url("/denied?token=" + TOKEN)},
            {"name": "closed", "url": f"http://127.0.0.1:{free_port}/"},
            {"name": "paused", "url": recorder.url("/paused"), "disabled": True},
        ],
    )
    result = invoke("--json", "-i", str(inventory))
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    host = report["hosts"]["localhost"]
    assert report["ok"] is False and host["media_type"] == media_type(2)
    got = {e["name"]: (e["ok"], e["sent"], e["status"]) for e in host["endpoints"]}
    assert got == {
        "good": (True, True, 200),
        "denied": (False, True, 401),
        "closed": (False, True, None),
        "paused": (True, False, None),
    }
    assert [r.path for r in recorder.requests] == ["/good", "/denied"]
    assert recorder.requests[0].headers["authorization"] == TOKEN  # the resolved secret was sent...
    assert TOKEN not in result.output  # ...and never shown, not in the URL, not in the answer
    assert host["endpoints"][1]["detail"] == "Unauthorized: bad token ********"
    assert all(e["warning"] for e in host["endpoints"] if e["name"] != "closed")  # loopback URLs

    text = invoke("-i", str(inventory))
    assert text.exit_code == 1 and TOKEN not in text.output
    assert "REFUSED denied" in text.output and "1 endpoint accepted, 2 refused" in text.output
    assert not (tmp_path / ".regdeploy").exists()  # a test leaves no state behind


def test_command_uses_the_v2_envelope_for_registry_3(recorder: Recorder, tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, [{"name": "good", "url": recorder.url("/")}], image="registry:3")
    result = invoke("-i", str(inventory), "--repository", "team/app", "--tag", "v2.0")
    assert result.exit_code == 0, result.output
    (req,) = recorder.requests
    assert req.headers["content-type"] == media_type(3)
    target = decode(req.body)[0]["target"]
    assert (target["repository"], target["tag"]) == ("team/app", "v2.0")


def test_command_endpoint_selection_and_bad_input(recorder: Recorder, tmp_path: Path) -> None:
    inventory = write_inventory(
        tmp_path,
        [
            {"name": "a", "url": recorder.url("/a")},
            {"name": "b", "url": recorder.url("/b"), "disabled": True},
        ],
    )
    ok = invoke("-i", str(inventory), "-e", "b")
    assert ok.exit_code == 0, ok.output
    assert [r.path for r in recorder.requests] == ["/b"]  # named: sent although disabled
    unknown = invoke("-i", str(inventory), "-e", "nope")
    assert unknown.exit_code == 2
    assert "--endpoint 'nope': no such notification endpoint (known: a, b)" in unknown.stderr
    bad = invoke("-i", str(inventory), "--repository", "Team/App")
    assert bad.exit_code == 2 and "not a valid repository name" in bad.output


def test_command_without_endpoints(tmp_path: Path) -> None:
    result = invoke("-i", str(write_inventory(tmp_path, [])))
    assert result.exit_code == 0
    assert "localhost: no notification endpoints configured" in result.output


def test_receivers_leave_no_thread_behind() -> None:
    before = set(threading.enumerate())
    with Receiver("127.0.0.1", 0, lambda r: Reply(200)) as receiver:
        from regdeploy.webhooks.client import post

        assert post(receiver.url, b"{}", [], 2).status == 200
    time.sleep(0.05)
    assert set(threading.enumerate()) <= before
