"""``inventory``: regdeploy's view of an inventory, each `registry:` value with the file that set it.

Contacts no host and resolves no secret: references stay as written, literal secrets are masked as
plans mask them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

CONNECTION = ("ansible_connection", "ansible_user", "ansible_host", "ansible_port")


def listing(inventory: Path | None, limit: str | None) -> dict[str, Any]:
    """``regdeploy inventory --json``'s object: per registry host its groups, connection variables,
    masked `registry:` and the origin of each value; the other selected hosts; the load's warnings."""
    from regdeploy.inventory import load_inventory

    inv = load_inventory(inventory)
    selected = inv.select(limit)
    registries = [h for h in selected if "registry" in h.vars]
    return {
        "source": inv.source,
        "hosts": {
            h.name: {
                "groups": [g for g in h.groups if g != "all"],
                "connection": {k: _plain(h.vars[k]) for k in CONNECTION if k in h.vars},
                "registry": _plain(_masked(copy.deepcopy(h.vars["registry"]))),
                "origins": {p: _origin(p, h.origins, inv.source) for p, _ in leaves(h.vars["registry"])},
            }
            for h in registries
        },
        "other_hosts": [h.name for h in selected if "registry" not in h.vars],
        "warnings": list(inv.warnings),
    }


def leaves(value: Any, path: str = "registry") -> Iterator[tuple[str, Any]]:
    """Each mapping key down to a value that is not a mapping (lists are values, as merging treats
    them); a secret reference ({env: ...}) is one value."""
    if isinstance(value, Mapping) and value and not _is_reference(value):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}")
    else:
        yield path, value


def _is_reference(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)) in ("env", "file")


def _origin(path: str, origins: Mapping[str, str], fallback: str) -> str:
    # The nearest recorded ancestor (a whole mapping set in one file records only its top), found
    # as error messages find it.
    from regdeploy.spec.validate import Where

    return Where("", path, origins, fallback).source()


def _masked(registry: Any) -> Any:
    """Literal secrets an inventory may hold, masked as in plans: http_secret, inline passwords,
    webhook header values and URL query values (tokens). References ({env: ...}) and vaulted
    placeholders stay as they are. Changes *registry* in place."""
    from regdeploy.materials.secrets import MASK, mask_url_query

    if not isinstance(registry, dict):
        return registry
    if isinstance(registry.get("http_secret"), str):
        registry["http_secret"] = MASK
    auth = registry.get("auth")
    for user in auth.get("users") or [] if isinstance(auth, dict) else []:
        if isinstance(user, dict) and isinstance(user.get("password"), str):
            user["password"] = MASK
    notifications = registry.get("notifications")
    for endpoint in notifications.get("endpoints") or [] if isinstance(notifications, dict) else []:
        if not isinstance(endpoint, dict):
            continue
        if isinstance(endpoint.get("url"), str):
            endpoint["url"] = mask_url_query(endpoint["url"])
        headers = endpoint.get("headers")
        if isinstance(headers, dict):
            for name, value in headers.items():
                if isinstance(value, str):
                    headers[name] = MASK
    return registry


def _plain(value: Any) -> Any:
    """JSON-ready: vaulted values as their placeholder text, nothing else changed."""
    return json.loads(json.dumps(value, default=str))
