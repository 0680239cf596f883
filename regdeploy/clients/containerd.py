"""containerd: ``certs.d/<host>/hosts.toml`` (trust and mirrors) and the CRI's ``config_path``.

containerd looks up ``<config_path>/<registry host[:port]>/hosts.toml`` for each pull (``ctr
--hosts-dir DIR`` names the directory; the CRI plugin, which kubelet uses, reads ``config_path`` from
``/etc/containerd/config.toml``). The file names a ``server`` (the registry itself, tried last) and
``[host."URL"]`` entries tried first, in file order: a trusted registry is one entry with its ``ca``;
a mirror is an entry for the cache in front of its upstream's server.

regdeploy's hosts.toml files start with :data:`MARKER`; regdeploy reads back only those (a file
of anyone else is left alone). ``certs trust`` and ``clients mirror`` may share one file (an
upstream that is a registry of the same inventory): each adds and removes only its own entries,
and the file goes when no entry is left.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

MARKER = "# Written by regdeploy"
HEADER = (
    f"{MARKER} (certs trust / clients mirror): their --remove takes away the entries they added.\n"
    "# Edits here are overwritten.\n"
)
CAPABILITIES = ("pull", "resolve")
CONFIG_PATH_NOTE = "# set by regdeploy (certs trust --configure-containerd)"


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text)


@dataclass(frozen=True)
class Host:
    url: str  # scheme://host[:port]
    ca: str | None = None
    capabilities: tuple[str, ...] = CAPABILITIES


@dataclass(frozen=True)
class HostsToml:
    server: str
    hosts: tuple[Host, ...] = ()

    def with_host(self, host: Host, server: str | None = None) -> HostsToml:
        """*host* added (or replacing the entry for its URL); the server's own entry stays last, so
        mirrors are tried before the registry itself."""
        server = server or self.server
        hosts = [h for h in self.hosts if h.url != host.url] + [host]
        ordered = [h for h in hosts if h.url != server] + [h for h in hosts if h.url == server]
        return HostsToml(server, tuple(ordered))

    def without(self, urls: Iterable[str]) -> HostsToml | None:
        """The entries for *urls* taken out; None when none is left (the file goes)."""
        gone = set(urls)
        hosts = tuple(h for h in self.hosts if h.url not in gone)
        return replace(self, hosts=hosts) if hosts else None


def render(hosts: HostsToml) -> str:
    lines = [HEADER + f"server = {_q(hosts.server)}"]
    for h in hosts.hosts:
        body = [f"[host.{_q(h.url)}]", f"  capabilities = [{', '.join(_q(c) for c in h.capabilities)}]"]
        if h.ca is not None:
            body.append(f"  ca = {_q(h.ca)}")
        lines.append("\n".join(body))
    return "\n\n".join(lines) + "\n"


def is_ours(text: str) -> bool:
    return text.startswith(MARKER)


def parse(text: str) -> HostsToml | None:
    """A hosts.toml regdeploy wrote, read back; None for anyone else's file (or one edited beyond
    reading)."""
    if not is_ours(text):
        return None
    try:
        data = tomllib.loads(text)
        hosts = tuple(
            Host(str(url), None if entry.get("ca") is None else str(entry["ca"]),
                 tuple(str(c) for c in entry.get("capabilities", CAPABILITIES)))
            for url, entry in data.get("host", {}).items()
        )  # fmt: skip
        return HostsToml(str(data["server"]), hosts)
    except (tomllib.TOMLDecodeError, KeyError, AttributeError, TypeError):
        return None


def https(address: str) -> str:
    return f"https://{address}"


def trust_entry(address: str, ca_path: str) -> Host:
    return Host(https(address), ca_path)


# --- the CRI plugin's config_path in config.toml ---------------------------------------------------

# config.toml version -> the table holding the CRI plugin's registry settings.
_REGISTRY_TABLES: dict[int, tuple[str, ...]] = {
    1: ("plugins", "cri", "registry"),
    2: ("plugins", "io.containerd.grpc.v1.cri", "registry"),
    3: ("plugins", "io.containerd.cri.v1.images", "registry"),
}


def _registry_table(data: Mapping[str, Any]) -> tuple[tuple[str, ...], Mapping[str, Any]]:
    version = data.get("version", 1)
    path = _REGISTRY_TABLES.get(version if isinstance(version, int) else 1, _REGISTRY_TABLES[1])
    table: Any = data
    for key in path:
        table = table.get(key, {}) if isinstance(table, Mapping) else {}
    return path, table if isinstance(table, Mapping) else {}


def config_path_problem(text: str, certs_d: str) -> str | None:
    """Why the CRI plugin of this config.toml would not read *certs_d*; None when it does."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return f"is not valid TOML ({exc})"
    path, table = _registry_table(data)
    value = table.get("config_path")
    where = ".".join(_q(k) if "." in k else k for k in path)
    if not isinstance(value, str) or not value:
        return f"sets no {where}.config_path"
    if certs_d.rstrip("/") not in [p.rstrip("/") for p in value.split(":")]:
        return f"sets {where}.config_path = {_q(value)}, not {_q(certs_d)}"
    return None


def _header_key(line: str) -> tuple[str, ...] | None:
    """The key of a ``[table]`` header line (None for anything else), as TOML reads it."""
    stripped = line.strip()
    if not stripped.startswith("[") or stripped.startswith("[["):
        return None
    try:
        data: Any = tomllib.loads(stripped + "\n")
    except tomllib.TOMLDecodeError:
        return None
    key: list[str] = []
    while isinstance(data, dict) and len(data) == 1:
        name = next(iter(data))
        key.append(name)
        data = data[name]
    return tuple(key)


_ANY_HEADER = re.compile(r"^\s*\[")
_CONFIG_PATH_LINE = re.compile(r"^(\s*)config_path\s*=")


def set_config_path(text: str, certs_d: str) -> str:
    """*text* with the CRI plugin's ``config_path`` set to *certs_d*, every other setting as it was.

    Raises ValueError (one line) when that cannot be done safely: the result is read back and must
    differ from *text* in that one value only.
    """
    data = tomllib.loads(text)
    path, table = _registry_table(data)
    if table.get("mirrors") or table.get("configs"):
        raise ValueError(
            "it sets registry mirrors/configs, which containerd refuses next to config_path: "
            "move them to hosts.toml files first"
        )
    line = f"config_path = {_q(certs_d)}  {CONFIG_PATH_NOTE}"
    lines = text.splitlines()
    start = next((i for i, raw in enumerate(lines) if _header_key(raw) == path), None)
    if start is None:
        header = "[" + ".".join(_q(k) if "." in k else k for k in path) + "]"
        new = text.rstrip("\n") + f"\n\n{header}\n  {line}\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if _ANY_HEADER.match(lines[i])), len(lines))
        found = next((i for i in range(start + 1, end) if _CONFIG_PATH_LINE.match(lines[i])), None)
        if found is None:
            lines.insert(start + 1, f"  {line}")
        else:
            indent = _CONFIG_PATH_LINE.match(lines[found])
            assert indent is not None
            lines[found] = indent.group(1) + line
        new = "\n".join(lines) + "\n"
    _check_only_config_path(data, new, path, certs_d)
    return new


def _check_only_config_path(before: dict[str, Any], text: str, path: tuple[str, ...], certs_d: str) -> None:
    try:
        after = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"the edited file would not be valid TOML ({exc})") from None
    _, table = _registry_table(after)
    if table.get("config_path") != certs_d:
        raise ValueError("the edit would not set config_path where containerd reads it")

    def strip(data: Any, keys: tuple[str, ...]) -> Any:
        out = dict(data)
        if len(keys) == 0:
            out.pop("config_path", None)
            return out
        if keys[0] in out:
            out[keys[0]] = strip(out[keys[0]], keys[1:])
            if not out[keys[0]]:
                del out[keys[0]]
        return out

    if strip(before, path) != strip(after, path):
        raise ValueError("the edit would change more than config_path")
