"""Every DAG imports cleanly and runs end to end through real Airflow (`dag.test()`)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

from corpusforge.generators import store

pytestmark = pytest.mark.airflow

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
EXPECTED_DAGS = {"stephint", "stephint_consumer", "med_mim", "mllmu_med"}
# DAGs that consume releases instead of building one, so they have no build tasks.
CONSUMER_DAGS = {"stephint_consumer"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED_DAGS


def test_dag_shape(dagbag):
    for dag_id in EXPECTED_DAGS - CONSUMER_DAGS:
        dag = dagbag.dags[dag_id]
        assert [task.task_id for task in dag.topological_sort()] == [
            "plan",
            "generate",
            "validate",
            "publish",
        ]
        assert dag.catchup is False
        shared = ("release", "seed", "output_root", "sources", "limit", "shard_size")
        for name in (*shared, "max_generate_tasks"):
            assert name in dag.params, f"{dag_id} lacks the shared parameter {name}"
            assert dag.params.get_param(name).description


def test_stephint_param_defaults_match_builder(dagbag):
    from corpusforge.generators.registry import get_builder

    params = dagbag.dags["stephint"].params
    for name, value in get_builder("stephint").default_options().items():
        assert params[name] == value, name


def _run(dag, tmp_path: Path, logical_date, **conf):
    from airflow.utils.state import DagRunState

    conf = {"output_root": str(tmp_path), **conf}
    dag_run = dag.test(logical_date=logical_date, run_conf=conf)
    assert dag_run.state == DagRunState.SUCCESS
    return dag_run


def test_stephint_manual_run_without_logical_date(dagbag, airflow_db, tmp_path: Path):
    dag = dagbag.dags["stephint"]
    dag_run = _run(dag, tmp_path, None, sources=["synthetic_math:?count=40"], shard_size=15, seed=3)
    releases = store.list_releases(tmp_path, "stephint")
    assert len(releases) == 1
    assert releases[0].release.startswith("manual")
    manifest = store.load_manifest(releases[0].path)
    assert manifest["num_rows"] == 40
    assert len(manifest["shards"]) == 3
    assert manifest["run"]["run_id"] == dag_run.run_id
    assert manifest["run"]["logical_date"] is None


def test_stephint_scheduled_run_keys_release_by_date(dagbag, airflow_db, tmp_path: Path):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    dag = dagbag.dags["stephint"]
    logical_date = dt.datetime(2025, 2, 3, tzinfo=dt.UTC)
    _run(dag, tmp_path, logical_date, sources=["synthetic_math:?count=20"])
    release = tmp_path / "stephint" / "2025-02-03"
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["reference_date"] == "2025-02-03"

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .filter(AssetEvent.source_dag_id == "stephint")
            .order_by(AssetEvent.id.desc())
            .all()
        )
    extras = [event.extra for event in events if event.extra.get("path") == str(release)]
    assert extras, "publish emitted no Asset event for this release"
    assert extras[0]["content_fingerprint"] == manifest["content_fingerprint"]
    assert extras[0]["rows"] == {"chains": {"train": 20}}


def test_bad_source_fails_run_without_release(dagbag, airflow_db, tmp_path: Path):
    from airflow.utils.state import DagRunState

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1?", "answer": "#### 2"}\n{not json\n')
    dag = dagbag.dags["stephint"]
    dag_run = dag.test(
        logical_date=None,
        run_conf={"output_root": str(tmp_path / "out"), "sources": [f"gsm8k:{bad}"]},
    )
    assert dag_run.state == DagRunState.FAILED
    assert store.list_releases(tmp_path / "out", "stephint") == []


def test_stephint_run_publishes_to_store(dagbag, airflow_db):
    import uuid

    import fsspec
    from upath import UPath

    # dag.test runs every task in this process, so fsspec's in-process memory
    # store serves as an object store without links or renames.
    root = f"memory://cf-dag-{uuid.uuid4().hex[:12]}/out"
    try:
        from airflow.utils.state import DagRunState

        conf = {
            "output_root": root,
            "release": "store1",
            "shard_size": 10,
            "sources": ["synthetic_math:?count=25"],
        }
        dag_run = dagbag.dags["stephint"].test(logical_date=None, run_conf=conf)
        assert dag_run.state == DagRunState.SUCCESS
        releases = store.list_releases(root, "stephint")
        assert [info.release for info in releases] == ["store1"]
        assert releases[0].num_rows == 25
        assert releases[0].latest
        assert store.verify_release(releases[0].path) == []
        pointer = json.loads((UPath(root) / "stephint" / "store1.json").read_text())
        assert pointer["path"].startswith(".releases/store1.")
        assert (UPath(root) / "stephint" / "LATEST").read_text().strip() == "store1"
        assert not (UPath(root) / "stephint" / ".staging").exists()
        assert dag_run.run_id in json.dumps(store.load_manifest(releases[0].path)["run"])
    finally:
        fsspec.filesystem("memory").rm(UPath(root).path, recursive=True)


def test_grouped_generate_tasks_publish_the_same_release(dagbag, airflow_db, tmp_path: Path):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    dag = dagbag.dags["stephint"]
    conf = {"sources": ["synthetic_math:?count=45"], "shard_size": 10, "release": "g", "seed": 5}
    _run(dag, tmp_path / "one-per-shard", None, **conf)
    grouped = _run(dag, tmp_path / "grouped", None, max_generate_tasks=2, **conf)

    with create_session() as session:
        labels = sorted(
            ti.rendered_map_index
            for ti in session.query(TaskInstance).filter(
                TaskInstance.dag_id == "stephint",
                TaskInstance.run_id == grouped.run_id,
                TaskInstance.task_id == "generate",
            )
        )
    # Five shards of 10, 10, 10, 10 and 5 records, balanced over two tasks.
    assert labels == ["shards 1, 3, 5 of 5", "shards 2, 4 of 5"]
    manifests = [
        store.load_manifest(tmp_path / root / "stephint" / "g")
        for root in ("one-per-shard", "grouped")
    ]
    assert manifests[0]["num_rows"] == manifests[1]["num_rows"] == 45
    assert manifests[0]["content_fingerprint"] == manifests[1]["content_fingerprint"]
    assert [s["sha256"] for s in manifests[0]["shards"]] == [
        s["sha256"] for s in manifests[1]["shards"]
    ]


def test_failure_report_grouped_task_shard():
    from types import SimpleNamespace

    sys.path.insert(0, str(DAGS_FOLDER))
    from _factory import _permanent, failure_report
    from corpusforge.generators.errors import ConfigError

    def report(indices, error):
        ti = SimpleNamespace(
            dag_id="stephint", run_id="r", task_id="generate", map_index=0, try_number=1
        )
        kwargs = {"staging": "/s", "indices": indices, "num_shards": 9}
        task = SimpleNamespace(op_kwargs=kwargs)
        return failure_report({"ti": ti, "task": task, "exception": error})

    error = OSError("disk full")
    error.corpusforge_shard = 6
    assert report([2, 6, 8], error)["shard"] == "7 of 9"
    # A permanent error reaches the callback wrapped; the shard is on its cause.
    cause = ConfigError("bad option")
    cause.corpusforge_shard = 2
    try:
        raise _permanent(cause) from cause
    except Exception as wrapped:
        assert report([2, 6, 8], wrapped)["shard"] == "3 of 9"
    assert report([4], OSError("x"))["shard"] == "5 of 9"
    assert report([2, 6], OSError("killed before a shard started"))["shard"] == "3, 7 of 9"


def test_run_params_unknown_conf_key(dagbag):
    sys.path.insert(0, str(DAGS_FOLDER))
    from _factory import run_params
    from corpusforge.generators.errors import ConfigError

    dag = dagbag.dags["stephint"]
    declared = {name: dag.params.get_param(name) for name in dag.params}
    with pytest.raises(ConfigError) as caught:
        run_params({}, {"max_generate_task": 2, "zzz": 1}, declared)
    message = str(caught.value)
    assert "'max_generate_task' (did you mean 'max_generate_tasks'?)" in message
    assert "'zzz'" in message
    assert "shard_size" in message
    assert run_params({"shard_size": 5}, {"shard_size": 5}, declared) == {"shard_size": 5}


def test_run_params_make_whole_number_floats_ints(dagbag):
    sys.path.insert(0, str(DAGS_FOLDER))
    from _factory import run_params

    dag = dagbag.dags["stephint"]
    declared = {name: dag.params.get_param(name) for name in dag.params}
    values = run_params(
        {"shard_size": 200.0, "max_generate_tasks": 2.0, "seed": 7.5, "release": "1.0"},
        None,
        declared,
    )
    assert values["shard_size"] == 200 and isinstance(values["shard_size"], int)
    assert values["max_generate_tasks"] == 2 and isinstance(values["max_generate_tasks"], int)
    # Not whole, or not an integer Param: left for the library's checks.
    assert values["seed"] == 7.5
    assert values["release"] == "1.0"


def test_misspelt_conf_key_fails_before_staging(dagbag, airflow_db, tmp_path: Path):
    from airflow.utils.state import DagRunState

    conf = {"output_root": str(tmp_path), "release": "typo", "max_generate_task": 2}
    dag_run = dagbag.dags["stephint"].test(logical_date=None, run_conf=conf)
    assert dag_run.state == DagRunState.FAILED
    assert not (tmp_path / "stephint").exists()


def test_whole_number_float_params_build_the_same_release(dagbag, airflow_db, tmp_path: Path):
    dag = dagbag.dags["stephint"]
    conf = {"sources": ["synthetic_math:?count=12"], "release": "f", "seed": 2}
    _run(dag, tmp_path / "ints", None, shard_size=5, max_generate_tasks=2, **conf)
    _run(dag, tmp_path / "floats", None, shard_size=5.0, max_generate_tasks=2.0, **conf)
    fingerprints = {
        store.load_manifest(tmp_path / root / "stephint" / "f")["content_fingerprint"]
        for root in ("ints", "floats")
    }
    assert len(fingerprints) == 1
