"""The example consumer DAG: triggered by the `corpusforge_stephint` Asset on the real
deployment, and its checks run directly against tampered copies of a release."""

from __future__ import annotations

import json
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from deployment_helpers import AirflowDeployment
from deployment_scenarios import ScheduledRelease

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _consumer_results(deployment: AirflowDeployment, run_id: str) -> list[dict[str, Any]]:
    path = (
        f"/api/v2/dags/stephint_consumer/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        "/taskInstances/check_releases/xcomEntries/return_value?deserialize=true"
    )
    value = deployment.api("GET", path)["value"]
    return json.loads(value) if isinstance(value, str) else value


def test_consumer_checks_each_published_release(
    airflow_deployment: AirflowDeployment, scheduled_release: ScheduledRelease
):
    event = scheduled_release.event
    run = scheduled_release.consumer_run
    assert run["state"] == "success"
    assert run["run_type"] == "asset_triggered"
    results = {
        result["release"]: result
        for result in _consumer_results(airflow_deployment, run["dag_run_id"])
    }
    release = event["extra"]["release"]
    assert results[release]["rows"] == event["extra"]["rows"]
    assert results[release]["content_fingerprint"] == event["extra"]["content_fingerprint"]
    assert results[release]["sampled_rows"] == 5


@pytest.fixture
def release_copy(scheduled_release: ScheduledRelease, tmp_path: Path) -> tuple[Path, dict]:
    """Copy the scheduled release into a folder of its own, to tamper with it."""
    source = Path(scheduled_release.event["extra"]["path"]).resolve()
    copy = tmp_path / "release"
    shutil.copytree(source, copy)
    extra = {**scheduled_release.event["extra"], "path": str(copy)}
    return copy, extra


def test_check_release_accepts_intact_release(release_copy, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from stephint_consumer import check_release

    _, extra = release_copy
    result = check_release(extra)
    assert result["rows"] == extra["rows"]
    assert result["sampled_rows"] == 5


def test_check_release_rejects_event_row_mismatch(release_copy):
    from stephint_consumer import ReleaseCheckFailed, check_release

    _, extra = release_copy
    extra["rows"] = {"chains": {"train": 1}}
    with pytest.raises(ReleaseCheckFailed, match="the event lists rows"):
        check_release(extra)


def test_check_release_rejects_manifest_mismatch(release_copy):
    from stephint_consumer import ReleaseCheckFailed, check_release

    copy, extra = release_copy
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][0]["rows"] += 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ReleaseCheckFailed, match="the manifest lists"):
        check_release(extra)


def test_check_release_missing_shard_file(release_copy):
    copy, extra = release_copy
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / manifest["shards"][0]["path"]).unlink()
    from stephint_consumer import check_release

    with pytest.raises(FileNotFoundError):
        check_release(extra)
