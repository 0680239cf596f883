"""``webhooks test``: post a sample envelope to an endpoint the way the registry would, and time it.

The request matches the registry's: same body bytes, content type, user agent and the endpoint's
headers; no redirect is followed here (the registry's Go client does follow them, so a 3xx is
reported with its target). Header values never appear in a result: every text that leaves this
module went through the run's masker, and URLs are shown with query values and passwords hidden.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from regdeploy.materials.host import ResolvedEndpoint
from regdeploy.materials.secrets import MASK
from regdeploy.spec.registry import RegistrySpec
from regdeploy.spec.validate import duration_seconds
from regdeploy.transport.address import is_loopback, registry_hostport
from regdeploy.webhooks.client import describe_failure, post
from regdeploy.webhooks.envelope import GO_USER_AGENT, Envelope, sample_push

SNIPPET = 200  # characters of a refusing endpoint's answer worth showing


@dataclass(frozen=True)
class Delivery:
    endpoint: str
    url: str  # redacted
    sent: bool
    status: int | None
    seconds: float
    detail: str  # masked
    warning: str | None = None

    @property
    def ok(self) -> bool:
        """Accepted as the registry counts it (any 2xx or 3xx), or deliberately not sent."""
        return not self.sent or (self.status is not None and 200 <= self.status < 400)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.endpoint,
            "url": self.url,
            "ok": self.ok,
            "sent": self.sent,
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "detail": self.detail,
            "warning": self.warning,
        }


def redact_url(url: str) -> str:
    """The URL with any password and every query value replaced: tokens often ride there."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{MASK}@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
        query = urlencode([(k, MASK) for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
        return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "(unparseable URL)"


def loopback_warning(url: str) -> str | None:
    """A URL on loopback reaches the registry's own container, not this machine: say so."""
    host = urlsplit(url).hostname or ""
    if not is_loopback(host):
        return None
    return (
        f"{host} inside the registry container is the container itself: this test reached this "
        "machine, the registry will not. Use the Docker bridge gateway (172.17.0.1 by default) "
        "or the host's address"
    )


def registry_headers(envelope: Envelope, endpoint: ResolvedEndpoint) -> list[tuple[str, str]]:
    """What the registry's Go client sends: its defaults, then the endpoint's configured headers."""
    return [
        ("User-Agent", GO_USER_AGENT),
        ("Content-Type", envelope.media_type),
        ("Accept-Encoding", "gzip"),
        *endpoint.headers,
    ]


def send(
    endpoint: ResolvedEndpoint,
    envelope: Envelope,
    mask: Callable[[str], str],
    force: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> Delivery:
    """Post ``envelope`` to ``endpoint``; a disabled endpoint is skipped unless ``force``."""
    url = redact_url(endpoint.url)
    warning = loopback_warning(endpoint.url)
    if endpoint.disabled and not force:
        return Delivery(endpoint.name, url, False, None, 0.0, "disabled: not sent", warning)
    timeout = duration_seconds(endpoint.timeout) or 1.0
    headers = registry_headers(envelope, endpoint)
    start = clock()
    try:
        answer = post(endpoint.url, envelope.body, headers, timeout)
    except OSError as exc:
        failure = describe_failure(exc, timeout)
        if isinstance(exc, TimeoutError):
            failure += " (the endpoint's timeout: the registry would give up too)"
        failure = mask(failure)
        return Delivery(endpoint.name, url, True, None, clock() - start, failure, warning)
    seconds = clock() - start
    if 300 <= answer.status < 400:
        location = redact_url(answer.headers.get("location", ""))
        detail = f"{answer.reason}: redirect to {location} (the registry follows it)"
    elif 200 <= answer.status < 300:
        detail = answer.reason
    else:
        text = " ".join(answer.text.split())
        detail = f"{answer.reason}: {text[:SNIPPET]}" if text else answer.reason
    return Delivery(endpoint.name, url, True, answer.status, seconds, mask(detail), warning)


def sample_for(
    name: str, host_vars: Mapping[str, Any], spec: RegistrySpec, repository: str, tag: str
) -> Envelope:
    """The envelope this host's registry would send for a push of ``repository:tag``."""
    actor = next((u.name for u in spec.auth.users if not u.disabled), "")
    return sample_push(
        version=spec.version,
        # request.host: the Host header a client sends, i.e. the registry as clients write it
        registry=registry_hostport(name, host_vars, spec.port),
        scheme=spec.scheme,
        repository=repository,
        tag=tag,
        actor=actor,
        include_references=spec.notifications.includereferences,
    )


def test_endpoints(
    endpoints: Sequence[ResolvedEndpoint],
    envelope: Envelope,
    names: Collection[str],
    mask: Callable[[str], str],
) -> list[Delivery]:
    """Send to each endpoint (those in ``names`` if given; a named disabled endpoint is sent to)."""
    chosen = [e for e in endpoints if not names or e.name in names]
    return [send(e, envelope, mask, force=e.name in names) for e in chosen]
