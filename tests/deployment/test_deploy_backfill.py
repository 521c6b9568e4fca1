"""Scheduled runs and `airflow backfill create` on the real deployment.

The backfill scenario backfills three weekly dates, backfills them again with
`--reprocess-behavior completed`, then once more with reprocess_behavior "none".
Every test reads the outcome.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow.parquet as pq
import pytest
from deployment_scenarios import BACKFILL_DATES, Backfills, ScheduledRelease

from corpusforge.generators import store
from corpusforge.generators.publish import read_latest
from corpusforge.generators.stephint.builder import DEFAULT_SYNTHETIC_COUNT

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def test_scheduled_run_keyed_by_its_date(scheduled_release: ScheduledRelease, airflow_deployment):
    run = scheduled_release.run
    assert run["state"] == "success"
    release = run["logical_date"][:10]
    manifest = store.load_manifest(airflow_deployment.output_root / "stephint" / release)
    assert manifest["run"]["run_id"] == run["dag_run_id"]
    assert manifest["reference_date"] == release
    assert manifest["num_rows"] == DEFAULT_SYNTHETIC_COUNT
    assert scheduled_release.latest == release


def test_backfill_publishes_one_release_per_date(backfills: Backfills):
    assert sorted(run["logical_date"][:10] for run in backfills.first_runs) == BACKFILL_DATES
    assert all(run["state"] == "success" for run in backfills.first_runs)
    for date in BACKFILL_DATES:
        manifest = backfills.first[date]
        assert manifest["release"] == date
        assert manifest["reference_date"] == date
        assert manifest["run"]["run_id"].startswith("backfill__" + date)
        assert manifest["splits"] == {"chains": {"train": 20}}
        assert len(manifest["shards"]) == 2
    seeds = {backfills.first[date]["seed"] for date in BACKFILL_DATES}
    assert len(seeds) == len(BACKFILL_DATES)


def test_reprocess_gives_same_fingerprint(backfills: Backfills):
    for date in BACKFILL_DATES:
        first, second = backfills.first[date], backfills.second[date]
        assert second["content_fingerprint"] == first["content_fingerprint"], date
        assert second["attempt"] != first["attempt"], date
        assert second["run"]["run_id"] == first["run"]["run_id"], date


def test_reprocess_leaves_no_duplicate_rows(backfills: Backfills, airflow_deployment):
    dataset_dir = airflow_deployment.output_root / "stephint"
    for date in BACKFILL_DATES:
        release = dataset_dir / date
        assert store.verify_release(release) == []
        ids = pq.read_table(release / "data" / "chains", columns=["id"]).column("id").to_pylist()
        assert len(ids) == 20, date
        assert len(set(ids)) == 20, date
    attempts = [path.name for path in (dataset_dir / ".releases").iterdir()]
    for date in BACKFILL_DATES:
        # The replaced attempt folder is removed when the link moves.
        assert [name for name in attempts if name.startswith(date + ".")] == [
            backfills.second[date]["attempt"]
        ]


def test_backfill_of_past_dates_keeps_latest(
    backfills: Backfills, scheduled_release: ScheduledRelease, airflow_deployment
):
    dataset_dir = airflow_deployment.output_root / "stephint"
    latest_release = scheduled_release.latest
    assert latest_release == scheduled_release.run["logical_date"][:10]
    assert read_latest(dataset_dir) == latest_release
    latest = store.load_manifest(dataset_dir / latest_release)
    for date in BACKFILL_DATES:
        assert backfills.second[date]["run"]["ordered_at"] < latest["run"]["ordered_at"]


def _interval(ti: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.fromisoformat(ti["start_date"]), dt.datetime.fromisoformat(ti["end_date"])


def test_concurrent_runs_use_separate_staging(backfills: Backfills, airflow_deployment):
    # The three runs must have overlapped, or this test would prove nothing.
    runs = list(backfills.first_task_instances.values())
    overlapping = 0
    for i, left in enumerate(runs):
        for right in runs[i + 1 :]:
            for a in left:
                for b in right:
                    (a_start, a_end), (b_start, b_end) = _interval(a), _interval(b)
                    overlapping += a_start < b_end and b_start < a_end
    assert overlapping > 0, "the backfill runs never ran tasks at the same time"

    attempts = [backfills.first[date]["attempt"] for date in BACKFILL_DATES]
    assert len(set(attempts)) == len(BACKFILL_DATES)
    for date, attempt in zip(BACKFILL_DATES, attempts, strict=True):
        assert attempt.startswith(date + ".")
    hashes = [
        shard["sha256"] for date in BACKFILL_DATES for shard in backfills.first[date]["shards"]
    ]
    assert len(set(hashes)) == len(hashes)
    # Runs of other scenarios may still be staging their own releases.
    staging_dir = airflow_deployment.output_root / "stephint" / ".staging"
    left = [path.name for path in staging_dir.iterdir() if path.name[:10] in BACKFILL_DATES]
    assert left == []


def test_backfill_over_existing_dates_creates_nothing(backfills: Backfills):
    before, after = backfills.existing_runs_before, backfills.existing_runs_after
    assert len(before) == len(BACKFILL_DATES)
    assert after.keys() == before.keys()
    for run_id, run in after.items():
        assert run["end_date"] == before[run_id]["end_date"], run_id
    assert backfills.existing_created["reprocess_behavior"] == "none"
    for date in BACKFILL_DATES:
        assert backfills.existing_manifests[date]["attempt"] == backfills.second[date]["attempt"]


def test_task_log_shows_shard_progress(backfills: Backfills, airflow_deployment):
    run = backfills.first_runs[0]
    text = airflow_deployment.task_log("stephint", run["dag_run_id"], "generate", map_index=1)
    assert "shard 2 of 2: generating chains/train" in text
    assert "rows/s" in text
    assert "run progress:" in text
    assert "left for one worker" in text
