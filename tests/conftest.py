"""Shared fixtures: the public samples, an isolated Airflow home, and release builders."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Test modules import these helpers from `testsupport`: `import conftest` is
# ambiguous when several test folders have a conftest.py.
from testsupport import REPO_ROOT, SHARED_DATA, in_ci, require_shared, service_reachable  # noqa: E402,F401

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
