"""Readiness helpers that need no engine."""

from __future__ import annotations

from regdeploy.deploy.health import log_tail, panic_frame, started_since


def test_started_at_becomes_the_logs_apis_since() -> None:
    # 2026-12-01T16:20:01Z is 1796142001 s after the epoch; Docker keeps nanoseconds.
    assert started_since("2026-12-01T16:20:01.123456789Z") == "1796142001.123456789"
    assert started_since("2026-12-01T16:20:01.5Z") == "1796142001.500000000"
    assert started_since("2026-12-01T16:20:01Z") == "1796142001.000000000"
    assert started_since("not a time") == ""


# The head of what registry 2.8.2 printed when its upload purger hit a SeaweedFS directory listing.
PANIC = """time="2026-12-01T21:50:03Z" level=info msg="Starting upload purge in 0s" go.version=go1.19.8
panic: runtime error: index out of range [0] with length 0

goroutine 24 [running]:
github.com/docker/distribution/registry/storage.getOutstandingUploads.func1({0x11a5a40, 0xc0002a6c00})
\tgithub.com/docker/distribution/registry/storage/purgeuploads.go:73 +0x55f
github.com/docker/distribution/registry/storage/driver/s3-aws.(*driver).doWalk.func1(0xc0001f0480, 0x94?)
\tgithub.com/docker/distribution/registry/storage/driver/s3-aws/s3.go:1021 +0x630
"""


class LogsOnly:
    def container_logs(self, container: str, tail: int = 100, since: str = "") -> bytes:
        return PANIC.encode()


def test_a_go_panic_keeps_the_frame_that_panicked() -> None:
    assert panic_frame(PANIC.splitlines()) == [
        "in github.com/docker/distribution/registry/storage.getOutstandingUploads.func1",
        "at github.com/docker/distribution/registry/storage/purgeuploads.go:73",
    ]
    tail = log_tail(LogsOnly(), "reg", lambda s: s, "registry")  # type: ignore[arg-type]
    assert tail.splitlines()[2:] == [
        "    panic: runtime error: index out of range [0] with length 0",
        "    in github.com/docker/distribution/registry/storage.getOutstandingUploads.func1",
        "    at github.com/docker/distribution/registry/storage/purgeuploads.go:73",
    ]
    assert panic_frame(["level=fatal msg=boom"]) == []
