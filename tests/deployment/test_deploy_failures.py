"""Bad situations on the real deployment: failed shards, killed tasks, a restarted
scheduler, and PostgreSQL unreachable at start."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from deployment_helpers import (
    AIRFLOW_BIN,
    POSTGRES_HOST,
    AirflowDeployment,
    DeploymentError,
    base_environment,
    free_port,
)
from deployment_scenarios import KILLED_CONF, RESTART_CONF, KilledShard, RestartedRun

from corpusforge.generators import store
from corpusforge.generators.pipeline import (
    BuildParams,
    RunInfo,
    generate_shard,
    load_plan,
    plan_release,
)
from corpusforge.generators.publish import publish_release

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _release_fingerprint(root: Path, conf: dict) -> str:
    """Build `conf` in this process, without Airflow, and return its content fingerprint."""
    from corpusforge.data_contracts import validate_staging

    staging = plan_release(
        BuildParams(
            dataset="stephint",
            release=conf["release"],
            seed=conf["seed"],
            output_root=str(root),
            sources=conf["sources"],
            shard_size=conf["shard_size"],
        ),
        RunInfo(run_id="reference"),
    )
    for index in range(len(load_plan(staging)["shards"])):
        generate_shard(staging, index)
    validate_staging(staging)
    return publish_release(staging).content_fingerprint


def test_killed_shard_is_retried_with_same_fingerprint(
    killed_shard_run: KilledShard, airflow_deployment: AirflowDeployment, tmp_path: Path
):
    assert killed_shard_run.run["state"] == "success"
    assert killed_shard_run.retried_ti["try_number"] == 2
    manifest = killed_shard_run.manifest
    assert manifest["num_rows"] == 1500
    release = airflow_deployment.output_root / "stephint" / KILLED_CONF["release"]
    assert store.verify_release(release) == []
    # The retry removes the temporary files that the killed attempt left behind.
    assert list(release.rglob("*.tmp")) == []
    assert manifest["content_fingerprint"] == _release_fingerprint(tmp_path, KILLED_CONF)


def test_failed_shard_reports_shard_reason_and_staging(
    killed_shard_run: KilledShard, airflow_deployment: AirflowDeployment
):
    # Clearing the shard of a published run finds its staging folder gone: the shard
    # fails at once (the error is not retryable) and the failure callback reports it.
    release = airflow_deployment.output_root / "stephint" / "killed-shard"
    manifest = killed_shard_run.manifest
    staging = airflow_deployment.output_root / "stephint" / ".staging" / manifest["attempt"]
    assert killed_shard_run.cleared_ti["try_number"] == 3
    assert len(killed_shard_run.alerts) == 1
    alert = killed_shard_run.alerts[0]
    assert alert["task_id"] == "generate"
    assert alert["map_index"] == 0
    assert alert["shard"] == "1 of 1"
    assert alert["staging"] == str(staging)
    assert "ConfigError" in alert["reason"]
    assert "no plan.json" in alert["reason"]
    assert "shard 1 of 1" in killed_shard_run.cleared_log
    assert f"staging folder {staging}" in killed_shard_run.cleared_log

    # The published release is untouched.
    assert killed_shard_run.manifest_after_clear["attempt"] == manifest["attempt"]
    assert store.verify_release(release) == []


def test_scheduler_restart_mid_run(restarted_run: RestartedRun, airflow_deployment):
    assert restarted_run.state_at_restart == "running"
    assert restarted_run.run["state"] == "success"
    tis = restarted_run.generate_tis
    assert sorted(ti["map_index"] for ti in tis) == list(range(4))
    assert all(ti["state"] == "success" for ti in tis)
    release = airflow_deployment.output_root / "stephint" / RESTART_CONF["release"]
    manifest = store.load_manifest(release)
    assert len(manifest["shards"]) == 4
    assert manifest["num_rows"] == 40
    assert store.verify_release(release) == []
    ids = pq.read_table(release / "data" / "chains", columns=["id"]).column("id").to_pylist()
    assert len(set(ids)) == 40


def test_unreachable_postgres_fails_before_home_exists(tmp_path: Path):
    closed_port = free_port()
    started = time.monotonic()
    with pytest.raises(DeploymentError) as raised:
        AirflowDeployment.create(tmp_path, "corpusforge_test_missing", port=closed_port)
    message = str(raised.value)
    assert f"{POSTGRES_HOST}:{closed_port}" in message
    assert "unreachable" in message
    assert "Start PostgreSQL" in message
    assert time.monotonic() - started < 30
    assert list(tmp_path.iterdir()) == []


def test_airflow_migrate_names_unreachable_postgres(tmp_path: Path):
    closed_port = free_port()
    home = tmp_path / "home"
    env = base_environment(home, "", tmp_path / "published")
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
        f"postgresql+psycopg2://postgres@{POSTGRES_HOST}:{closed_port}/corpusforge_test_missing"
    )
    result = subprocess.run(
        [str(AIRFLOW_BIN), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    last_line = [line for line in output.splitlines() if "OperationalError" in line][-1]
    assert f'"{POSTGRES_HOST}", port {closed_port} failed: Connection refused' in last_line


def _context(task_id: str, op_kwargs: dict, error: Exception | None) -> dict:
    ti = SimpleNamespace(
        dag_id="stephint", run_id="run-1", task_id=task_id, map_index=-1, try_number=3
    )
    context = {"ti": ti, "task": SimpleNamespace(op_kwargs=op_kwargs)}
    if error is not None:
        context["exception"] = error
    return context


def test_failure_report_of_validate_names_staging():
    from _factory import failure_report

    shards = [{"staging": "/out/stephint/.staging/r1.a", "index": 0, "num_shards": 2}]
    report = failure_report(_context("validate", {"shards": shards}, ValueError("bad row")))
    assert report["staging"] == "/out/stephint/.staging/r1.a"
    assert report["shard"] is None
    assert report["reason"] == "ValueError: bad row"


def test_failure_report_of_plan_without_staging():
    from _factory import failure_report

    report = failure_report(_context("plan", {}, None))
    assert report["staging"] is None
    assert report["reason"] == "unknown"


def test_failing_alert_hook_is_logged_not_raised(monkeypatch, caplog):
    from _factory import ALERT_CALLBACK_ENV, on_task_failure

    monkeypatch.setenv(ALERT_CALLBACK_ENV, "json:no_such_function")
    context = _context("generate", {"staging": "/s", "index": 1, "num_shards": 4}, OSError("disk"))
    on_task_failure(context)
    assert "shard 2 of 4" in caplog.text
    assert "reason OSError: disk" in caplog.text
    assert "alert hook" in caplog.text
