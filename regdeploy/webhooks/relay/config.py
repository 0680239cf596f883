"""The relay's configuration file (YAML), validated with the file and key path in every message.

It lives in its own file, not the inventory: the relay is a separate service (often on another
host than the registry), and ``registry.notifications`` only holds what the registry itself reads.

    listen: {bind: 172.17.0.1, port: 5080, token: {env: RELAY_TOKEN}}
    queue: {dir: /var/lib/regdeploy-relay, max_events: 1000}
    retry: {initial: 1s, max: 5m}
    timeout: 10s
    targets:
      - name: actions
        type: github
        repository: acme/deploy
        token: {env: GITHUB_TOKEN}
        event_type: registry-push
        repositories: ["team/*"]
        tags: ["v*"]
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regdeploy.errors import InputError
from regdeploy.materials.secrets import SecretRef
from regdeploy.spec.filekeys import FileKey as _Key
from regdeploy.spec.filekeys import mapping as _mapping
from regdeploy.spec.validate import duration_seconds, suggest, type_name
from regdeploy.spec.validate import integer as _integer
from regdeploy.spec.validate import string as _string

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_PORT = 5080
DEFAULT_EVENT_TYPE = "registry-push"
DEFAULT_TOKEN_HEADER = "X-Relay-Token"
DEFAULT_SIGNATURE_HEADER = "X-Regdeploy-Signature-256"
TARGET_TYPES = ("github", "generic")
_NAME_RE = r"[A-Za-z0-9_.-]+"
_OWNER_REPO_RE = r"[A-Za-z0-9-]+/[A-Za-z0-9_.-]+"
_URL_RE = r"https?://[^\s/?#]+(/[^\s#]*)?"
_HEADER_RE = r"[A-Za-z0-9-]+"
_DURATION_RE = r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+"
# GitHub refuses an event_type longer than 100 characters.
_EVENT_TYPE_MAX = 100


@dataclass(frozen=True)
class TargetConfig:
    name: str
    type: str  # github | generic
    repositories: tuple[str, ...] = ("*",)
    tags: tuple[str, ...] = ("*",)
    # github
    repository: str = ""
    token: SecretRef | None = None
    api_url: str = DEFAULT_API_URL
    event_type: str = DEFAULT_EVENT_TYPE
    # generic
    url: str = ""
    secret: SecretRef | None = None
    signature_header: str = DEFAULT_SIGNATURE_HEADER

    @property
    def endpoint(self) -> str:
        """Where deliveries go (a token is never part of it)."""
        if self.type == "github":
            return f"{self.api_url.rstrip('/')}/repos/{self.repository}/dispatches"
        return self.url


@dataclass(frozen=True)
class RelayConfig:
    queue_dir: Path
    targets: tuple[TargetConfig, ...]
    bind: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: SecretRef | None = None
    token_header: str = DEFAULT_TOKEN_HEADER
    max_events: int = 1000
    retry_initial: float = 1.0
    retry_max: float = 300.0
    timeout: float = 10.0


def _seconds(value: Any, key: _Key) -> float:
    if not isinstance(value, str) or not re.fullmatch(_DURATION_RE, value):
        key.fail(f"invalid duration {value!r}: use Go syntax such as 500ms, 2s, 1m30s")
    seconds = duration_seconds(value)
    if seconds <= 0:
        key.fail("must be more than zero")
    return seconds


def _patterns(value: Any, key: _Key) -> tuple[str, ...]:
    if value is None:
        return ("*",)
    if not isinstance(value, list) or not value:
        key.fail("must be a non-empty list of glob patterns (omit it to match everything)")
    return tuple(_string(item, key.child(i)) for i, item in enumerate(value))


def _secret(value: Any, key: _Key, required: bool) -> SecretRef | None:
    if value is None:
        if required:
            key.fail("is required: {env: VARIABLE} or {file: PATH}")
        return None
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, name),) = value.items()
        if kind in ("env", "file") and isinstance(name, str) and name:
            return SecretRef(kind, os.path.expanduser(name) if kind == "file" else name)
    if isinstance(value, str):
        key.fail("write secrets as {env: VARIABLE} or {file: PATH}, not inline")
    key.fail("must be {env: VARIABLE} or {file: PATH}")


def parse_config(raw: Any, source: str, base_dir: Path | None = None) -> RelayConfig:
    """Validate a parsed relay file; relative queue dirs are relative to the file's directory."""
    top = _Key(source)
    data = _mapping(raw, top, ("listen", "queue", "retry", "timeout", "targets"))
    listen = _mapping(data.get("listen"), top.child("listen"), ("bind", "port", "token", "token_header"))
    queue = _mapping(data.get("queue"), top.child("queue"), ("dir", "max_events"))
    if queue.get("dir") is None:
        top.child("queue").child("dir").fail("is required: where undelivered events are kept")
    queue_dir = Path(os.path.expanduser(_string(queue["dir"], top.child("queue").child("dir"))))
    if not queue_dir.is_absolute() and base_dir is not None:
        queue_dir = base_dir / queue_dir
    delivery = _delivery(data, queue, top)
    d = RelayConfig(queue_dir=queue_dir, targets=delivery.targets)
    return RelayConfig(
        queue_dir=queue_dir,
        targets=delivery.targets,
        bind=_string(listen.get("bind", d.bind), top.child("listen").child("bind")),
        port=_integer(listen.get("port", d.port), top.child("listen").child("port"), 0, 65535),
        token=_secret(listen.get("token"), top.child("listen").child("token"), required=False),
        token_header=_string(
            listen.get("token_header", d.token_header),
            top.child("listen").child("token_header"),
            _HEADER_RE,
            "an HTTP header name",
        ),
        max_events=delivery.max_events,
        retry_initial=delivery.retry_initial,
        retry_max=delivery.retry_max,
        timeout=delivery.timeout,
    )


@dataclass(frozen=True)
class RelaySettings:
    """``registry.relay`` in the inventory: what the deployed relay unit delivers, and how. Where
    it listens and queues is regdeploy's business (the registry's private network, ``data_dir``)."""

    targets: tuple[TargetConfig, ...]
    max_events: int = 1000
    retry_initial: float = 1.0
    retry_max: float = 300.0
    timeout: float = 10.0


def parse_settings(raw: Any, source: str, path: str) -> RelaySettings:
    """Validate ``registry.relay`` (less ``run``, which the spec reads); messages name *source*
    (the inventory file and host) and the key under *path*."""
    top = _Key(source, path)
    data = _mapping(raw, top, ("targets", "queue", "retry", "timeout", "run"))
    return _delivery(data, _mapping(data.get("queue"), top.child("queue"), ("max_events",)), top)


def _delivery(data: Mapping[str, Any], queue: Mapping[str, Any], top: _Key) -> RelaySettings:
    """What a relay file and ``registry.relay`` share: targets, queue bound, retry, timeout."""
    retry = _mapping(data.get("retry"), top.child("retry"), ("initial", "max"))
    raw_targets = data.get("targets")
    if not isinstance(raw_targets, list) or not raw_targets:
        top.child("targets").fail("needs at least one target (type: github or generic)")
    targets = tuple(_target(item, top.child("targets").child(i)) for i, item in enumerate(raw_targets))
    names = [t.name for t in targets]
    for i, name in enumerate(names):
        if name in names[:i]:
            top.child("targets").child(i).child("name").fail(f"duplicate target {name!r}")
    initial = _seconds(retry.get("initial", "1s"), top.child("retry").child("initial"))
    most = _seconds(retry.get("max", "5m"), top.child("retry").child("max"))
    if most < initial:
        top.child("retry").child("max").fail(f"must be at least retry.initial ({initial:g}s)")
    return RelaySettings(
        targets=targets,
        max_events=_integer(
            queue.get("max_events", RelaySettings.max_events),
            top.child("queue").child("max_events"),
            1,
            1_000_000,
        ),
        retry_initial=initial,
        retry_max=most,
        timeout=_seconds(data.get("timeout", "10s"), top.child("timeout")),
    )


def _target(raw: Any, key: _Key) -> TargetConfig:
    common = ("name", "type", "repositories", "tags")
    github = ("repository", "token", "api_url", "event_type")
    generic = ("url", "secret", "signature_header")
    if not isinstance(raw, Mapping):
        key.fail(f"must be a mapping, got {type_name(raw)}")
    kind = raw.get("type")
    if kind not in TARGET_TYPES:
        hint = suggest(str(kind), TARGET_TYPES)
        key.child("type").fail(f"unknown value {kind!r}{hint}; expected one of {', '.join(TARGET_TYPES)}")
    data = _mapping(raw, key, common + (github if kind == "github" else generic))
    name = _string(data.get("name"), key.child("name"), _NAME_RE, "letters, digits, _ . - only")
    repositories = _patterns(data.get("repositories"), key.child("repositories"))
    tags = _patterns(data.get("tags"), key.child("tags"))
    if kind == "github":
        event_type = _string(data.get("event_type", DEFAULT_EVENT_TYPE), key.child("event_type"))
        if len(event_type) > _EVENT_TYPE_MAX:
            key.child("event_type").fail(f"GitHub accepts at most {_EVENT_TYPE_MAX} characters")
        return TargetConfig(
            name=name,
            type=kind,
            repositories=repositories,
            tags=tags,
            repository=_string(
                data.get("repository"), key.child("repository"), _OWNER_REPO_RE, "expected OWNER/REPO"
            ),
            token=_secret(data.get("token"), key.child("token"), required=True),
            api_url=_string(
                data.get("api_url", DEFAULT_API_URL),
                key.child("api_url"),
                _URL_RE,
                "expected an http:// or https:// URL",
            ).rstrip("/"),
            event_type=event_type,
        )
    return TargetConfig(
        name=name,
        type="generic",
        repositories=repositories,
        tags=tags,
        url=_string(data.get("url"), key.child("url"), _URL_RE, "expected an http:// or https:// URL"),
        secret=_secret(data.get("secret"), key.child("secret"), required=False),
        signature_header=_string(
            data.get("signature_header", DEFAULT_SIGNATURE_HEADER),
            key.child("signature_header"),
            _HEADER_RE,
            "an HTTP header name",
        ),
    )


def read_config_file(path: Path) -> Any:
    """The file's parsed YAML, not yet validated (the CLI lays its overrides over it first)."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: relay configuration file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    return raw


def load_config(path: Path) -> RelayConfig:
    return parse_config(read_config_file(path), str(path), path.parent)
