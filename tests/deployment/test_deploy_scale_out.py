"""Scale-out: the same DAG on the CeleryExecutor with Redis as broker and two workers.

The scale-out scenario builds one release on the LocalExecutor, then the same
parameters in a run whose tasks all go to the CeleryExecutor (the scheduler loads
both executors), where two one-slot Celery workers share its shards.
"""

from __future__ import annotations

from typing import Any

import pytest
from deployment_scenarios import CELERY_WORKERS, SCALE_OUT_CONF, ScaleOut

from corpusforge.generators import store

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _hostnames(tis: list[dict[str, Any]], task_id: str) -> set[str]:
    return {ti["hostname"] for ti in tis if ti["task_id"] == task_id}


def test_celery_run_succeeds(scale_out: ScaleOut):
    assert scale_out.celery_run["state"] == "success"
    assert all(ti["state"] == "success" for ti in scale_out.celery_tis)
    assert {ti["executor"] for ti in scale_out.celery_tis} == {"CeleryExecutor"}
    assert {ti["executor"] for ti in scale_out.local_tis} <= {None, "LocalExecutor"}


def test_shards_of_one_run_use_both_workers(scale_out: ScaleOut):
    generate = [ti for ti in scale_out.celery_tis if ti["task_id"] == "generate"]
    assert len(generate) == 4
    assert _hostnames(scale_out.celery_tis, "generate") == set(CELERY_WORKERS)
    assert _hostnames(scale_out.local_tis, "generate").isdisjoint(CELERY_WORKERS)


def test_celery_release_matches_local_fingerprint(scale_out: ScaleOut, airflow_deployment):
    local, celery = scale_out.local_manifest, scale_out.celery_manifest
    assert celery["attempt"] != local["attempt"]
    assert celery["content_fingerprint"] == local["content_fingerprint"]
    assert celery["num_rows"] == 40
    release = airflow_deployment.output_root / "stephint" / SCALE_OUT_CONF["release"]
    assert store.verify_release(release) == []
