"""The name of regdeploy's own sidecar image, cheap enough for every run's facts.

The tag says what is inside: regdeploy's version and a digest of its package source, its
templates, the Python that runs it and the versions of its dependencies. A changed regdeploy gives
a new tag (``up`` then builds and rolls it out); an unchanged one finds the image already there.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
from pathlib import Path

import regdeploy

SIDECAR_REPOSITORY = "regdeploy-sidecar"


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """sha256 over the package's .py files, the templates and the runtime versions (a few ms)."""
    from regdeploy.deploy.templates import builtin_templates_dir

    h = hashlib.sha256()
    h.update(f"python {sys.version}\0".encode())
    package = Path(regdeploy.__file__).resolve().parent
    for root in (package, builtin_templates_dir()):
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(f"{path.relative_to(root)}\0".encode())
            h.update(path.read_bytes())
    # The installed distributions' names and versions, from their dist-info directory names
    # (importlib.metadata would cost more than the rest of an idempotent run).
    for entry in sys.path:
        with contextlib.suppress(OSError):
            for name in sorted(os.listdir(entry or ".")):
                if name.endswith(".dist-info"):
                    h.update(f"{name}\0".encode())
    return h.hexdigest()


def default_sidecar_ref() -> str:
    return f"{SIDECAR_REPOSITORY}:{regdeploy.__version__}-{source_digest()[:12]}"
