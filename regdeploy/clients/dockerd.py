"""Docker: ``registry-mirrors`` in ``/etc/docker/daemon.json``, which applies to Docker Hub only.

dockerd reads daemon.json when it starts and on SIGHUP (``registry-mirrors`` is reloadable). The
other keys of the file are kept as they are; regdeploy adds and removes only its own mirror URLs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# The names Docker Hub goes by in a proxy's remoteurl.
HUB_HOSTS = ("registry-1.docker.io", "docker.io", "index.docker.io", "registry.hub.docker.com")
KEY = "registry-mirrors"
RELOAD = (
    "dockerd reads registry-mirrors on reload: `systemctl reload docker` (or `kill -HUP $(pidof dockerd)`)"
)


def load(text: str | None) -> dict[str, Any]:
    """daemon.json's object ({} when there is no file); ValueError (one line) when it is not one."""
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError("is not a JSON object")
    if not isinstance(data.get(KEY, []), list):
        raise ValueError(f"has {KEY} that is not a list")
    return data


def dump(data: dict[str, Any]) -> str | None:
    """The file's text; None when nothing is left in it (the file goes)."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n" if data else None


def add_mirrors(data: dict[str, Any], urls: Iterable[str]) -> dict[str, Any]:
    out = dict(data)
    mirrors = list(out.get(KEY, []))
    mirrors += [u for u in urls if u not in mirrors]
    out[KEY] = mirrors
    return out


def remove_mirrors(data: dict[str, Any], urls: Iterable[str]) -> dict[str, Any]:
    out = dict(data)
    if KEY not in out:
        return out
    gone = set(urls)
    mirrors = [m for m in out[KEY] if m not in gone]
    if mirrors:
        out[KEY] = mirrors
    else:
        del out[KEY]
    return out
