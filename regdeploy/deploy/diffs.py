"""What ``--diff`` shows for a file: a unified diff with every secret masked, or a summary.

config.yml holds the http secret, webhook headers and storage keys, htpasswd holds hashes and keys are keys:
none of them is ever shown. Certificates are summarised by subject, SANs and expiry.
"""

from __future__ import annotations

import difflib
from typing import Any

from regdeploy.deploy.files import RenderedFile
from regdeploy.materials.secrets import MASK, mask_url_query


def file_diff(new: RenderedFile, old: bytes | None) -> str:
    name = new.path.rsplit("/", 1)[-1]
    if name == "config.yml":
        return _unified(_masked_config(old), _masked_config(new.data), new.path)
    if name == "htpasswd":
        return _htpasswd_summary(old, new.data)
    if name.endswith(".key"):
        return "(private key: not shown)"
    if name.endswith(".crt"):
        return f"{_cert_summary(old)} -> {_cert_summary(new.data)}"
    return "(content not shown)" if new.secret else _unified(old, new.data, new.path)


def _unified(old: bytes | None, new: bytes | None, path: str) -> str:
    a = (old or b"").decode(errors="replace").splitlines(keepends=True)
    b = (new or b"").decode(errors="replace").splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, f"{path} (host)", f"{path} (wanted)", n=2))


def _masked_config(data: bytes | None) -> bytes | None:
    import yaml

    if data is None:
        return None
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError:
        return b"(unparseable config.yml: not shown)\n"
    if not isinstance(doc, dict):
        return b"(unexpected config.yml: not shown)\n"
    mask_config(doc)
    return yaml.safe_dump(doc, sort_keys=False).encode()


def mask_config(doc: dict[str, Any]) -> None:
    """Replace every secret in a parsed registry config, in place."""
    http = doc.get("http")
    if isinstance(http, dict) and "secret" in http:
        http["secret"] = MASK
    notifications = doc.get("notifications")
    endpoints = notifications.get("endpoints") if isinstance(notifications, dict) else None
    for endpoint in endpoints or []:
        if isinstance(endpoint, dict) and isinstance(endpoint.get("url"), str):
            endpoint["url"] = mask_url_query(endpoint["url"])
        headers = endpoint.get("headers") if isinstance(endpoint, dict) else None
        if isinstance(headers, dict):
            for key in headers:
                headers[key] = [MASK]
    storage = doc.get("storage")  # an object store's keys (s3: accesskey, secretkey)
    if isinstance(storage, dict):
        for driver in storage.values():
            if isinstance(driver, dict):
                for key in ("accesskey", "secretkey", "accountkey", "password"):
                    if key in driver:
                        driver[key] = MASK
    redis = doc.get("redis")
    if isinstance(redis, dict) and "password" in redis:
        redis["password"] = MASK
    proxy = doc.get("proxy")  # a pull-through cache's upstream credentials
    if isinstance(proxy, dict):
        for key in ("username", "password"):
            if key in proxy:
                proxy[key] = MASK


def _htpasswd_summary(old: bytes | None, new: bytes) -> str:
    from regdeploy.materials.htpasswd import parse

    before = {line.name: line.hashed for line in parse(old or b"")}
    after = {line.name: line.hashed for line in parse(new)}
    parts = [f"+{n}" for n in after if n not in before]
    parts += [f"-{n}" for n in before if n not in after]
    parts += [f"~{n} (password)" for n in after if n in before and before[n] != after[n]]
    return "users: " + (", ".join(parts) if parts else "unchanged")


def _cert_summary(data: bytes | None) -> str:
    if not data:
        return "(none)"
    from regdeploy import pki

    try:
        info = pki.cert_info(data)
    except Exception:
        return "(unreadable certificate)"
    return f"[{info.subject}; SANs {', '.join(info.sans) or '-'}; until {info.not_after:%Y-%m-%d}]"
