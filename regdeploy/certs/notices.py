"""Warnings about a host's TLS set-up that do not stop a run, but that someone must act on."""

from __future__ import annotations

from urllib.parse import urlsplit

from regdeploy.certs.material import TlsMaterial
from regdeploy.spec.registry import RegistrySpec


def tls_warnings(spec: RegistrySpec, material: TlsMaterial | None) -> list[str]:
    """What to tell the user about ``spec``'s TLS beyond errors: insecure mode, CA expiry, ACME port."""
    out: list[str] = []
    mode = spec.tls.mode
    if mode == "none":
        out.append(
            "tls.mode none: the registry serves plain HTTP; passwords and images cross the network "
            "unencrypted, and every Docker client must list it under insecure-registries"
        )
    if mode == "letsencrypt":
        # An external_url on 443 means something forwards 443 to the registry: trust it does.
        forwarded = spec.tls.external_url is not None and urlsplit(spec.tls.external_url).port in (None, 443)
        if spec.port != 443 and not forwarded:
            out.append(
                f"tls.mode letsencrypt: Let's Encrypt checks the host names on port 443 (TLS-ALPN-01), "
                f"but the registry is published on {spec.port}: publish it on 443 or forward 443 to it"
            )
    if material is not None:
        out += material.warnings
    return out
