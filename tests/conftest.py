"""Shared by unit and integration tests. Keep it small: fixtures that need an engine live in
``tests/integration/conftest.py``; integration tests fail (never skip) when the engine is absent."""

from __future__ import annotations

import os

import regdeploy


def pytest_report_header() -> list[str]:
    return [
        f"regdeploy {regdeploy.__version__} from {os.path.dirname(regdeploy.__file__ or '?')}",
        f"docker engine: {os.environ.get('DOCKER_HOST') or 'unix:///var/run/docker.sock'}",
    ]
