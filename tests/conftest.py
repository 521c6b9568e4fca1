"""Shared fixtures: the public samples, an isolated Airflow home, and release builders."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()

# Airflow reads its configuration when first imported, so the test home is set
# before any test module imports it. Tests never touch the developer's .airflow/.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="corpusforge-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.pop("CORPUSFORGE_OUTPUT_ROOT", None)
# Airflow puts the DAG bundle's folder on sys.path when it parses DAG files, which
# lets them import their shared `_factory` module; the tests do the same.
sys.path.insert(0, str(REPO_ROOT / "dags"))


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


@pytest.fixture(scope="session")
def reasoning_dir() -> Path:
    return require_shared("reasoning")


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate a SQLite metadata database in the test Airflow home, once per session."""
    import subprocess

    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return _AIRFLOW_HOME
