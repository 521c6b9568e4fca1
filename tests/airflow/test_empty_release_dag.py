"""A DAG run whose sources give no rows fails in validate, without retries or a release."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpusforge.generators import store

pytestmark = pytest.mark.airflow

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


def test_empty_release_fails_validate(airflow_db, tmp_path: Path):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState, TaskInstanceState

    source = tmp_path / "qa.jsonl"
    source.write_text('{"q": "1 + 1?", "a": "#### 2"}\n')
    dag = DagBag(dag_folder=str(DAGS_FOLDER / "stephint.py")).dags["stephint"]

    dag_run = dag.test(
        logical_date=None,
        run_conf={"output_root": str(tmp_path / "out"), "sources": [f"gsm8k:{source}"]},
    )
    states = {ti.task_id: ti for ti in dag_run.get_task_instances()}

    assert dag_run.state == DagRunState.FAILED
    assert states["validate"].state == TaskInstanceState.FAILED
    assert states["validate"].try_number == 1
    assert states["publish"].state != TaskInstanceState.SUCCESS
    assert store.list_releases(tmp_path / "out", "stephint") == []
