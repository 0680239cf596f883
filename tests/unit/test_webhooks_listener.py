"""``webhooks listen``: events in, one line (or JSON object) out; bounded by --count and --timeout."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from regdeploy.cli import cli
from regdeploy.webhooks.client import post
from regdeploy.webhooks.envelope import encode, media_type, sample_push
from regdeploy.webhooks.listener import Listener


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Every receiver, worker and timer a test starts is gone when it ends."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(threading.enumerate()) - before == set()


def deliver(url: str, body: bytes) -> int:
    return post(url, body, [("Content-Type", media_type(2))], 2).status


def test_events_are_collected_until_count() -> None:
    seen: list[str] = []
    with Listener(count=2, on_event=lambda r: seen.append(r.summary.tag)) as listener:
        assert deliver(listener.url, sample_push(version=2, registry="r:1", tag="a").body) == 200
        assert listener.wait(0.01) is False
        assert deliver(listener.url + "hook", sample_push(version=2, registry="r:1", tag="b").body) == 200
        assert listener.wait(1) is True
        # Past the count the registry is told to keep the event (it retries), not that it was taken.
        assert deliver(listener.url, sample_push(version=2, registry="r:1", tag="c").body) == 503
    assert seen == ["a", "b"]
    assert [r.path for r in listener.events] == ["/", "/hook"]
    assert listener.events[0].content_type == media_type(2)


def test_fail_first_then_accept() -> None:
    body = sample_push(version=2, registry="r:1").body
    with Listener(count=1, fail_first=2) as listener:
        assert [deliver(listener.url, body) for _ in range(3)] == [500, 500, 200]
        assert listener.refused == 2 and len(listener.events) == 1


def test_bad_requests() -> None:
    with Listener() as listener:
        assert deliver(listener.url, b"{nope") == 400
        assert deliver(listener.url, b'{"events": 3}') == 400
        import http.client

        host, port = listener.address
        conn = http.client.HTTPConnection(host, port, timeout=2)
        conn.request("GET", "/")
        assert conn.getresponse().status == 405
        conn.close()
        assert listener.events == []


def test_several_events_in_one_envelope() -> None:
    events = [sample_push(version=2, registry="r:1", tag=t).event for t in ("x", "y")]
    with Listener(count=5) as listener:
        assert deliver(listener.url, encode(events)) == 200
        assert [r.summary.tag for r in listener.events] == ["x", "y"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def send_when_listening(port: int, bodies: list[bytes]) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + 5
        for body in bodies:
            while time.monotonic() < deadline:
                try:
                    deliver(f"http://127.0.0.1:{port}/", body)
                    break
                except ConnectionRefusedError:
                    time.sleep(0.02)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def listen(*args: str) -> Any:
    return CliRunner().invoke(cli, ["webhooks", "listen", *args], catch_exceptions=False)


def test_command_prints_json_lines_and_stops_at_count() -> None:
    port = free_port()
    bodies = [
        sample_push(version=2, registry="r:1", repository="team/app", tag=t, actor="ci").body
        for t in ("v1", "v2")
    ]
    sender = send_when_listening(port, bodies)
    result = listen("--port", str(port), "--json", "--count", "2", "--timeout", "10")
    sender.join()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["action"], e["repository"], e["tag"], e["actor"]) for e in lines] == [
        ("push", "team/app", "v1", "ci"),
        ("push", "team/app", "v2", "ci"),
    ]
    assert all(e["digest"].startswith("sha256:") for e in lines)
    assert f"listening on http://127.0.0.1:{port}/" in result.stderr
    assert "received 2 events" in result.stderr


def test_command_text_line() -> None:
    port = free_port()
    sender = send_when_listening(port, [sample_push(version=2, registry="r:1", tag="v9", actor="ci").body])
    result = listen("--port", str(port), "--count", "1", "--timeout", "10")
    sender.join()
    assert result.exit_code == 0
    assert result.stdout.startswith("push regdeploy/webhook-test:v9 sha256:")
    assert result.stdout.rstrip().endswith("by ci (application/vnd.docker.distribution.manifest.v2+json)")


def test_command_timeout_before_count_fails() -> None:
    start = time.monotonic()
    result = listen("--port", "0", "--count", "1", "--timeout", "0.3")
    assert result.exit_code == 1
    assert time.monotonic() - start < 3
    assert "received 0 events" in result.stderr


@pytest.mark.parametrize("args", [["--timeout", "0.2"], ["--timeout", "0.2", "--json"]])
def test_command_timeout_alone_is_success(args: list[str]) -> None:
    assert listen("--port", "0", *args).exit_code == 0


def test_command_port_in_use() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = listen("--port", str(port), "--timeout", "1")
    assert result.exit_code == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
