"""Helpers shared by test modules: the public samples and local services."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_shared(*parts: str) -> Path:
    """Return a path under ../shared/data, skipping (or failing in CI) when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"public sample {path} is not available"
        if in_ci():
            pytest.fail(message + " (CI=true requires it)")
        pytest.skip(message)
    return path


def service_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
