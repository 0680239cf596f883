"""Where a host's registry is reached, as whom, and what one verify run has left behind on it."""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from regdeploy.transport.address import client_address, host_port
from regdeploy.verify.registry_api import RegistryClient

if TYPE_CHECKING:
    import docker

    from regdeploy.ops.run import HostJob
    from regdeploy.spec.registry import RegistrySpec
    from regdeploy.transport import Transport

SMOKE_REPOSITORY = "regdeploy-smoke"
# Requests to a local registry answer in well under a second; a stuck one must not stall the run.
REQUEST_TIMEOUT = 10.0
S = TypeVar("S")


@dataclass(frozen=True)
class Target:
    host: str  # inventory name
    address: str  # where the control machine connects
    port: int
    server_name: str  # the name clients use (transport/address.py); the certificate must match it
    ca_pem: bytes | None  # None: plain HTTP (tls.mode none)
    user: str
    password: str
    token_realm: str | None = None  # token auth: where clients get tokens (None: htpasswd)
    token_service: str | None = None
    smoke_repository: str = SMOKE_REPOSITORY  # where the push checks push (and cleanup deletes)
    # Token auth: the user's tokens by scope, shared by the checks' clients as docker shares them.
    tokens: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def registry(self) -> str:
        """The registry as the engine check's image references and certs.d write it."""
        return host_port(self.server_name, self.port)

    def client(self, password: str | None = None, anonymous: bool = False) -> RegistryClient:
        """A registry client as the user (with *password* if given), or anonymous; it checks the
        certificate against ``server_name``, as clients do."""
        user = None if anonymous else self.user
        shared = not anonymous and password is None
        if shared:
            password = self.password
        return RegistryClient(
            self.address, self.port, self.ca_pem, user, password,
            server_hostname=self.server_name if self.ca_pem else None, timeout=REQUEST_TIMEOUT,
            tokens=self.tokens if shared else None,
        )  # fmt: skip


@dataclass(frozen=True)
class Pushed:
    """A manifest this run put on the registry (and so must delete again)."""

    via: str  # "engine" or "api"
    tag: str
    digest: str
    repository: str = SMOKE_REPOSITORY

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass
class VerifyContext:
    """Shared by the checks of one host; the engine and api checks run at once, hence the lock."""

    job: HostJob
    target: Target
    transport: Transport
    nonce: str = field(default_factory=lambda: secrets.token_hex(6))
    pushed: list[Pushed] = field(default_factory=list)
    # Image references on the control machine's engine that cleanup removes.
    local_images: list[str] = field(default_factory=list)
    # The engine check's groundwork (SDK loaded, smoke image built), started with the first checks.
    engine_ready: Future[Any] | None = None
    # One event per push check running in this run, set once its push is done (or failed): the
    # catalog check, running alongside them, waits for these instead of for their pulls.
    pushes: dict[str, threading.Event] = field(default_factory=dict)
    # Seconds a check spent waiting for other checks: not its own time.
    waited: dict[str, float] = field(default_factory=dict)
    _engine: docker.DockerClient | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # What a check keeps between its steps (the notifications check reads counters before the pushes),
    # one instance per state type; each check defines its own type, so the context knows none of them.
    _check_state: dict[type[Any], Any] = field(default_factory=dict)

    def state(self, kind: type[S]) -> S:
        """This host's instance of a check's state type *kind*, made with ``kind()`` on first use."""
        with self._lock:
            if kind not in self._check_state:
                self._check_state[kind] = kind()
            return cast(S, self._check_state[kind])

    def push_finished(self, name: str) -> None:
        if name in self.pushes:
            self.pushes[name].set()

    def wait_for_pushes(self, waiter: str, timeout: float = 120.0) -> None:
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        for event in list(self.pushes.values()):
            event.wait(max(0.0, deadline - time.monotonic()))
        self.waited[waiter] = time.perf_counter() - started

    def add_pushed(self, pushed: Pushed) -> None:
        with self._lock:
            self.pushed.append(pushed)

    def add_local_image(self, ref: str) -> None:
        with self._lock:
            self.local_images.append(ref)

    def control_engine(self) -> docker.DockerClient:
        """The Docker engine of the machine verify runs on ($DOCKER_HOST, else the local socket):
        the engine check is a client's view, whatever engine the registry itself runs on."""
        with self._lock:
            if self._engine is None:
                from regdeploy.transport.engine import connect

                self._engine = connect("control machine")
            return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def make_target(job: HostJob, address: str, server_name: str | None) -> Target:
    spec = job.spec
    user = next(u for u in spec.auth.users if not u.disabled)  # the spec guarantees one
    return Target(
        host=job.name,
        address=address,
        port=spec.port,
        server_name=server_name or client_address(job.name, job.vars),
        ca_pem=job.materials.tls.ca_cert if job.materials.tls else None,
        user=user.name,
        password=job.materials.passwords[user.name],
        token_realm=job.materials.token.realm if job.materials.token else None,
        token_service=job.materials.token.service if job.materials.token else None,
        smoke_repository=smoke_repository(spec, user.name),
    )


def smoke_repository(spec: RegistrySpec, user: str) -> str:
    """Where verify's user may push, pull and delete: ``regdeploy-smoke``, or with the built-in
    token server's ACL, the first of it and ``USER/regdeploy-smoke`` that the ACL allows."""
    from regdeploy.tokens.acl import authorize
    from regdeploy.tokens.scope import Scope

    token = spec.auth.builtin_token
    if token is None:
        return SMOKE_REPOSITORY
    candidates = (SMOKE_REPOSITORY, f"{user}/{SMOKE_REPOSITORY}")
    for needed in (("pull", "push", "delete"), ("pull", "push")):
        for name in candidates:
            (granted,) = authorize(token.acl, user, [Scope("repository", name, needed)])
            if set(granted.actions) == set(needed):
                return name
    return SMOKE_REPOSITORY
