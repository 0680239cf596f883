"""The Docker SDK (docker-py) over SSH channels of the host's one connection.

Only imported when something must change: docker-py with requests and urllib3 behind it costs more
to import than an idempotent run spends on everything else.
"""

from __future__ import annotations

from typing import Any, cast

import requests.adapters
import urllib3.connection
import urllib3.connectionpool

from regdeploy.transport.dockerssh import ChannelOpener
from regdeploy.transport.engine import API_VERSION

# Our adapter is mounted under this prefix: docker-py recognises "http+docker://ssh" and then finds
# the raw stream of attach/exec responses the way it does for its own SSH transport.
BASE_URL = "http+docker://ssh"


class _ChannelConnection(urllib3.connection.HTTPConnection):
    def __init__(self, opener: ChannelOpener, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._opener = opener
        self._default_timeout = timeout

    def connect(self) -> None:
        timeout = self.timeout if isinstance(self.timeout, int | float) else self._default_timeout
        self.sock = cast(Any, self._opener(float(timeout)))


class _ChannelPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, opener: ChannelOpener, timeout: float, maxsize: int) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=maxsize)
        self._opener = opener
        self._timeout = timeout

    def _new_conn(self) -> urllib3.connection.HTTPConnection:
        return _ChannelConnection(self._opener, self._timeout)


class ChannelAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose every connection is an SSH channel from *opener*."""

    def __init__(self, opener: ChannelOpener, timeout: float, maxsize: int = 4) -> None:
        self._pool = _ChannelPool(opener, timeout, maxsize)
        super().__init__()

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> urllib3.connectionpool.HTTPConnectionPool:
        return self._pool

    def request_url(self, request: Any, proxies: Any) -> str:
        # The host part is our fake "ssh": proxies can never apply to a channel.
        return str(request.path_url)

    def close(self) -> None:
        self._pool.close()
        super().close()


def docker_client(opener: ChannelOpener, timeout: float) -> Any:
    """A ``docker.DockerClient`` whose HTTP connections are channels from *opener*. No I/O here."""
    import docker

    # A unix base_url makes the SDK build its client without touching the network; its adapters
    # are then swapped for ours (the SDK mounts its own SSH adapter the same way).
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock", version=API_VERSION, timeout=timeout)
    api = client.api
    for prefix in list(api.adapters):
        api.adapters.pop(prefix).close()
    adapter = ChannelAdapter(opener, timeout)
    api.mount(BASE_URL, adapter)
    api._custom_adapter = adapter
    api.base_url = BASE_URL
    return client
