"""k3s: ``/etc/rancher/k3s/registries.yaml``, which k3s turns into its containerd's settings at start.

regdeploy merges its entries into the file and keeps everything else in it (others' ``configs``,
``auth``, ``mirrors``): ``configs."HOST:PORT".tls.ca_file`` for trust, an endpoint in
``mirrors."UPSTREAM".endpoint`` for a mirror. The file is rewritten from its data, so comments would be
lost: a file with comments is left alone (:func:`load` says so). Written 0600: it often holds
registry passwords. k3s reads it only when it starts: ``systemctl restart k3s`` (``k3s-agent`` on agents).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

RESTART = "k3s reads registries.yaml when it starts: `systemctl restart k3s` (or k3s-agent)"
_COMMENT = re.compile(r"(^|\s)#")


def load(text: str | None) -> dict[str, Any]:
    """registries.yaml's mapping ({} when there is none); ValueError (one line) when regdeploy should
    not rewrite it."""
    if text is None or not text.strip():
        return {}
    if any(_COMMENT.search(line) for line in text.splitlines()):
        raise ValueError("has comments, which rewriting it would drop")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"is not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or any(
        not isinstance(data.get(k) or {}, dict) for k in ("configs", "mirrors")
    ):
        raise ValueError("is not a mapping with `configs` and `mirrors` mappings")
    return data


def dump(data: dict[str, Any]) -> str | None:
    """The file's text; None when nothing is left in it (the file goes)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False) if data else None


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    return dict(data.get(key) or {})


def add_ca(data: dict[str, Any], address: str, ca_file: str) -> dict[str, Any]:
    out = dict(data)
    configs = _section(out, "configs")
    entry = dict(configs.get(address) or {})
    tls = dict(entry.get("tls") or {})
    tls["ca_file"] = ca_file
    entry["tls"] = tls
    configs[address] = entry
    out["configs"] = configs
    return out


def remove_ca(data: dict[str, Any], address: str, ca_file: str) -> dict[str, Any]:
    """The ``ca_file`` regdeploy set for *address* taken out (another one stays); emptied entries go."""
    configs = _section(data, "configs")
    entry = dict(configs.get(address) or {})
    tls = dict(entry.get("tls") or {})
    if tls.get("ca_file") != ca_file:
        return data
    del tls["ca_file"]
    return _set(data, "configs", address, entry, "tls", tls)


def add_endpoint(data: dict[str, Any], upstream: str, endpoints: Iterable[str]) -> dict[str, Any]:
    out = dict(data)
    mirrors = _section(out, "mirrors")
    entry = dict(mirrors.get(upstream) or {})
    current = list(entry.get("endpoint") or [])
    current += [e for e in endpoints if e not in current]
    entry["endpoint"] = current
    mirrors[upstream] = entry
    out["mirrors"] = mirrors
    return out


def remove_endpoint(data: dict[str, Any], upstream: str, endpoints: Iterable[str]) -> dict[str, Any]:
    mirrors = _section(data, "mirrors")
    entry = dict(mirrors.get(upstream) or {})
    current = list(entry.get("endpoint") or [])
    gone = set(endpoints)
    if not gone & set(current):
        return data
    left = [e for e in current if e not in gone]
    return _set(data, "mirrors", upstream, entry, "endpoint", left)


def _set(data: dict[str, Any], section: str, name: str, entry: dict[str, Any], key: str,
         value: Any) -> dict[str, Any]:  # fmt: skip
    """*data* with ``section.name.key = value``, dropping each level that ends up empty."""
    out = dict(data)
    entry = dict(entry)
    if value:
        entry[key] = value
    else:
        entry.pop(key, None)
    items = _section(out, section)
    if entry:
        items[name] = entry
    else:
        items.pop(name, None)
    if items:
        out[section] = items
    else:
        out.pop(section, None)
    return out
