"""``webhooks listen``: receive registry notifications and hand each event to a callback.

For debugging an endpoint and for tests: it answers like a well-behaved endpoint (200 once the
envelope is read), can refuse the first N deliveries to show the registry's retries, and stops
after a number of events or a time limit so scripts never hang.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from regdeploy.webhooks.envelope import EnvelopeError, EventSummary, decode
from regdeploy.webhooks.receiver import Receiver, Reply, Request


@dataclass(frozen=True)
class Received:
    """One event as it arrived: its summary, the raw event, and the delivery it came in."""

    summary: EventSummary
    event: Mapping[str, Any]
    path: str
    content_type: str


class Listener:
    """Collects events; ``wait()`` returns when ``count`` events arrived or ``timeout`` passed."""

    def __init__(
        self,
        bind: str = "127.0.0.1",
        port: int = 0,
        count: int | None = None,
        fail_first: int = 0,
        on_event: Callable[[Received], None] | None = None,
    ) -> None:
        self._count = count
        self._fail_left = fail_first
        self._on_event = on_event
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.events: list[Received] = []
        self.refused = 0
        self._receiver = Receiver(bind, port, self._handle)

    @property
    def url(self) -> str:
        return self._receiver.url

    @property
    def address(self) -> tuple[str, int]:
        return self._receiver.address

    def _handle(self, request: Request) -> Reply:
        if request.method != "POST":
            return Reply(405, b"POST registry event envelopes here\n")
        try:
            events = decode(request.body)
        except EnvelopeError as exc:
            return Reply(400, f"{exc}\n".encode())
        with self._lock:
            if self._done.is_set():
                # Past --count: let the registry keep the event for whoever listens next.
                return Reply(503, b"listener finished\n")
            if self._fail_left > 0:
                self._fail_left -= 1
                self.refused += 1
                return Reply(500, b"refused on purpose (--fail-first)\n")
            content_type = request.headers.get("content-type", "")
            for event in events:
                received = Received(EventSummary.of(event), event, request.path, content_type)
                self.events.append(received)
                if self._on_event is not None:
                    self._on_event(received)
                if self._count is not None and len(self.events) >= self._count:
                    self._done.set()
                    break
        return Reply(200)

    def start(self) -> Listener:
        self._receiver.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """True when ``count`` events arrived; False when ``timeout`` passed first.

        Without a count it waits for ``timeout`` (forever if None) and returns True.
        """
        return self._done.wait(timeout) or self._count is None

    def close(self) -> None:
        self._receiver.close()

    def __enter__(self) -> Listener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
