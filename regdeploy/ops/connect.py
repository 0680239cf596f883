"""How the command line's connection options reach the transports: as host variables of every host."""

from __future__ import annotations

from typing import Any

from regdeploy.transport.hostvars import VAR_ACCEPT_NEW, VAR_CLI_TIMEOUT


def connect_vars(connect_timeout: float | None, accept_new_host_keys: bool) -> dict[str, Any]:
    """``--timeout`` and ``--accept-new-host-keys`` as host variables, for ``prepare(connect=...)``."""
    out: dict[str, Any] = {}
    if connect_timeout is not None:
        out[VAR_CLI_TIMEOUT] = connect_timeout
    if accept_new_host_keys:
        out[VAR_ACCEPT_NEW] = True
    return out
