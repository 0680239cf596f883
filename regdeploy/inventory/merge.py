"""Layering variables: top-level keys replace (Ansible's hash_behaviour=replace), except ``registry``.

``registry`` is deep-merged: mappings merge key by key, recursively; lists and scalars replace.
Alongside the value we keep ``origins``: for every dotted path under ``registry`` (mappings and
leaves; a list is a leaf) the file whose value is in force. A mapping's origin is the last file
that wrote into it. When a value is replaced, the origins of everything under it are dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from regdeploy.inventory.raw import VarsChunk

REGISTRY = "registry"


def layer_vars(layers: Iterable[VarsChunk]) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge ``layers`` (lowest precedence first) into (variables, registry origins)."""
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.values.items():
            if key == REGISTRY and key in merged:
                merged[key] = _merge(merged[key], value, key, layer.origin, origins)
            else:
                # Copies keep hosts independent: they share the parsed data otherwise.
                merged[key] = copy.deepcopy(value)
                if key == REGISTRY:
                    _record(value, key, layer.origin, origins)
    return merged, origins


def _merge(base: Any, overlay: Any, path: str, origin: str, origins: dict[str, str]) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        result = dict(base)
        for key, value in overlay.items():
            child = f"{path}.{key}"
            if key in result:
                result[key] = _merge(result[key], value, child, origin, origins)
            else:
                result[key] = copy.deepcopy(value)
                _record(value, child, origin, origins)
        origins[path] = origin
        return result
    _forget(path, origins)
    _record(overlay, path, origin, origins)
    return copy.deepcopy(overlay)


def _record(value: Any, path: str, origin: str, origins: dict[str, str]) -> None:
    origins[path] = origin
    if isinstance(value, dict):
        for key, child in value.items():
            _record(child, f"{path}.{key}", origin, origins)


def _forget(path: str, origins: dict[str, str]) -> None:
    prefix = path + "."
    for key in [k for k in origins if k == path or k.startswith(prefix)]:
        del origins[key]
