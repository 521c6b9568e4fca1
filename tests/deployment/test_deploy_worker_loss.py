"""A Celery worker killed with SIGKILL while it runs a shard of a CeleryExecutor run.

The worker-loss scenario runs after the scale-out scenario on the same two one-slot
workers. It stops the task process of a running generate shard, kills the worker's
process group and the task's own process group, and waits for the run. Nothing is
left to report the try's end, so the scheduler fails it once its heartbeat is older
than TASK_INSTANCE_HEARTBEAT_TIMEOUT, and the DAG's retry runs on the other worker.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from deployment_scenarios import CELERY_WORKERS, SCALE_OUT_CONF, WorkerLoss

from corpusforge.generators import store

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _surviving_worker(worker_loss: WorkerLoss) -> str:
    (survivor,) = set(CELERY_WORKERS) - {worker_loss.killed_worker}
    return survivor


def test_killed_worker_leaves_no_process(worker_loss: WorkerLoss):
    assert worker_loss.killed_worker in CELERY_WORKERS
    assert worker_loss.survivors == []


def test_lost_try_fails_on_heartbeat_timeout(worker_loss: WorkerLoss):
    assert len(worker_loss.heartbeat_timeouts) == 1
    event = worker_loss.heartbeat_timeouts[0]
    assert event["task_id"] == "generate"
    assert event["map_index"] == worker_loss.killed_map_index
    assert event["try_number"] == worker_loss.killed_try_number


def test_lost_shard_is_retried_on_other_worker(worker_loss: WorkerLoss):
    assert worker_loss.run["state"] == "success"
    lost, *retries = worker_loss.tries
    assert lost["try_number"] == worker_loss.killed_try_number
    assert lost["hostname"] == worker_loss.killed_worker
    assert lost["state"] in ("failed", "up_for_retry")
    assert retries, "the lost try was never retried"
    final = retries[-1]
    assert final["try_number"] > 1
    assert final["state"] == "success"
    assert final["hostname"] == _surviving_worker(worker_loss)
    assert final["executor"] == "CeleryExecutor"


def test_run_after_worker_loss_finishes_in_time(worker_loss: WorkerLoss):
    # Heartbeat timeout (15 s), its detection interval (5 s), the retry delay (10 s),
    # then the retry, validate and publish on one worker.
    assert worker_loss.seconds_to_finish < 90


def test_release_after_worker_loss_matches_local(worker_loss: WorkerLoss):
    tis = worker_loss.generate_tis
    assert sorted(ti["map_index"] for ti in tis) == list(range(4))
    assert all(ti["state"] == "success" for ti in tis)

    manifest = worker_loss.manifest
    assert manifest["content_fingerprint"] == worker_loss.local_fingerprint
    assert len(manifest["shards"]) == 4
    assert manifest["num_rows"] == 40
    assert store.verify_release(worker_loss.release) == []
    # The killed try left its partial files in staging; none reach the release.
    assert list(worker_loss.release.rglob("*.tmp")) == []
    ids = pq.read_table(worker_loss.release / "data" / "chains", columns=["id"])
    assert ids.num_rows == 40
    assert len(set(ids.column("id").to_pylist())) == 40


def test_release_after_worker_loss_uses_scale_out_params(worker_loss: WorkerLoss):
    manifest = worker_loss.manifest
    assert manifest["release"] == SCALE_OUT_CONF["release"]
    assert manifest["seed"] == SCALE_OUT_CONF["seed"]
