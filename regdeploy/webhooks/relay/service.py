"""The relay service: a receiver for the registry's envelopes and one delivery worker per target.

At least once: an event is acknowledged to the registry only after it is on disk for every target
it matches, and removed only after the target accepted it. A restart retries what is pending.
Deliveries are retried with exponential backoff (``retry.initial`` doubling up to ``retry.max``,
or longer if the target says Retry-After) while the target is unreachable, answers 5xx, 408 or
429, or rate-limits; any other refusal (bad token, unknown repository, invalid payload) will not
heal by waiting, so that item moves to ``failed/`` and the queue moves on.
"""

from __future__ import annotations

import email.utils
import hmac
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from regdeploy.materials.secrets import Masker, SecretResolver, mask_url_query
from regdeploy.webhooks.client import describe_failure, post
from regdeploy.webhooks.envelope import EnvelopeError, EventSummary, decode
from regdeploy.webhooks.receiver import Receiver, Reply, Request
from regdeploy.webhooks.relay.config import RelayConfig, TargetConfig
from regdeploy.webhooks.relay.queue import DiskQueue, Item, QueueFull
from regdeploy.webhooks.relay.targets import (
    Outgoing,
    generic_request,
    github_request,
    matches,
    payload,
    wanted,
)

Log = Callable[[str], None]
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 3600.0  # a target asking for more than an hour is misbehaving: check hourly anyway


@dataclass(frozen=True)
class Attempt:
    outcome: str  # delivered | retry | refused
    status: int | None
    detail: str
    retry_after: float | None = None


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        # GitHub's primary rate limit: 403/429 with x-ratelimit-remaining: 0 and a reset epoch.
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset", "").isdigit():
            return max(0.0, float(headers["x-ratelimit-reset"]) - now)
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def classify(status: int, reason: str, headers: Mapping[str, str], text: str, now: float) -> Attempt:
    """What one answer means for the queue: keep the item and retry, drop it, or done."""
    detail = f"{status} {reason}".strip()
    snippet = " ".join(text.split())[:200]
    if 200 <= status < 300:
        return Attempt("delivered", status, detail)
    retry_after = _retry_after(headers, now)
    if status in RETRY_STATUSES or (status == 403 and retry_after is not None):
        return Attempt("retry", status, detail + (f": {snippet}" if snippet else ""), retry_after)
    if 300 <= status < 400:
        detail += f": redirected to {headers.get('location', '?')}: update the target's URL"
    elif snippet:
        detail += f": {snippet}"
    return Attempt("refused", status, detail)


def backoff(attempts: int, initial: float, most: float, retry_after: float | None) -> float:
    delay = min(most, initial * 2.0 ** max(0, attempts - 1))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


class Relay:
    """Start with ``start()``, stop with ``stop()``; pending deliveries stay on disk in between."""

    def __init__(self, config: RelayConfig, resolver: SecretResolver, masker: Masker, log: Log) -> None:
        self.config = config
        self._masker = masker
        self._log_lock = threading.Lock()
        self._log_sink = log
        # Secrets are resolved up front: a missing variable stops the relay before it accepts events.
        self._inbound, self._secrets = self.check(config, resolver)
        self.queues = {
            t.name: DiskQueue(config.queue_dir / t.name, config.max_events) for t in config.targets
        }
        self._stop = threading.Event()
        self._current: dict[str, str] = {}  # target -> key of the delivery being attempted
        self._receiver = Receiver(config.bind, config.port, self._handle)
        self._workers = [
            threading.Thread(target=self._work, args=(t,), name=f"relay-{t.name}", daemon=True)
            for t in config.targets
        ]

    @staticmethod
    def check(config: RelayConfig, resolver: SecretResolver) -> tuple[str | None, dict[str, str | None]]:
        """Resolve every secret the relay needs: (inbound token, target name -> token or HMAC secret).

        Raises SecretError naming the key when one cannot be read.
        """
        inbound = resolver.resolve(config.token, "listen.token") if config.token else None
        secrets: dict[str, str | None] = {}
        for i, t in enumerate(config.targets):
            ref = t.token if t.type == "github" else t.secret
            key = f"targets[{i}].{'token' if t.type == 'github' else 'secret'}"
            secrets[t.name] = resolver.resolve(ref, key) if ref else None
        return inbound, secrets

    @property
    def url(self) -> str:
        return self._receiver.url

    def log(self, message: str) -> None:
        text = self._masker.mask(message)
        with self._log_lock:
            self._log_sink(text)

    def start(self) -> Relay:
        self._receiver.start()
        for worker in self._workers:
            worker.start()
        pending = ", ".join(f"{name}: {len(q)}" for name, q in self.queues.items())
        self.log(f"listening on {self.url} (queue {self.config.queue_dir}; pending {pending})")
        return self

    def stop(self) -> None:
        self._stop.set()
        for q in self.queues.values():
            q.wake()
        self._receiver.close()
        for worker in self._workers:
            worker.join(timeout=self.config.timeout + 2)
        pending = sum(len(q) for q in self.queues.values())
        noun = "delivery" if pending == 1 else "deliveries"
        self.log(f"stopped; {pending} pending {noun} kept in {self.config.queue_dir}")

    # --- the registry side -------------------------------------------------------------------

    def _handle(self, request: Request) -> Reply:
        if request.method != "POST":
            return Reply(405, b"POST registry event envelopes here\n")
        if self._inbound is not None:
            given = request.headers.get(self.config.token_header.lower(), "")
            if not hmac.compare_digest(given.encode(), self._inbound.encode()):
                self.log(
                    f"refused a delivery from {request.client}: missing or wrong {self.config.token_header}"
                )
                return Reply(401, b"missing or wrong token\n")
        try:
            events = decode(request.body)
        except EnvelopeError as exc:
            return Reply(400, f"{exc}\n".encode())
        for event in events:
            summary = EventSummary.of(event)
            if not wanted(summary):
                continue
            targets = [t for t in self.config.targets if matches(t, summary)]
            if not targets:
                self.log(f"skipped push {summary.reference}: no target matches")
            for target in targets:
                try:
                    added = self.queues[target.name].put(summary.id or summary.digest, payload(summary))
                except QueueFull as exc:
                    # The registry keeps the event and retries: nothing is lost, only delayed.
                    self.log(f"{target.name}: queue full ({exc}): asking the registry to retry")
                    return Reply(503, b"queue full, retry later\n")
                except OSError as exc:  # disk full, permissions: the same answer, the registry retries
                    self.log(f"{target.name}: cannot queue push {summary.reference}: {exc}")
                    return Reply(503, b"cannot queue the event, retry later\n")
                if added:
                    self.log(f"{target.name}: queued push {summary.reference}")
        return Reply(200)

    # --- the target side ---------------------------------------------------------------------

    def request_for(self, target: TargetConfig, item: Item) -> Outgoing:
        secret = self._secrets[target.name]
        if target.type == "github":
            assert secret is not None  # required by the config
            return github_request(target, item.payload, secret)
        return generic_request(target, item.payload, secret)

    def attempt(self, target: TargetConfig, item: Item) -> Attempt:
        out = self.request_for(target, item)
        try:
            answer = post(out.url, out.body, out.headers, self.config.timeout)
        except OSError as exc:
            return Attempt("retry", None, describe_failure(exc, self.config.timeout))
        return classify(answer.status, answer.reason, answer.headers, answer.text, time.time())

    def _work(self, target: TargetConfig) -> None:
        attempts = 0
        while not self._stop.is_set():
            try:
                attempts = self._step(target, attempts)
            except Exception as exc:  # a worker that died silently would leave its queue stuck for good
                wait = self.config.retry_max
                self.log(f"{target.name}: unexpected {type(exc).__name__}: {exc}; retrying in {wait:g}s")
                self._stop.wait(wait)

    def _step(self, target: TargetConfig, attempts: int) -> int:
        """One attempt at the oldest pending delivery; returns the failed attempts so far for it."""
        queue = self.queues[target.name]
        item = queue.peek(timeout=0.5)
        if item is None:
            return attempts
        if item.key != self._current.get(target.name):
            self._current[target.name], attempts = item.key, 0
        ref = f"{item.payload.get('repository', '?')}:{item.payload.get('tag', '?')}"
        start = time.monotonic()
        result = self.attempt(target, item)
        took = time.monotonic() - start
        if result.outcome == "delivered":
            queue.done(item)
            url = mask_url_query(target.endpoint)  # a ?token= stays out of the log
            self.log(f"{target.name}: delivered push {ref} to {url} ({result.detail}, {took:.3f}s)")
            return 0
        if result.outcome == "refused":
            where = queue.fail(item, result.detail)
            url = mask_url_query(target.endpoint)
            self.log(f"{target.name}: {url} refused push {ref}: {result.detail}; kept in {where}")
            return 0
        attempts += 1
        delay = backoff(attempts, self.config.retry_initial, self.config.retry_max, result.retry_after)
        self.log(
            f"{target.name}: attempt {attempts} for push {ref} failed ({result.detail}); "
            f"retrying in {delay:.1f}s"
        )
        self._stop.wait(delay)
        return attempts
