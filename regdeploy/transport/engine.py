"""Connecting the Docker SDK to an engine, with one clear error when it cannot be reached."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from regdeploy.errors import TransportError

if TYPE_CHECKING:
    import docker

# 1.41 = Docker 20.10, the oldest engine regdeploy supports (Debian 12's docker.io). Pinning it saves
# a version negotiation round trip on every connection.
API_VERSION = "1.41"


def connect(host: str, base_url: str | None = None, timeout: int = 60) -> docker.DockerClient:
    import docker
    import docker.errors

    url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.DockerClient(base_url=url, version=API_VERSION, timeout=timeout)
        client.api.ping()
    except docker.errors.DockerException as exc:
        raise TransportError(
            f"{host}: cannot reach the Docker engine at {url}: {_reason(exc)}; is dockerd running?"
        ) from None
    except OSError as exc:
        raise TransportError(
            f"{host}: cannot reach the Docker engine at {url}: {exc}; is dockerd running?"
        ) from None
    return client


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("No such file or directory", "Connection refused", "Permission denied"):
        if marker in text:
            return marker
    return text.splitlines()[0][:200] if text else type(exc).__name__
